"""structured chat: messages as they stand, their versions, their files

`chat_messages` held one row per chat message as it came off the wire; an update or a
deletion of a message was a row of its own. Those rows become `chat_message_versions`
(their dedup keys, hence their feed items, unchanged), and `chat_messages` one row per
message (`message_key`: the meeting and Zoom's `message_id`), the fold of its versions:
current text ("" once deleted), edited and deleted times, its thread parent, `last_seq`
(the feed item of its latest version). `chat_files` holds the files of each message as it
stands (files are not backfilled: older rows kept them only in their raw payload, where
they stay). The search indexes follow: PostgreSQL's GIN index is made again on the new
table; SQLite's search table holds each message's current text under `last_seq`.

The fold here is a frozen copy of `sinks.chat.fold` at this revision.

Revision ID: 0009
Revises: 0008
"""

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEXED_CHARS = 100_000  # sinks.search.INDEXED_CHARS, as migration 0005 froze it
_PG_VECTOR = (f"to_tsvector('simple', translate(left(text, {INDEXED_CHARS}), "
              "'!\"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~', '" + " " * 32 + "'))")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_NEW, _DELETE, _UPDATE = 1, 2, 3  # protocol.constants.ChatOperation
_WIRE = ('meeting_uuid', 'rtms_stream_id', 'message_id', 'sender_user_id', 'sender_name',
         'receiver_user_id', 'receiver_name', 'chat_session_type', 'text', 'operation_type',
         'timestamp')  # the columns a chat row had before this revision (and raw)


def _key(*parts: object) -> str:
    """Frozen copy of sinks.schema.key_of."""
    return hashlib.blake2b('\x1f'.join(map(str, parts)).encode(), digest_size=20).hexdigest()


def _old_table() -> Any:
    return sa.table('chat_messages', sa.column('id'), sa.column('dedup_key'),
                    *(sa.column(c) for c in _WIRE), sa.column('raw', sa.JSON))


def _versions_table() -> Any:
    return sa.table('chat_message_versions', sa.column('id'), sa.column('dedup_key'),
                    sa.column('message_key'), sa.column('parent_message_id'),
                    *(sa.column(c) for c in _WIRE), sa.column('raw', sa.JSON))


def _messages_table() -> Any:
    return sa.table('chat_messages', *(sa.column(c) for c in (
        'message_key', 'parent_message_id', 'parent_key', 'edited_at_ms', 'deleted_at_ms',
        'versions', 'last_seq', *_WIRE)), sa.column('raw', sa.JSON))


def _seqs(conn: Any) -> dict[str, int]:
    """Chat rows' feed items: dedup key -> sequence number."""
    rows = conn.execute(sa.text("SELECT id, item_key FROM feed_items WHERE item_key LIKE 'c%'"))
    return {item_key[1:]: seq for seq, item_key in rows}


def _fold(versions: list[dict[str, Any]]) -> dict[str, Any]:
    """A message's state from its versions (each with `id`, its arrival order)."""
    ordered = sorted(versions, key=lambda v: (v['timestamp'], v['id']))
    news = [v for v in ordered if v['operation_type'] in (None, _NEW)]
    base = news[0] if news else ordered[0]
    first = [base] + [v for v in ordered if v is not base]

    def known(name: str) -> Any:
        return next((v[name] for v in first if v[name] is not None), None)

    texts = [v['text'] for v in ordered if v['operation_type'] in (None, _NEW, _UPDATE)]
    edits = [v['timestamp'] for v in ordered if v['operation_type'] == _UPDATE]
    deletions = [v['timestamp'] for v in ordered if v['operation_type'] == _DELETE]
    state = {name: known(name) for name in ('sender_user_id', 'sender_name', 'receiver_user_id',
                                            'receiver_name', 'chat_session_type', 'parent_message_id')}
    state.update(meeting_uuid=base['meeting_uuid'], rtms_stream_id=base['rtms_stream_id'],
                 message_id=base['message_id'], timestamp=base['timestamp'],
                 text='' if deletions else (texts[-1] if texts else ''),
                 operation_type=ordered[-1]['operation_type'], raw=ordered[-1]['raw'],
                 edited_at_ms=max(edits) if edits else None,
                 deleted_at_ms=min(deletions) if deletions else None, versions=len(ordered))
    return state


def _search(conn: Any, verb: str, rows: list[tuple[int, str]]) -> None:
    """SQLite: add texts to the search table, or take them out ('delete')."""
    values = [{'seq': seq, 'text': body[:INDEXED_CHARS]} for seq, body in rows]
    if not values:
        return
    if verb == 'delete':
        sql = "INSERT INTO search_text (search_text, rowid, text) VALUES ('delete', :seq, :text)"
    else:
        sql = 'INSERT INTO search_text (rowid, text) VALUES (:seq, :text)'
    conn.execute(sa.text(sql), values)


def _parent(raw: Any) -> Any:
    found = raw.get('parent_message_id') if isinstance(raw, dict) else None
    return found if isinstance(found, str) else None


def upgrade() -> None:
    conn = op.get_bind()
    pg = conn.dialect.name == 'postgresql'
    op.create_table('chat_message_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('message_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.Text(), nullable=False),
    sa.Column('rtms_stream_id', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('parent_message_id', sa.Text(), nullable=True),
    sa.Column('sender_user_id', sa.Text(), nullable=True),
    sa.Column('sender_name', sa.Text(), nullable=True),
    sa.Column('receiver_user_id', sa.Text(), nullable=True),
    sa.Column('receiver_name', sa.Text(), nullable=True),
    sa.Column('chat_session_type', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('operation_type', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('files', sa.JSON(), nullable=True),
    sa.Column('delete_file_ids', sa.JSON(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key'),
    )
    op.create_index('ix_chat_versions_message', 'chat_message_versions', ['message_key'], unique=False)
    op.create_index('ix_chat_versions_meeting', 'chat_message_versions', ['meeting_uuid'], unique=False,
                    postgresql_using='hash')
    op.create_table('chat_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Text(), nullable=True),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('file_size', sa.BigInteger(), nullable=True),
    sa.Column('file_type', sa.Text(), nullable=True),
    sa.Column('download_url', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_chat_files_message', 'chat_files', ['message_key'], unique=False)
    op.create_index('ix_chat_files_meeting', 'chat_files', ['meeting_uuid'], unique=False,
                    postgresql_using='hash')

    old = _old_table()
    rows = [dict(r) for r in conn.execute(sa.select(old).order_by(old.c.id)).mappings()]
    seqs = _seqs(conn)
    for r in rows:
        r['message_key'] = _key('chat', r['meeting_uuid'], r['message_id']) if r['message_id'] \
            else r['dedup_key']
        r['parent_message_id'] = _parent(r['raw'])
    versions = _versions_table()
    if rows:
        conn.execute(versions.insert(), [{k: v for k, v in r.items() if k != 'id'} for r in rows])
    if not pg:
        _search(conn, 'delete', [(seqs[r['dedup_key']], r['text']) for r in rows if r['dedup_key'] in seqs])

    op.drop_table('chat_messages')  # with its indexes (PostgreSQL's search index too)
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.Text(), nullable=False),
    sa.Column('rtms_stream_id', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('parent_message_id', sa.Text(), nullable=True),
    sa.Column('parent_key', sa.String(length=64), nullable=True),
    sa.Column('sender_user_id', sa.Text(), nullable=True),
    sa.Column('sender_name', sa.Text(), nullable=True),
    sa.Column('receiver_user_id', sa.Text(), nullable=True),
    sa.Column('receiver_name', sa.Text(), nullable=True),
    sa.Column('chat_session_type', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('operation_type', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('edited_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('deleted_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('versions', sa.Integer(), nullable=False),
    sa.Column('last_seq', _SEQ, nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_key'),
    sa.UniqueConstraint('last_seq'),
    )
    op.create_index('ix_chat_meeting', 'chat_messages', ['meeting_uuid'], unique=False,
                    postgresql_using='hash')
    op.create_index('ix_chat_parent', 'chat_messages', ['parent_key'], unique=False)

    by_message: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_message.setdefault(r['message_key'], []).append(r)
    states = []
    for key, mine in by_message.items():
        found = [seqs[r['dedup_key']] for r in mine if r['dedup_key'] in seqs]
        if not found:  # every row has its item since 0005; one without is not listed anyway
            continue
        state = _fold(mine)
        state.update(message_key=key, last_seq=max(found), parent_key=(
            _key('chat', state['meeting_uuid'], state['parent_message_id'])
            if state['parent_message_id'] else None))
        states.append(state)
    if states:
        conn.execute(_messages_table().insert(), states)
    if pg:
        op.execute(f'CREATE INDEX ix_chat_search ON chat_messages USING gin ({_PG_VECTOR})')
    else:
        _search(conn, 'insert', [(x['last_seq'], x['text']) for x in states if x['deleted_at_ms'] is None])


def downgrade() -> None:
    """Back to a row per message as it came: the versions, as they were stored."""
    conn = op.get_bind()
    pg = conn.dialect.name == 'postgresql'
    m = _messages_table()
    if not pg:
        _search(conn, 'delete', [tuple(r) for r in conn.execute(
            sa.select(m.c.last_seq, m.c.text).where(m.c.deleted_at_ms.is_(None)))])
    op.drop_index('ix_chat_files_meeting', table_name='chat_files')
    op.drop_index('ix_chat_files_message', table_name='chat_files')
    op.drop_table('chat_files')
    op.drop_index('ix_chat_parent', table_name='chat_messages')
    op.drop_index('ix_chat_meeting', table_name='chat_messages')
    op.drop_table('chat_messages')
    op.create_table('chat_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.Text(), nullable=False),
    sa.Column('rtms_stream_id', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('sender_user_id', sa.Text(), nullable=True),
    sa.Column('sender_name', sa.Text(), nullable=True),
    sa.Column('receiver_user_id', sa.Text(), nullable=True),
    sa.Column('receiver_name', sa.Text(), nullable=True),
    sa.Column('chat_session_type', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('operation_type', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key'),
    )
    op.create_index('ix_chat_meeting', 'chat_messages', ['meeting_uuid'], unique=False,
                    postgresql_using='hash')
    v = _versions_table()
    rows = [dict(r) for r in conn.execute(sa.select(v).order_by(v.c.id)).mappings()]
    if rows:
        keep = ('dedup_key', *_WIRE, 'raw')
        conn.execute(_old_table().insert(), [{k: r[k] for k in keep} for r in rows])
    if pg:
        op.execute(f'CREATE INDEX ix_chat_search ON chat_messages USING gin ({_PG_VECTOR})')
    else:
        seqs = _seqs(conn)
        _search(conn, 'insert', [(seqs[r['dedup_key']], r['text']) for r in rows if r['dedup_key'] in seqs])
    op.drop_index('ix_chat_versions_meeting', table_name='chat_message_versions')
    op.drop_index('ix_chat_versions_message', table_name='chat_message_versions')
    op.drop_table('chat_message_versions')
