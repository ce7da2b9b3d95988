"""the feed (cursors) and search

Every record gets its place in one ordered feed: a `feed_items` table whose id is the
cursor, each record's item named by `item_key` (a letter for its table and its
`dedup_key`). Records stored before are given items here, meeting by meeting (the meeting
whose first record is oldest first), each meeting's in time order. Their bodies are built by frozen
copies of the JSON shapes, types and keys as they stand at this revision (the store builds
the same ones for new records; `tests/store_cases.case_migration_from_0004` checks they
agree), so a later change to those shapes cannot break this migration.

Search: on SQLite a contentless FTS5 table (`search_text`, rowid = the item's id; the store
adds to it as it writes), on PostgreSQL GIN indexes on the texts' tsvectors; both filled here.

Revision ID: 0005
Revises: 0004
"""

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEXED_CHARS = 100_000  # sinks.search.INDEXED_CHARS: the indexes below are built on it
# sinks.search.PG_VECTOR (on `text`): queries use an index only if they say exactly this.
_PG_VECTOR = (f"to_tsvector('simple', translate(left(text, {INDEXED_CHARS}), "
              "'!\"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~', '" + " " * 32 + "'))")
_PG_SEARCH = {'ix_segments_search': 'transcript_segments', 'ix_chat_search': 'chat_messages'}

# ---- frozen copies of the shapes at this revision (sinks.feed, sinks.exports, store_rows) --

_EVENTS = {1: ('meeting', 'meeting.first_packet'), 2: ('speaker', 'speaker.changed'),
           3: ('participant', 'participant.joined'), 4: ('participant', 'participant.left'),
           5: ('sharing', 'sharing.started'), 6: ('sharing', 'sharing.stopped'),
           7: ('meeting', 'meeting.media_interrupted'), 8: ('participant', 'participant.video_on'),
           9: ('participant', 'participant.video_off'), 10: ('chat', 'chat.group_created'),
           11: ('chat', 'chat.group_deleted'), 12: ('chat', 'chat.group_members_added'),
           13: ('chat', 'chat.group_members_removed'), 14: ('chat', 'chat.group_member_status')}
_EVENT_NAMES = {1: 'first_packet_timestamp', 2: 'active_speaker_change', 3: 'participant_join',
                4: 'participant_leave', 5: 'sharing_start', 6: 'sharing_stop',
                7: 'media_connection_interrupted', 8: 'participant_video_on',
                9: 'participant_video_off', 10: 'chat_group_create', 11: 'chat_group_delete',
                12: 'chat_group_members_add', 13: 'chat_group_members_delete',
                14: 'chat_group_member_status_update'}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')  # SQLite: the rowid


def _key(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=20).hexdigest()


def _iso(ms: Any) -> Any:
    if ms is None:
        return None
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec='milliseconds') \
            .replace('+00:00', 'Z')
    except OverflowError:
        return None


def _uid(value: Any) -> Any:
    if value is not None and value.lstrip('-').isdigit():
        return int(value)
    return value


def _segment(r: Any) -> tuple[str, str, str, dict[str, Any]]:
    body = {'user_id': _uid(r.user_id), 'user_name': r.user_name, 'text': r.text,
            'start_time': r.start_time, 'end_time': r.end_time, 'timestamp': r.timestamp,
            'language': r.language, 'rtms_stream_id': r.rtms_stream_id,
            'speaker_inferred': bool(r.speaker_inferred)}
    for name in ('start_time', 'end_time', 'timestamp'):
        body[name + '_iso'] = _iso(body[name])
    return 'transcript', 'transcript.segment', 't', body


def _chat(r: Any) -> tuple[str, str, str, dict[str, Any]]:
    body = {'rtms_stream_id': r.rtms_stream_id, 'message_id': r.message_id,
            'sender_user_id': _uid(r.sender_user_id), 'sender_name': r.sender_name,
            'receiver_user_id': _uid(r.receiver_user_id), 'receiver_name': r.receiver_name,
            'chat_session_type': r.chat_session_type, 'text': r.text,
            'operation_type': r.operation_type, 'timestamp': r.timestamp, 'raw': r.raw,
            'timestamp_iso': _iso(r.timestamp)}
    return 'chat', 'chat.message', 'c', body


def _event(r: Any) -> tuple[str, str, str, dict[str, Any]]:
    body = {'rtms_stream_id': r.rtms_stream_id, 'event_type': r.event_type,
            'timestamp': r.timestamp, 'user_id': _uid(r.user_id), 'user_name': r.user_name,
            'payload': r.payload, 'event': _EVENT_NAMES.get(r.event_type, f'event_{r.event_type}'),
            'timestamp_iso': _iso(r.timestamp)}
    kind, type_ = _EVENTS.get(r.event_type, ('meeting', 'meeting.event'))
    return kind, type_, 'e', body


# table -> (its time for ordering, the shape)
_SOURCES = {'transcript_segments': ('coalesce(start_time, timestamp)', _segment),
            'chat_messages': ('timestamp', _chat), 'timeline_events': ('timestamp', _event)}


def _table(name: str) -> Any:
    columns = {'transcript_segments': ('user_id', 'user_name', 'text', 'start_time', 'end_time',
                                       'language', 'speaker_inferred'),
               'chat_messages': ('message_id', 'sender_user_id', 'sender_name', 'receiver_user_id',
                                 'receiver_name', 'chat_session_type', 'text', 'operation_type'),
               'timeline_events': ('event_type', 'user_id', 'user_name')}[name]
    json_columns = {'chat_messages': ('raw',), 'timeline_events': ('payload',)}.get(name, ())
    return sa.table(name, sa.column('id'), sa.column('dedup_key'), sa.column('meeting_uuid'),
                    sa.column('rtms_stream_id'), sa.column('timestamp'),
                    *(sa.column(c) for c in columns),
                    *(sa.column(c, sa.JSON) for c in json_columns))


def _feed_table() -> Any:
    # A Table (not a lightweight `table`): SQLAlchemy returns ids in parameter order only for one.
    return sa.Table('feed_items', sa.MetaData(),
                    sa.Column('id', _SEQ, primary_key=True),
                    *(sa.Column(c, sa.Text) for c in ('kind', 'type', 'meeting_key', 'meeting_uuid',
                                                      'item_key', 'body')),
                    sa.Column('stored_at_ms', sa.BigInteger))


def _backfill(conn: Any, *, index_texts: bool) -> None:
    """An item for every record stored, meeting by meeting, each in time order; on SQLite
    the texts into the search table too."""
    firsts = ' UNION ALL '.join(
        f'SELECT meeting_uuid, min({when}) AS t FROM {table} GROUP BY meeting_uuid'
        for table, (when, _) in _SOURCES.items())
    meetings = conn.execute(sa.text(f'SELECT meeting_uuid, min(t) FROM ({firsts}) AS f '
                                    'GROUP BY meeting_uuid ORDER BY 2, 1')).all()
    feed, now = _feed_table(), int(time.time() * 1000)
    insert = feed.insert().returning(feed.c.id, sort_by_parameter_order=True)
    index = sa.text('INSERT INTO search_text (rowid, text) VALUES (:seq, :text)')
    for uuid, _ in meetings:
        found = []
        for rank, (name, (when, shape)) in enumerate(_SOURCES.items()):
            t = _table(name)
            query = (sa.select(t, sa.literal_column(when).label('_when'))
                     .where(t.c.meeting_uuid == uuid))
            found += [(r._when, rank, r.id, name, r, shape) for r in conn.execute(query)]
        found.sort(key=lambda x: x[:3])
        rows = []
        for _, _, _, _, r, shape in found:
            kind, type_, prefix, body = shape(r)
            rows.append({'kind': kind, 'type': type_, 'meeting_key': _key(uuid),
                         'meeting_uuid': uuid, 'item_key': prefix + r.dedup_key,
                         'stored_at_ms': now, 'body': msgspec.json.encode(body).decode()})
        seqs = conn.execute(insert, rows).scalars().all()
        texts = [{'seq': seq, 'text': r.text[:INDEXED_CHARS]}
                 for (_, _, _, table, r, _), seq in zip(found, seqs, strict=True)
                 if table != 'timeline_events']
        if index_texts and texts:
            conn.execute(index, texts)


def upgrade() -> None:
    op.create_table('feed_items',
    sa.Column('id', _SEQ, autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('type', sa.String(length=48), nullable=False),
    sa.Column('meeting_key', sa.String(length=64), nullable=False),
    sa.Column('meeting_uuid', sa.Text(), nullable=False),
    sa.Column('item_key', sa.String(length=64), nullable=True),
    sa.Column('stored_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_key'),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_feed_meeting', 'feed_items', ['meeting_key', 'id'], unique=False)
    op.create_index('ix_feed_kind', 'feed_items', ['kind', 'id'], unique=False)
    conn = op.get_bind()
    pg = conn.dialect.name == 'postgresql'
    if not pg:
        op.execute("CREATE VIRTUAL TABLE search_text USING fts5(text, content='', "
                   "tokenize='unicode61 remove_diacritics 2')")
    _backfill(conn, index_texts=not pg)
    if pg:  # built once the rows are in: faster than row by row
        for index, table in _PG_SEARCH.items():
            op.execute(f"CREATE INDEX {index} ON {table} USING gin ({_PG_VECTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for index in _PG_SEARCH:
            op.execute(f'DROP INDEX {index}')
    else:
        op.execute('DROP TABLE search_text')
    op.drop_index('ix_feed_kind', table_name='feed_items')
    op.drop_index('ix_feed_meeting', table_name='feed_items')
    op.drop_table('feed_items')
