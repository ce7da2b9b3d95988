"""The store: meetings, streams, transcripts, chat and the events timeline.

SQLAlchemy Core on the asyncio engine, one schema for SQLite (aiosqlite) and PostgreSQL
(asyncpg), brought up to date by Alembic on open. Writes come in batches (one transaction
per `write_batch`) and are idempotent: a row that arrives twice is stored once.

Every public coroutine fails only with StoreUnavailable or RecordRefused (`store_errors`).
PostgreSQL's text cannot hold NUL: there a NUL in any text is stored as U+FFFD, and
counted (`counters["nul_replaced"]`); SQLite keeps text as it is. Ids are looked up by
their fixed-size key (`schema.key_of`), so an id of any length is stored and found.
"""

from __future__ import annotations

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

from ..client.lifecycle import meeting_state
from ..protocol.constants import EventType
from ..protocol.errors import StoreUnavailable
from . import schema as s
from .keys import KeyStore
from . import store_rows as convert
from .delivery_memory import DeliveryMemory
from .records import ChatMessage, MediaFile, MeetingRecord, StreamRecord, TimelineEvent, TranscriptSegment
from .schema import key_of as _key
from .store_errors import guarded, translate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# How long a write waits on a lock before failing: the pipeline then journals the batch
# instead of holding every stream's records behind one stuck transaction.
LOCK_WAIT_S = 2.0
# How long connecting to PostgreSQL may take before the database counts as away.
CONNECT_TIMEOUT_S = 10.0
NUL, REPLACEMENT = "\x00", "\ufffd"


def async_url(url: str) -> str:
    """`sqlite:///x` and `postgresql://…` name the async drivers this store uses."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _open_failure(url: str, exc: Exception) -> str:
    """"cannot open the database URL (why)", the URL and the reason without the password."""
    try:
        parsed = make_url(url)
        shown, password = parsed.render_as_string(hide_password=True), parsed.password
    except Exception:
        shown, password = "(an unreadable URL)", None
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if why.startswith("(") and ") " in why:  # SQLAlchemy's "(driver.Error) message"
        why = why.split(") ", 1)[1]
    if password:
        why = why.replace(str(password), "***")
    return f"cannot open the database {shown} ({why[:200]})"


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
        self.counters = {"nul_replaced": 0}
        self._pg = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._pg else sqlite.insert
        self.memory = DeliveryMemory(self)
        self.keys = KeyStore(self)

    @classmethod
    async def open(cls, url: str, *, pg_schema: str | None = None) -> Store:
        """Connect and migrate. `pg_schema` puts a PostgreSQL store in its own schema.
        Whatever keeps the store from opening is a StoreUnavailable (its password hidden)."""
        try:
            return await cls._open(url, pg_schema)
        except Exception as exc:
            raise StoreUnavailable(_open_failure(url, exc)) from exc

    @classmethod
    async def _open(cls, url: str, pg_schema: str | None) -> Store:
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

    def _scrub(self, row: dict[str, Any]) -> int:
        """On PostgreSQL, NUL in the row's text becomes U+FFFD (in place); how many. The
        caller counts them once the row is written."""
        replaced = 0
        if self._pg:
            for name, value in row.items():
                if type(value) is str and NUL in value:
                    replaced += value.count(NUL)
                    row[name] = value.replace(NUL, REPLACEMENT)
        return replaced

    def _id(self, value: str) -> str:
        """An id to look up, as it was stored."""
        return value.replace(NUL, REPLACEMENT) if self._pg and NUL in value else value

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
        replaced = self._scrub(values)
        values["meeting_key"] = _key(values["meeting_uuid"])
        stmt = self._insert(s.meetings).values(values)
        # A meeting restarted by a new stream is live again.
        stmt = stmt.on_conflict_do_update(index_elements=["meeting_key"], set_={
            "stopped_at_ms": None, "stop_reason": None,
            "meeting_id": func.coalesce(stmt.excluded.meeting_id, s.meetings.c.meeting_id),
        })
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
        self.counters["nul_replaced"] += replaced

    @guarded
    async def upsert_stream(self, r: StreamRecord) -> None:
        values = {"rtms_stream_id": r.rtms_stream_id, "meeting_uuid": r.meeting_uuid,
                  "server_urls": r.server_urls, "state": r.state, "status_code": r.status_code,
                  "status_reason": r.status_reason, "started_at_ms": r.started_at_ms,
                  "stopped_at_ms": r.stopped_at_ms, "stop_reason": r.stop_reason, "updated_at_ms": _now_ms()}
        replaced = self._scrub(values)
        values["stream_key"] = _key(values["rtms_stream_id"])
        stmt = self._insert(s.streams).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["stream_key"], set_={
            k: stmt.excluded[k] for k in ("server_urls", "state", "status_code", "status_reason",
                                           "stopped_at_ms", "stop_reason", "updated_at_ms")})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
        self.counters["nul_replaced"] += replaced

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
        key, replaced = _key(self._id(rtms_stream_id)), self._scrub(values)
        async with self.engine.begin() as conn:
            await conn.execute(update(s.streams).where(s.streams.c.stream_key == key).values(values))
        self.counters["nul_replaced"] += replaced

    @guarded
    async def mark_meeting_stopped(self, meeting_uuid: str, stopped_at_ms: int, stop_reason: int | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(s.meetings).where(s.meetings.c.meeting_key == _key(self._id(meeting_uuid)))
                               .values(stopped_at_ms=stopped_at_ms, stop_reason=stop_reason))

    @guarded
    async def write_batch(self, segments: Iterable[TranscriptSegment] = (), chats: Iterable[ChatMessage] = (),
                          events: Iterable[TimelineEvent] = ()) -> int:
        """Everything in one transaction; rows already stored are skipped. Returns rows new."""
        rows = (
            (s.transcript_segments, [convert.segment_row(x) for x in segments]),
            (s.chat_messages, [convert.chat_row(x) for x in chats]),
            (s.timeline_events, [convert.event_row(x) for x in events]),
        )
        replaced: dict[str, int] = {}  # dedup key -> NULs replaced, for the rows that had any
        if self._pg:
            for _, values in rows:
                for row in values:
                    if n := self._scrub(row):
                        replaced[row["dedup_key"]] = n
        inserted: list[str] = []
        async with self.engine.begin() as conn:
            for table, values in rows:
                if values:
                    stmt = (self._insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
                            .returning(table.c.dedup_key))
                    inserted += (await conn.execute(stmt, values)).scalars().all()
        if replaced:  # rows stored before (a replay) were not written again
            self.counters["nul_replaced"] += sum(replaced.get(key, 0) for key in inserted)
        return len(inserted)

    @guarded
    async def upsert_media_file(self, f: MediaFile) -> None:
        """One row per track (stream, kind, participant); later calls bring it up to date."""
        values = convert.media_file_row(f)
        values["updated_at_ms"] = _now_ms()
        replaced = self._scrub(values)
        stmt = self._insert(s.media_files).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["track_key"], set_={
            k: stmt.excluded[k] for k in ("path", "format", "user_name", "first_ms", "last_ms", "frames",
                                           "bytes", "complete", "updated_at_ms")})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
        self.counters["nul_replaced"] += replaced

    # ---- reads --------------------------------------------------------------------------

    @guarded
    async def media_files(self, meeting_uuid: str) -> list[MediaFile]:
        m = s.media_files
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(m).where(m.c.meeting_uuid == self._id(meeting_uuid))
                                       .order_by(m.c.id))).mappings().all()
        return [convert.media_file(r) for r in rows]

    @guarded
    async def incomplete_media_files(self) -> list[MediaFile]:
        """Files whose stream had not ended when the gateway last stopped."""
        m = s.media_files
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(m).where(m.c.complete.is_(False)).order_by(m.c.id))).mappings().all()
        return [convert.media_file(r) for r in rows]

    @guarded
    async def media_file(self, file_id: int) -> MediaFile | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(s.media_files).where(s.media_files.c.id == file_id))).mappings().first()
        return convert.media_file(row) if row else None

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
        m, uuid = s.meetings, self._id(meeting_uuid)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m, *_counts()).where(m.c.meeting_key == _key(uuid)))).mappings().first()
            if row is None:
                return None
            streams = (await conn.execute(select(s.streams).where(s.streams.c.meeting_uuid == uuid)
                                          .order_by(s.streams.c.id))).mappings().all()
        detail = _summary(MeetingDetail, row, [x["state"] for x in streams])
        detail.account_id, detail.operator_id, detail.session_key = row["account_id"], row["operator_id"], row["session_key"]
        detail.streams = [{k: v for k, v in x.items() if k not in ("id", "stream_key")} for x in streams]
        return detail

    @guarded
    async def stream(self, rtms_stream_id: str) -> StreamRecord | None:
        key = _key(self._id(rtms_stream_id))
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(s.streams).where(s.streams.c.stream_key == key))).mappings().first()
        return convert.stream_record(row) if row else None

    @guarded
    async def open_streams(self) -> list[StreamRecord]:
        """Streams not known to have ended: candidates to rejoin after a restart."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(s.streams).where(s.streams.c.stopped_at_ms.is_(None))
                                       .order_by(s.streams.c.id))).mappings().all()
        return [convert.stream_record(r) for r in rows]

    @guarded
    async def streams_to_rejoin(self) -> list[tuple[StreamRecord, str, int]]:
        """Open streams with their meeting's product and when the gateway last held them
        (`updated_at_ms`, kept fresh by `touch_streams` while they run)."""
        st, m = s.streams, s.meetings
        query = (select(st, m.c.product).join(m, m.c.meeting_uuid == st.c.meeting_uuid)
                 .where(st.c.stopped_at_ms.is_(None)).order_by(st.c.id))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [(convert.stream_record(r), r["product"], r["updated_at_ms"]) for r in rows]

    @guarded
    async def touch_streams(self, rtms_stream_ids: list[str]) -> None:
        """Note that these streams are still held (a restart rejoins only recent ones)."""
        if rtms_stream_ids:
            keys = [_key(self._id(x)) for x in rtms_stream_ids]
            async with self.engine.begin() as conn:
                await conn.execute(update(s.streams).where(s.streams.c.stream_key.in_(keys))
                                   .values(updated_at_ms=_now_ms()))

    @guarded
    async def transcript(self, meeting_uuid: str) -> list[TranscriptSegment]:
        t = s.transcript_segments
        query = select(t).where(t.c.meeting_uuid == self._id(meeting_uuid)).order_by(
            func.coalesce(t.c.start_time, t.c.timestamp), t.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [convert.segment(r) for r in rows]

    @guarded
    async def chat(self, meeting_uuid: str) -> list[ChatMessage]:
        c = s.chat_messages
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(c).where(c.c.meeting_uuid == self._id(meeting_uuid))
                                       .order_by(c.c.timestamp, c.c.id))).mappings().all()
        return [convert.chat(r) for r in rows]

    @guarded
    async def timeline(self, meeting_uuid: str) -> list[TimelineEvent]:
        e = s.timeline_events
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(e).where(e.c.meeting_uuid == self._id(meeting_uuid))
                                       .order_by(e.c.timestamp, e.c.id))).mappings().all()
        return [convert.event(r) for r in rows]


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
    state = meeting_state(states, stopped=row["stopped_at_ms"] is not None).value
    return cls(meeting_uuid=row["meeting_uuid"], product=row["product"], state=state,
               started_at_ms=row["started_at_ms"], stopped_at_ms=row["stopped_at_ms"],
               stop_reason=row["stop_reason"], meeting_id=row["meeting_id"],
               segment_count=row["segment_count"], chat_count=row["chat_count"],
               event_count=row["event_count"], participant_count=row["participant_count"])
