"""revoked streams' tombstones

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('revoked_streams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stream_key', sa.String(length=64), nullable=False),
    sa.Column('rtms_stream_id', sa.Text(), nullable=False),
    sa.Column('meeting_key', sa.String(length=64), nullable=False),
    sa.Column('stop_reason', sa.Integer(), nullable=False),
    sa.Column('revoked_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('stream_key'),
    )
    op.create_index(op.f('ix_revoked_streams_meeting_key'), 'revoked_streams', ['meeting_key'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_revoked_streams_meeting_key'), table_name='revoked_streams')
    op.drop_table('revoked_streams')
