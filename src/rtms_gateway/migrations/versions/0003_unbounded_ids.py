"""ids of any length; durable delivery memory

Zoom's ids become Text. What indexed them could refuse a long one on PostgreSQL (a btree
entry is limited to ~2.7 KB): unique ids get a fixed-size key column (backfilled here),
lookups a hash index on PostgreSQL. Two new tables remember the webhook deliveries taken
and the streams that ended, so a replayed webhook reopens nothing after a restart.

Revision ID: 0003
Revises: 0002
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# (table, columns that hold a Zoom id or name, and their old types)
_IDS = {
    'meetings': {'meeting_uuid': sa.String(255), 'meeting_id': sa.String(64), 'account_id': sa.String(64),
                 'operator_id': sa.String(64), 'session_key': sa.String(255)},
    'streams': {'rtms_stream_id': sa.String(255), 'meeting_uuid': sa.String(255)},
    'transcript_segments': {'meeting_uuid': sa.String(255), 'rtms_stream_id': sa.String(255),
                            'user_id': sa.String(64)},
    'chat_messages': {'meeting_uuid': sa.String(255), 'rtms_stream_id': sa.String(255),
                      'message_id': sa.String(255), 'sender_user_id': sa.String(64),
                      'receiver_user_id': sa.String(64)},
    'timeline_events': {'meeting_uuid': sa.String(255), 'rtms_stream_id': sa.String(255),
                        'user_id': sa.String(64)},
    'media_files': {'meeting_uuid': sa.String(255), 'rtms_stream_id': sa.String(255),
                    'user_id': sa.String(64), 'path': sa.String(1024)},
}
# table -> (old index on meeting_uuid, its old columns, the new one)
_LOOKUPS = {
    'streams': ('ix_streams_meeting_uuid', ['meeting_uuid'], 'ix_streams_meeting_uuid'),
    'transcript_segments': ('ix_segments_meeting_time', ['meeting_uuid', 'timestamp'], 'ix_segments_meeting'),
    'chat_messages': ('ix_chat_meeting_time', ['meeting_uuid', 'timestamp'], 'ix_chat_meeting'),
    'timeline_events': ('ix_timeline_meeting_time', ['meeting_uuid', 'timestamp'], 'ix_timeline_meeting'),
    'media_files': ('ix_media_files_meeting_uuid', ['meeting_uuid'], 'ix_media_files_meeting_uuid'),
}
# table -> (the id once unique, its new key column)
_KEYED = {'meetings': ('meeting_uuid', 'meeting_key'), 'streams': ('rtms_stream_id', 'stream_key')}
# SQLite's unique constraints were unnamed: name them to drop them (batch mode reflects).
_NAMING = {'uq': 'uq_%(table_name)s_%(column_0_name)s'}


def _key(value: str) -> str:
    """Frozen copy of sinks.schema.key_of for one id (what the store looks rows up by)."""
    return hashlib.blake2b(value.encode(), digest_size=20).hexdigest()


def _unique_name(table: str, column: str) -> str:
    if op.get_bind().dialect.name == 'postgresql':
        return f'{table}_{column}_key'  # PostgreSQL's own name for an unnamed one
    return f'uq_{table}_{column}'


def _backfill(table: str, id_column: str, key_column: str) -> None:
    t = sa.table(table, sa.column('id'), sa.column(id_column), sa.column(key_column))
    conn = op.get_bind()
    rows = conn.execute(sa.select(t.c.id, t.c[id_column])).all()
    if rows:
        conn.execute(t.update().where(t.c.id == sa.bindparam('row_id')).values({key_column: sa.bindparam('key')}),
                     [{'row_id': row_id, 'key': _key(value)} for row_id, value in rows])


def upgrade() -> None:
    for table, (_, key_column) in _KEYED.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column(key_column, sa.String(length=64), nullable=True))
    for table, (id_column, key_column) in _KEYED.items():
        _backfill(table, id_column, key_column)

    for table, columns in _IDS.items():
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch_op:
            if table in _LOOKUPS:
                old, _, _ = _LOOKUPS[table]
                batch_op.drop_index(old)
            if table in _KEYED:
                id_column, key_column = _KEYED[table]
                batch_op.drop_constraint(_unique_name(table, id_column), type_='unique')
                batch_op.alter_column(key_column, existing_type=sa.String(length=64), nullable=False)
                batch_op.create_unique_constraint(_unique_name(table, key_column), [key_column])
            for column, old_type in columns.items():
                batch_op.alter_column(column, existing_type=old_type, type_=sa.Text())
            if table in _LOOKUPS:
                _, _, new = _LOOKUPS[table]
                batch_op.create_index(new, ['meeting_uuid'], unique=False, postgresql_using='hash')

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_key', sa.String(length=64), nullable=False),
    sa.Column('seen_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('delivery_key')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_seen_at_ms'), ['seen_at_ms'], unique=False)

    op.create_table('ended_streams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stream_key', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('ended_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('stream_key')
    )
    with op.batch_alter_table('ended_streams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ended_streams_ended_at_ms'), ['ended_at_ms'], unique=False)


def downgrade() -> None:
    """Back to bounded columns: refused (not cut) where a stored id is too long for them."""
    op.drop_table('ended_streams')
    op.drop_table('webhook_deliveries')
    for table, columns in _IDS.items():
        with op.batch_alter_table(table, naming_convention=_NAMING) as batch_op:
            if table in _LOOKUPS:
                old, old_columns, new = _LOOKUPS[table]
                batch_op.drop_index(new)
            for column, old_type in columns.items():
                batch_op.alter_column(column, existing_type=sa.Text(), type_=old_type)
            if table in _KEYED:
                id_column, key_column = _KEYED[table]
                batch_op.drop_constraint(_unique_name(table, key_column), type_='unique')
                batch_op.drop_column(key_column)
                batch_op.create_unique_constraint(_unique_name(table, id_column), [id_column])
            if table in _LOOKUPS:
                batch_op.create_index(old, old_columns, unique=False)
