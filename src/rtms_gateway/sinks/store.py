"""The store: meetings, streams, transcripts, chat and the events timeline.

SQLAlchemy Core on the asyncio engine, one schema for SQLite (aiosqlite) and PostgreSQL
(asyncpg), brought up to date by Alembic on open. Writes come in batches (one transaction
per `write_batch`) and are idempotent: a row that arrives twice is stored once.

Every public coroutine fails only with StoreUnavailable or RecordRefused (`store_errors`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from alembic import command
from alembic.config import Config
from sqlalchemy import event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..protocol.constants import EventType
from . import schema as s
from .records import ChatMessage, MediaFile, MeetingRecord, StreamRecord, TimelineEvent, TranscriptSegment
from .store_errors import guarded, translate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# How long a write waits on a lock before failing: the pipeline then journals the batch
# instead of holding every stream's records behind one stuck transaction.
LOCK_WAIT_S = 2.0
# How long connecting to PostgreSQL may take before the database counts as away.
CONNECT_TIMEOUT_S = 10.0
LIVE_STATES = frozenset({"connecting", "ready", "running", "detached"})


def async_url(url: str) -> str:
    """`sqlite:///x` and `postgresql://…` name the async drivers this store uses."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _key(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=20).hexdigest()


def _uid(value: object) -> str | None:
    return None if value is None else str(value)


def _from_uid(value: str | None) -> int | str | None:
    """User ids are stored as text (Zoom sends ints, and strings in places); give ints back."""
    if value is not None and value.lstrip("-").isdigit():
        return int(value)
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class MeetingSummary:
    meeting_uuid: str
    product: str
    state: str
    started_at_ms: int | None
    stopped_at_ms: int | None
    stop_reason: int | None
    meeting_id: str | None = None
    segment_count: int = 0
    chat_count: int = 0
    event_count: int = 0
    participant_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MeetingDetail(MeetingSummary):
    account_id: str | None = None
    operator_id: str | None = None
    session_key: str | None = None
    streams: list[dict[str, Any]] = field(default_factory=list)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.closed = False
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    async def open(cls, url: str, *, pg_schema: str | None = None) -> Store:
        """Connect and migrate. `pg_schema` puts a PostgreSQL store in its own schema."""
        target = async_url(url)
        parsed = make_url(target)
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            settings = {"lock_timeout": str(int(LOCK_WAIT_S * 1000))}
            if pg_schema:
                settings["search_path"] = pg_schema
            options["connect_args"] = {"server_settings": settings, "timeout": CONNECT_TIMEOUT_S}
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": LOCK_WAIT_S}
        engine = create_async_engine(target, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade)
        except Exception as exc:
            error = await translate(exc, engine)
            await engine.dispose()
            raise error from exc
        return cls(engine)

    async def close(self) -> None:
        """Later calls fail with StoreUnavailable."""
        self.closed = True
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except Exception:
            return False

    # ---- writes -------------------------------------------------------------------------

    @guarded
    async def upsert_meeting(self, m: MeetingRecord) -> None:
        values = {"meeting_uuid": m.meeting_uuid, "product": m.product, "meeting_id": m.meeting_id,
                  "account_id": m.account_id, "operator_id": m.operator_id, "session_key": m.session_key,
                  "started_at_ms": m.started_at_ms, "created_at_ms": _now_ms()}
        stmt = self._insert(s.meetings).values(values)
        # A meeting restarted by a new stream is live again.
        stmt = stmt.on_conflict_do_update(index_elements=["meeting_uuid"], set_={
            "stopped_at_ms": None, "stop_reason": None,
            "meeting_id": func.coalesce(stmt.excluded.meeting_id, s.meetings.c.meeting_id),
        })
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    @guarded
    async def upsert_stream(self, r: StreamRecord) -> None:
        values = {"rtms_stream_id": r.rtms_stream_id, "meeting_uuid": r.meeting_uuid,
                  "server_urls": r.server_urls, "state": r.state, "status_code": r.status_code,
                  "status_reason": r.status_reason, "started_at_ms": r.started_at_ms,
                  "stopped_at_ms": r.stopped_at_ms, "stop_reason": r.stop_reason, "updated_at_ms": _now_ms()}
        stmt = self._insert(s.streams).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["rtms_stream_id"], set_={
            k: stmt.excluded[k] for k in ("server_urls", "state", "status_code", "status_reason",
                                           "stopped_at_ms", "stop_reason", "updated_at_ms")})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    @guarded
    async def mark_stream(self, rtms_stream_id: str, *, state: str | None = None, stopped_at_ms: int | None = None,
                          stop_reason: int | None = None, status_code: int | None = None,
                          status_reason: str | None = None, server_urls: str | None = None) -> None:
        values: dict[str, Any] = {"updated_at_ms": _now_ms()}
        for name, value in (("state", state), ("stopped_at_ms", stopped_at_ms), ("stop_reason", stop_reason),
                            ("status_code", status_code), ("status_reason", status_reason),
                            ("server_urls", server_urls)):
            if value is not None:
                values[name] = value
        async with self.engine.begin() as conn:
            await conn.execute(update(s.streams).where(s.streams.c.rtms_stream_id == rtms_stream_id).values(values))

    @guarded
    async def mark_meeting_stopped(self, meeting_uuid: str, stopped_at_ms: int, stop_reason: int | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(s.meetings).where(s.meetings.c.meeting_uuid == meeting_uuid)
                               .values(stopped_at_ms=stopped_at_ms, stop_reason=stop_reason))

    @guarded
    async def write_batch(self, segments: Iterable[TranscriptSegment] = (), chats: Iterable[ChatMessage] = (),
                          events: Iterable[TimelineEvent] = ()) -> int:
        """Everything in one transaction; rows already stored are skipped. Returns rows new."""
        rows = (
            (s.transcript_segments, [_segment_row(x) for x in segments]),
            (s.chat_messages, [_chat_row(x) for x in chats]),
            (s.timeline_events, [_event_row(x) for x in events]),
        )
        inserted = 0
        async with self.engine.begin() as conn:
            for table, values in rows:
                if values:
                    stmt = (self._insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
                            .returning(table.c.id))
                    inserted += len((await conn.execute(stmt, values)).all())
        return inserted

    @guarded
    async def upsert_media_file(self, f: MediaFile) -> None:
        """One row per track (stream, kind, participant); later calls bring it up to date."""
        values = {name: getattr(f, name) for name in _MEDIA_FILE_FIELDS}
        values["user_id"] = _uid(f.user_id)
        values["track_key"] = _key(f.rtms_stream_id, f.kind, f.user_id)
        values["updated_at_ms"] = _now_ms()
        stmt = self._insert(s.media_files).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["track_key"], set_={
            k: stmt.excluded[k] for k in ("path", "format", "user_name", "first_ms", "last_ms", "frames",
                                           "bytes", "complete", "updated_at_ms")})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    # ---- reads --------------------------------------------------------------------------

    @guarded
    async def media_files(self, meeting_uuid: str) -> list[MediaFile]:
        m = s.media_files
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(m).where(m.c.meeting_uuid == meeting_uuid)
                                       .order_by(m.c.id))).mappings().all()
        return [_media_file(r) for r in rows]

    @guarded
    async def incomplete_media_files(self) -> list[MediaFile]:
        """Files whose stream had not ended when the gateway last stopped."""
        m = s.media_files
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(m).where(m.c.complete.is_(False)).order_by(m.c.id))).mappings().all()
        return [_media_file(r) for r in rows]

    @guarded
    async def media_file(self, file_id: int) -> MediaFile | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(s.media_files).where(s.media_files.c.id == file_id))).mappings().first()
        return _media_file(row) if row else None

    @guarded
    async def list_meetings(self, limit: int = 100, offset: int = 0) -> list[MeetingSummary]:
        m = s.meetings
        query = (select(m, *_counts()).order_by(m.c.started_at_ms.desc().nulls_last(), m.c.id.desc())
                 .limit(limit).offset(offset))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            states = await _stream_states(conn, [r["meeting_uuid"] for r in rows])
        return [_summary(MeetingSummary, r, states.get(r["meeting_uuid"], [])) for r in rows]

    @guarded
    async def get_meeting(self, meeting_uuid: str) -> MeetingDetail | None:
        m = s.meetings
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m, *_counts()).where(m.c.meeting_uuid == meeting_uuid))).mappings().first()
            if row is None:
                return None
            streams = (await conn.execute(select(s.streams).where(s.streams.c.meeting_uuid == meeting_uuid)
                                          .order_by(s.streams.c.id))).mappings().all()
        detail = _summary(MeetingDetail, row, [x["state"] for x in streams])
        detail.account_id, detail.operator_id, detail.session_key = row["account_id"], row["operator_id"], row["session_key"]
        detail.streams = [{k: v for k, v in x.items() if k != "id"} for x in streams]
        return detail

    @guarded
    async def stream(self, rtms_stream_id: str) -> StreamRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(s.streams).where(s.streams.c.rtms_stream_id == rtms_stream_id))).mappings().first()
        return _stream(row) if row else None

    @guarded
    async def open_streams(self) -> list[StreamRecord]:
        """Streams not known to have ended: candidates to rejoin after a restart."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(s.streams).where(s.streams.c.stopped_at_ms.is_(None))
                                       .order_by(s.streams.c.id))).mappings().all()
        return [_stream(r) for r in rows]

    @guarded
    async def streams_to_rejoin(self) -> list[tuple[StreamRecord, str, int]]:
        """Open streams with their meeting's product and when the gateway last held them
        (`updated_at_ms`, kept fresh by `touch_streams` while they run)."""
        st, m = s.streams, s.meetings
        query = (select(st, m.c.product).join(m, m.c.meeting_uuid == st.c.meeting_uuid)
                 .where(st.c.stopped_at_ms.is_(None)).order_by(st.c.id))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [(_stream(r), r["product"], r["updated_at_ms"]) for r in rows]

    @guarded
    async def touch_streams(self, rtms_stream_ids: list[str]) -> None:
        """Note that these streams are still held (a restart rejoins only recent ones)."""
        if rtms_stream_ids:
            async with self.engine.begin() as conn:
                await conn.execute(update(s.streams).where(s.streams.c.rtms_stream_id.in_(rtms_stream_ids))
                                   .values(updated_at_ms=_now_ms()))

    @guarded
    async def transcript(self, meeting_uuid: str) -> list[TranscriptSegment]:
        t = s.transcript_segments
        query = select(t).where(t.c.meeting_uuid == meeting_uuid).order_by(
            func.coalesce(t.c.start_time, t.c.timestamp), t.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [TranscriptSegment(
            meeting_uuid=r["meeting_uuid"], rtms_stream_id=r["rtms_stream_id"], user_id=_from_uid(r["user_id"]),
            user_name=r["user_name"], text=r["text"], timestamp=r["timestamp"], start_time=r["start_time"],
            end_time=r["end_time"], language=r["language"], attribute=r["attribute"],
            received_at_ms=r["received_at_ms"], speaker_inferred=bool(r["speaker_inferred"])) for r in rows]

    @guarded
    async def chat(self, meeting_uuid: str) -> list[ChatMessage]:
        c = s.chat_messages
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(c).where(c.c.meeting_uuid == meeting_uuid)
                                       .order_by(c.c.timestamp, c.c.id))).mappings().all()
        return [ChatMessage(
            meeting_uuid=r["meeting_uuid"], rtms_stream_id=r["rtms_stream_id"], message_id=r["message_id"],
            sender_user_id=_from_uid(r["sender_user_id"]), sender_name=r["sender_name"],
            receiver_user_id=_from_uid(r["receiver_user_id"]), receiver_name=r["receiver_name"],
            chat_session_type=r["chat_session_type"], text=r["text"], operation_type=r["operation_type"],
            timestamp=r["timestamp"], raw=r["raw"]) for r in rows]

    @guarded
    async def timeline(self, meeting_uuid: str) -> list[TimelineEvent]:
        e = s.timeline_events
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(e).where(e.c.meeting_uuid == meeting_uuid)
                                       .order_by(e.c.timestamp, e.c.id))).mappings().all()
        return [TimelineEvent(
            meeting_uuid=r["meeting_uuid"], rtms_stream_id=r["rtms_stream_id"], event_type=r["event_type"],
            timestamp=r["timestamp"], user_id=_from_uid(r["user_id"]), user_name=r["user_name"],
            payload=r["payload"]) for r in rows]


# ---- helpers ----------------------------------------------------------------------------


def _upgrade(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={int(LOCK_WAIT_S * 1000)}"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _segment_row(x: TranscriptSegment) -> dict[str, Any]:
    return {"dedup_key": _key(x.rtms_stream_id, x.user_id, x.timestamp, x.start_time, x.end_time, x.text),
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "user_id": _uid(x.user_id),
            "user_name": x.user_name, "text": x.text, "timestamp": x.timestamp, "start_time": x.start_time,
            "end_time": x.end_time, "language": x.language, "attribute": x.attribute,
            "received_at_ms": x.received_at_ms, "speaker_inferred": x.speaker_inferred}


def _chat_row(x: ChatMessage) -> dict[str, Any]:
    return {"dedup_key": _key(x.rtms_stream_id, x.message_id, x.timestamp, x.operation_type, x.text),
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "message_id": x.message_id,
            "sender_user_id": _uid(x.sender_user_id), "sender_name": x.sender_name,
            "receiver_user_id": _uid(x.receiver_user_id), "receiver_name": x.receiver_name,
            "chat_session_type": x.chat_session_type, "text": x.text, "operation_type": x.operation_type,
            "timestamp": x.timestamp, "raw": x.raw}


def _event_row(x: TimelineEvent) -> dict[str, Any]:
    return {"dedup_key": _key(x.rtms_stream_id, x.event_type, x.timestamp, x.user_id),
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "event_type": x.event_type,
            "timestamp": x.timestamp, "user_id": _uid(x.user_id), "user_name": x.user_name, "payload": x.payload}


def _counts() -> list[Any]:
    uuid = s.meetings.c.meeting_uuid

    def count(table: Any, *where: Any, what: Any = None) -> Any:
        return (select(func.count(what if what is not None else table.c.id))
                .where(table.c.meeting_uuid == uuid, *where).scalar_subquery())

    e = s.timeline_events
    return [
        count(s.transcript_segments).label("segment_count"),
        count(s.chat_messages).label("chat_count"),
        count(e).label("event_count"),
        count(e, e.c.event_type == int(EventType.PARTICIPANT_JOIN), what=e.c.user_id.distinct()).label("participant_count"),
    ]


async def _stream_states(conn: Any, uuids: list[str]) -> dict[str, list[str]]:
    if not uuids:
        return {}
    rows = await conn.execute(select(s.streams.c.meeting_uuid, s.streams.c.state)
                              .where(s.streams.c.meeting_uuid.in_(uuids)))
    out: dict[str, list[str]] = {}
    for uuid, state in rows:
        out.setdefault(uuid, []).append(state)
    return out


def _summary(cls: type, row: Any, states: list[str]) -> Any:
    if any(st in LIVE_STATES for st in states) and row["stopped_at_ms"] is None:
        state = "live"
    elif states and all(st in ("rejected", "lost", "failed") for st in states):
        state = "failed"
    else:
        state = "stopped" if row["stopped_at_ms"] is not None or states else "pending"
    return cls(meeting_uuid=row["meeting_uuid"], product=row["product"], state=state,
               started_at_ms=row["started_at_ms"], stopped_at_ms=row["stopped_at_ms"],
               stop_reason=row["stop_reason"], meeting_id=row["meeting_id"],
               segment_count=row["segment_count"], chat_count=row["chat_count"],
               event_count=row["event_count"], participant_count=row["participant_count"])


_MEDIA_FILE_FIELDS = ("meeting_uuid", "rtms_stream_id", "kind", "user_id", "user_name", "codec", "format",
                      "path", "sample_rate", "channels", "origin_ms", "first_ms", "last_ms", "frames",
                      "bytes", "complete")


def _media_file(r: Any) -> MediaFile:
    f = MediaFile(**{name: r[name] for name in _MEDIA_FILE_FIELDS if name != "user_id"},
                  user_id=_from_uid(r["user_id"]), id=r["id"])
    f.complete = bool(f.complete)
    return f


def _stream(r: Any) -> StreamRecord:
    return StreamRecord(
        rtms_stream_id=r["rtms_stream_id"], meeting_uuid=r["meeting_uuid"], server_urls=r["server_urls"],
        state=r["state"], started_at_ms=r["started_at_ms"], stopped_at_ms=r["stopped_at_ms"],
        stop_reason=r["stop_reason"], status_code=r["status_code"], status_reason=r["status_reason"])
