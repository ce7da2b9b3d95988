"""outbound webhooks (subscriptions, deliveries) and feed positions

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('position', _SEQ, nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('deleted_at_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_table('outbound_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('seq', _SEQ, nullable=False),
    sa.Column('type', sa.String(length=48), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('next_attempt_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_attempt_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('done_at_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_outbound_subscription_seq', 'outbound_deliveries',
                    ['subscription_id', 'seq'], unique=True)
    op.create_index('ix_outbound_status', 'outbound_deliveries',
                    ['subscription_id', 'status', 'seq'], unique=False)
    op.create_table('feed_positions',
    sa.Column('consumer', sa.String(length=32), nullable=False),
    sa.Column('position', _SEQ, nullable=False),
    sa.PrimaryKeyConstraint('consumer'),
    )


def downgrade() -> None:
    op.drop_table('feed_positions')
    op.drop_index('ix_outbound_status', table_name='outbound_deliveries')
    op.drop_index('ux_outbound_subscription_seq', table_name='outbound_deliveries')
    op.drop_table('outbound_deliveries')
    op.drop_table('webhook_subscriptions')
