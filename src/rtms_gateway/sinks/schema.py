"""The database schema: one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Rows that may arrive twice (a reconnect replays them) carry a `dedup_key`: a hash of what
identifies them, unique, so inserting again is a no-op.

Zoom's ids (meeting UUIDs, stream ids, user and message ids) and names are `Text`, of any
length. PostgreSQL refuses a btree index entry past ~2.7 KB, so no index holds an id as it
is: a unique id has a fixed-size key column beside it (`key_of(id)`: `meeting_key`,
`stream_key`), and equality lookups on an id use a hash index on PostgreSQL (SQLite's
btree takes any length).

Every record the API pages through has its place in the feed: an item of `feed_items`
whose `item_key` names it (`sinks.feed`, `sinks.feed_records`). Search indexes live outside
this model (an FTS5 table on SQLite, GIN expression indexes on PostgreSQL: `sinks.search`),
made by migration 0005; `include_name` keeps them out of Alembic's comparisons.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

KEY = String(64)  # a hex digest from key_of
# A feed sequence number: 64 bits on both; on SQLite only `INTEGER PRIMARY KEY` is the rowid.
SEQ = BigInteger().with_variant(Integer(), "sqlite")

# What migration 0005 made beside this model (`sinks.search`): SQLite's FTS5 table (and the
# shadow tables FTS5 keeps, named after it) and PostgreSQL's full-text indexes.
SEARCH_TABLE = "search_text"
SEARCH_INDEXES = frozenset({"ix_segments_search", "ix_chat_search"})


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic: whether `name` belongs to this model (the search objects do not)."""
    if type_ == "table" and name is not None:
        return name != SEARCH_TABLE and not name.startswith(SEARCH_TABLE + "_")
    return not (type_ == "index" and name in SEARCH_INDEXES)


def key_of(*parts: object) -> str:
    """A fixed-size key for what `parts` identify: blake2b-160, hex. For a single id this
    is what migration 0003 backfilled (it keeps its own frozen copy)."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=20).hexdigest()


def _lookup(name: str, column: str) -> Index:
    """Equality lookups on a text id of any length."""
    return Index(name, column, postgresql_using="hash")


meetings = Table(
    "meetings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting_key", KEY, nullable=False, unique=True),
    Column("meeting_uuid", Text, nullable=False),
    Column("product", String(32), nullable=False),
    Column("meeting_id", Text),
    Column("account_id", Text),
    Column("operator_id", Text),
    Column("session_key", Text),
    Column("started_at_ms", BigInteger),
    Column("stopped_at_ms", BigInteger),
    Column("stop_reason", Integer),
    Column("created_at_ms", BigInteger, nullable=False),
)

streams = Table(
    "streams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_key", KEY, nullable=False, unique=True),
    Column("rtms_stream_id", Text, nullable=False),
    Column("meeting_uuid", Text, nullable=False),
    Column("server_urls", Text, nullable=False, default=""),
    Column("state", String(32), nullable=False),
    Column("status_code", Integer),
    Column("status_reason", Text),
    Column("started_at_ms", BigInteger),
    Column("stopped_at_ms", BigInteger),
    Column("stop_reason", Integer),
    Column("updated_at_ms", BigInteger, nullable=False),
    _lookup("ix_streams_meeting_uuid", "meeting_uuid"),
)

transcript_segments = Table(
    "transcript_segments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", KEY, nullable=False, unique=True),
    Column("meeting_uuid", Text, nullable=False),
    Column("rtms_stream_id", Text, nullable=False),
    Column("user_id", Text),
    Column("user_name", Text),
    Column("text", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
    Column("language", Integer),
    Column("attribute", Integer),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("speaker_inferred", Boolean, nullable=False, default=False),
    Column("raw", JSON),  # the wire fields no column holds (TranscriptSegment.raw)
    _lookup("ix_segments_meeting", "meeting_uuid"),
)

# Chat: one row per message in `chat_messages`, its current state (an update or a deletion
# applies to it: `message_key`, the meeting and Zoom's `message_id`); every version of it as
# it came (new, update, delete, ...) in `chat_message_versions`, each with its feed item
# (`dedup_key`, so a replayed version is a no-op). `last_seq` is the feed item of the
# message's latest version: its cursor, and (SQLite) the rowid of its text in search.
chat_messages = Table(
    "chat_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_key", KEY, nullable=False, unique=True),
    Column("meeting_uuid", Text, nullable=False),
    Column("rtms_stream_id", Text, nullable=False),  # the stream it first came on
    Column("message_id", Text),
    Column("parent_message_id", Text),
    Column("parent_key", KEY),  # the message_key of its thread's first message
    Column("sender_user_id", Text),
    Column("sender_name", Text),
    Column("receiver_user_id", Text),
    Column("receiver_name", Text),
    Column("chat_session_type", Integer),
    Column("text", Text, nullable=False),  # the current text; "" once deleted
    Column("operation_type", Integer),  # of the latest version
    Column("timestamp", BigInteger, nullable=False),  # when it was sent
    Column("edited_at_ms", BigInteger),
    Column("deleted_at_ms", BigInteger),
    Column("versions", Integer, nullable=False),
    Column("last_seq", SEQ, nullable=False, unique=True),
    Column("raw", JSON),  # of the latest version
    _lookup("ix_chat_meeting", "meeting_uuid"),
    Index("ix_chat_parent", "parent_key"),
)

chat_message_versions = Table(
    "chat_message_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", KEY, nullable=False, unique=True),
    Column("message_key", KEY, nullable=False),
    Column("meeting_uuid", Text, nullable=False),
    Column("rtms_stream_id", Text, nullable=False),
    Column("message_id", Text),
    Column("parent_message_id", Text),
    Column("sender_user_id", Text),
    Column("sender_name", Text),
    Column("receiver_user_id", Text),
    Column("receiver_name", Text),
    Column("chat_session_type", Integer),
    Column("text", Text, nullable=False),
    Column("operation_type", Integer),
    Column("timestamp", BigInteger, nullable=False),
    Column("files", JSON),
    Column("delete_file_ids", JSON),
    Column("raw", JSON),
    Index("ix_chat_versions_message", "message_key"),
    _lookup("ix_chat_versions_meeting", "meeting_uuid"),
)

# The files of each message's current state, one row each (a deleted message has none).
chat_files = Table(
    "chat_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_key", KEY, nullable=False),
    Column("meeting_uuid", Text, nullable=False),
    Column("message_id", Text),
    Column("position", Integer, nullable=False),
    Column("file_id", Text),
    Column("file_name", Text),
    Column("file_size", BigInteger),
    Column("file_type", Text),
    Column("download_url", Text),
    Index("ix_chat_files_message", "message_key"),
    _lookup("ix_chat_files_meeting", "meeting_uuid"),
)

timeline_events = Table(
    "timeline_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", KEY, nullable=False, unique=True),
    Column("meeting_uuid", Text, nullable=False),
    Column("rtms_stream_id", Text, nullable=False),
    Column("event_type", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("user_id", Text),
    Column("user_name", Text),
    Column("payload", JSON),
    _lookup("ix_timeline_meeting", "meeting_uuid"),
)

media_files = Table(
    "media_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("track_key", KEY, nullable=False, unique=True),  # stream, kind, participant
    Column("meeting_uuid", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("rtms_stream_id", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("user_id", Text),
    Column("user_name", Text),
    Column("codec", String(16), nullable=False),
    Column("format", String(16), nullable=False),
    Column("sample_rate", Integer),
    Column("channels", Integer),
    Column("origin_ms", BigInteger, nullable=False),
    Column("first_ms", BigInteger),
    Column("last_ms", BigInteger),
    Column("frames", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("complete", Boolean, nullable=False, default=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    _lookup("ix_media_files_meeting_uuid", "meeting_uuid"),
)

# What outlives a restart so a replayed webhook reopens nothing (sinks.delivery_memory):
# the deliveries taken, and the streams that ended. Both pruned by age and bounded.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_key", KEY, nullable=False, unique=True),
    Column("seen_at_ms", BigInteger, nullable=False, index=True),
)

ended_streams = Table(
    "ended_streams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_key", KEY, nullable=False, unique=True),
    Column("state", String(32), nullable=False),
    Column("ended_at_ms", BigInteger, nullable=False, index=True),
)

# Streams Zoom revoked (stop reason 8): their records, feed items and files are erased
# (`sinks.revoke`); this tombstone is what is kept, so the API answers 410 Gone for them.
revoked_streams = Table(
    "revoked_streams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream_key", KEY, nullable=False, unique=True),
    Column("rtms_stream_id", Text, nullable=False),
    Column("meeting_key", KEY, nullable=False, index=True),
    Column("stop_reason", Integer, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("scope", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the key, hex
    Column("shown", String(16), nullable=False),  # the key's first characters
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_used_at_ms", BigInteger),
    Column("revoked_at_ms", BigInteger),
    # One live key per name; revoked ones keep their rows.
    Index("ux_api_keys_live_name", "name", unique=True,
          sqlite_where=text("revoked_at_ms IS NULL"), postgresql_where=text("revoked_at_ms IS NULL")),
)

# The one ordered feed: an item per record stored (segment, chat message, timeline event)
# and per change the store records (a meeting started or ended, a stream's state, a media
# file new or ready). Its id is the cursor; AUTOINCREMENT keeps SQLite from ever handing
# out an id again. `item_key` names the record an item stands for (records only), so a
# record stored twice makes one item; it is how a record finds its item and the other way
# round (`feed_records.linked`). `body` is the item's JSON as the API shows it.
feed_items = Table(
    "feed_items", metadata,
    Column("id", SEQ, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("type", String(48), nullable=False),
    Column("meeting_key", KEY, nullable=False),
    Column("meeting_uuid", Text, nullable=False),
    Column("item_key", String(64), unique=True),
    Column("stored_at_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_feed_meeting", "meeting_key", "id"),
    Index("ix_feed_kind", "kind", "id"),
    sqlite_autoincrement=True,
)

# Outbound webhooks (`sinks.outbox_store`): a subscription's `position` is the last feed
# item it is done with (delivered or dead-lettered); its secret signs every delivery, so it
# is kept as it is (it cannot be hashed). A removed subscription keeps its row and its
# deliveries' history (`deleted_at_ms`).
webhook_subscriptions = Table(
    "webhook_subscriptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # the types, comma-separated
    Column("secret", Text, nullable=False),
    Column("position", SEQ, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("deleted_at_ms", BigInteger),
)

# One row per feed item a subscription delivers (or tries to): its attempts and its fate.
# `status`: pending (attempts go on at `next_attempt_at_ms`), delivered, dead.
outbound_deliveries = Table(
    "outbound_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, nullable=False),
    Column("seq", SEQ, nullable=False),
    Column("type", String(48), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("next_attempt_at_ms", BigInteger, nullable=False),
    Column("last_attempt_at_ms", BigInteger),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("done_at_ms", BigInteger),
    Index("ux_outbound_subscription_seq", "subscription_id", "seq", unique=True),
    Index("ix_outbound_status", "subscription_id", "status", "seq"),
)

# Where a consumer of the feed that is not a subscription (the Redis bus) stands: the last
# feed item it has handed on.
feed_positions = Table(
    "feed_positions", metadata,
    Column("consumer", String(32), primary_key=True),
    Column("position", SEQ, nullable=False),
)
