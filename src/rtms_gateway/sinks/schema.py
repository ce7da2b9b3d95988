"""The database schema: one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Rows that may arrive twice (a reconnect replays them) carry a `dedup_key`: a hash of what
identifies them, unique, so inserting again is a no-op.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

meetings = Table(
    "meetings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting_uuid", String(255), nullable=False, unique=True),
    Column("product", String(32), nullable=False),
    Column("meeting_id", String(64)),
    Column("account_id", String(64)),
    Column("operator_id", String(64)),
    Column("session_key", String(255)),
    Column("started_at_ms", BigInteger),
    Column("stopped_at_ms", BigInteger),
    Column("stop_reason", Integer),
    Column("created_at_ms", BigInteger, nullable=False),
)

streams = Table(
    "streams", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rtms_stream_id", String(255), nullable=False, unique=True),
    Column("meeting_uuid", String(255), nullable=False, index=True),
    Column("server_urls", Text, nullable=False, default=""),
    Column("state", String(32), nullable=False),
    Column("status_code", Integer),
    Column("status_reason", Text),
    Column("started_at_ms", BigInteger),
    Column("stopped_at_ms", BigInteger),
    Column("stop_reason", Integer),
    Column("updated_at_ms", BigInteger, nullable=False),
)

transcript_segments = Table(
    "transcript_segments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("meeting_uuid", String(255), nullable=False),
    Column("rtms_stream_id", String(255), nullable=False),
    Column("user_id", String(64)),
    Column("user_name", Text),
    Column("text", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
    Column("language", Integer),
    Column("attribute", Integer),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("speaker_inferred", Boolean, nullable=False, default=False),
    Index("ix_segments_meeting_time", "meeting_uuid", "timestamp"),
)

chat_messages = Table(
    "chat_messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("meeting_uuid", String(255), nullable=False),
    Column("rtms_stream_id", String(255), nullable=False),
    Column("message_id", String(255)),
    Column("sender_user_id", String(64)),
    Column("sender_name", Text),
    Column("receiver_user_id", String(64)),
    Column("receiver_name", Text),
    Column("chat_session_type", Integer),
    Column("text", Text, nullable=False),
    Column("operation_type", Integer),
    Column("timestamp", BigInteger, nullable=False),
    Column("raw", JSON),
    Index("ix_chat_meeting_time", "meeting_uuid", "timestamp"),
)

timeline_events = Table(
    "timeline_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("meeting_uuid", String(255), nullable=False),
    Column("rtms_stream_id", String(255), nullable=False),
    Column("event_type", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("user_id", String(64)),
    Column("user_name", Text),
    Column("payload", JSON),
    Index("ix_timeline_meeting_time", "meeting_uuid", "timestamp"),
)

media_files = Table(
    "media_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("track_key", String(64), nullable=False, unique=True),  # stream, kind, participant
    Column("meeting_uuid", String(255), nullable=False, index=True),
    Column("path", String(1024), nullable=False),
    Column("rtms_stream_id", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("user_id", String(64)),
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
