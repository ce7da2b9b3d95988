"""api keys

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('shown', sa.String(length=16), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_used_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_index('ux_api_keys_live_name', 'api_keys', ['name'], unique=True,
                    sqlite_where=sa.text('revoked_at_ms IS NULL'),
                    postgresql_where=sa.text('revoked_at_ms IS NULL'))


def downgrade() -> None:
    op.drop_index('ux_api_keys_live_name', table_name='api_keys')
    op.drop_table('api_keys')
