"""initial schema

Revision ID: 0001
Revises: 
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.String(length=255), nullable=False),
    sa.Column('rtms_stream_id', sa.String(length=255), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('sender_user_id', sa.String(length=64), nullable=True),
    sa.Column('sender_name', sa.Text(), nullable=True),
    sa.Column('receiver_user_id', sa.String(length=64), nullable=True),
    sa.Column('receiver_name', sa.Text(), nullable=True),
    sa.Column('chat_session_type', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('operation_type', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.create_index('ix_chat_meeting_time', ['meeting_uuid', 'timestamp'], unique=False)

    op.create_table('meetings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('meeting_uuid', sa.String(length=255), nullable=False),
    sa.Column('product', sa.String(length=32), nullable=False),
    sa.Column('meeting_id', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('operator_id', sa.String(length=64), nullable=True),
    sa.Column('session_key', sa.String(length=255), nullable=True),
    sa.Column('started_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('stopped_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('stop_reason', sa.Integer(), nullable=True),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meeting_uuid')
    )
    op.create_table('streams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rtms_stream_id', sa.String(length=255), nullable=False),
    sa.Column('meeting_uuid', sa.String(length=255), nullable=False),
    sa.Column('server_urls', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('started_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('stopped_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('stop_reason', sa.Integer(), nullable=True),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rtms_stream_id')
    )
    with op.batch_alter_table('streams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_streams_meeting_uuid'), ['meeting_uuid'], unique=False)

    op.create_table('timeline_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.String(length=255), nullable=False),
    sa.Column('rtms_stream_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('user_name', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('timeline_events', schema=None) as batch_op:
        batch_op.create_index('ix_timeline_meeting_time', ['meeting_uuid', 'timestamp'], unique=False)

    op.create_table('transcript_segments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.String(length=255), nullable=False),
    sa.Column('rtms_stream_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('user_name', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=True),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('language', sa.Integer(), nullable=True),
    sa.Column('attribute', sa.Integer(), nullable=True),
    sa.Column('received_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('speaker_inferred', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    with op.batch_alter_table('transcript_segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_meeting_time', ['meeting_uuid', 'timestamp'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transcript_segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_meeting_time')

    op.drop_table('transcript_segments')
    with op.batch_alter_table('timeline_events', schema=None) as batch_op:
        batch_op.drop_index('ix_timeline_meeting_time')

    op.drop_table('timeline_events')
    with op.batch_alter_table('streams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_streams_meeting_uuid'))

    op.drop_table('streams')
    op.drop_table('meetings')
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_meeting_time')

    op.drop_table('chat_messages')
