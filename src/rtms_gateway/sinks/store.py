"""The store: meetings, streams, transcripts, chat and the events timeline.

SQLAlchemy Core on the asyncio engine, one schema for SQLite (aiosqlite) and PostgreSQL
(asyncpg), brought up to date by Alembic on open. Writes come in batches (one transaction
per `write_batch`) and are idempotent: a row that arrives twice is stored once.

Each write adds its items to the feed (`sinks.feed`) in its own transaction: one per record
new, one per change recorded. Writes that touch the feed run one at a time, so the feed's
order is the order of commits; `on_items` listeners hear of each write's items once it is
committed, in that order. Reads: whole listings and pages by cursor
(`sinks.feed_records`), the feed itself, and search (`sinks.search`).

Every public coroutine fails only with StoreUnavailable or RecordRefused (`store_errors`).
PostgreSQL's text cannot hold NUL: there a NUL in any text is stored as U+FFFD, and
counted (`counters["nul_replaced"]`); SQLite keeps text as it is. Ids are looked up by
their fixed-size key (`schema.key_of`), so an id of any length is stored and found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..client.lifecycle import meeting_state
from ..protocol.constants import EventType
from . import chat, feed
from . import feed_records as records
from . import schema as s
from . import store_rows as convert
from .cursors import Cursored
from .delivery_memory import DeliveryMemory
from .exports import MEETING_TIMES, media_file_json, meeting_json, stream_json, with_iso
from .feed import FeedItem, FeedKind, NewItem
from .keys import KeyStore
from .records import (
    ChatMessage,
    MediaFile,
    MeetingRecord,
    StreamRecord,
    TimelineEvent,
    TranscriptSegment,
)
from .schema import key_of as _key
from .search import SEARCHABLE, SearchHit, Term, parse_query, run_search
from .store_errors import guarded
from .store_open import dispose, execute, open_engine, transact

log = logging.getLogger(__name__)
Listener = Callable[[list[FeedItem]], None]

NUL, REPLACEMENT = "\x00", "\ufffd"


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
        return with_iso(asdict(self), MEETING_TIMES)


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
        self._feed_lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        # Erasures of feed items (a revoked stream) so far: a reader holding items it was
        # handed (`on_items`) reads the store again after one.
        self.erasures = 0

    @classmethod
    async def open(cls, url: str, *, pg_schema: str | None = None) -> Store:
        """Connect and migrate. `pg_schema` puts a PostgreSQL store in its own schema.
        Whatever keeps the store from opening is a StoreUnavailable (its password hidden)."""
        return cls(await open_engine(url, pg_schema=pg_schema))

    async def close(self) -> None:
        """Later calls fail with StoreUnavailable."""
        self.closed = True
        await dispose(self.engine)

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

    def on_items(self, listener: Listener) -> Callable[[], None]:
        """Have `listener` called with the feed items of each write once it is committed,
        in feed order (never with an empty list; an error it raises is logged and the
        write stands). It runs on the event loop before the next write may start: it must
        be quick (hand the items over, never wait). Returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def _feed(self, write: Callable[[Connection], list[FeedItem]]) -> list[FeedItem]:
        """`write(conn)` in one transaction (`store_open.transact`: on SQLite, whole in the
        writer's thread); the feed items it returns are published once it commits. One at
        a time: a sequence number taken is committed before the next is taken."""
        async with self._feed_lock:
            made = await transact(self.engine, write)
            self._publish(made)
        return made

    def _publish(self, made: list[FeedItem]) -> None:
        """The listeners hear of a write's items, once it is committed."""
        if made:
            for listener in list(self._listeners):
                try:
                    listener(made)
                except Exception:  # a listener's bug must not undo a commit
                    log.exception("a feed listener failed; the write stands")

    def _changed(self, conn: Connection, *items: NewItem) -> list[FeedItem]:
        return feed.append(conn, self._insert, items, _now_ms())

    @guarded
    async def upsert_meeting(self, m: MeetingRecord) -> None:
        """A meeting new, or started again after it ended, is `meeting.started`."""
        values = {"meeting_uuid": m.meeting_uuid, "product": m.product, "meeting_id": m.meeting_id,
                  "account_id": m.account_id, "operator_id": m.operator_id, "session_key": m.session_key,
                  "started_at_ms": m.started_at_ms, "created_at_ms": _now_ms()}
        replaced = self._scrub(values)
        key = values["meeting_key"] = _key(values["meeting_uuid"])
        stmt = self._insert(s.meetings).values(values)
        # A meeting restarted by a new stream is live again.
        stmt = stmt.on_conflict_do_update(index_elements=["meeting_key"], set_={
            "stopped_at_ms": None, "stop_reason": None,
            "meeting_id": func.coalesce(stmt.excluded.meeting_id, s.meetings.c.meeting_id),
        })

        def write(conn: Connection) -> list[FeedItem]:
            before = _row(conn, s.meetings, s.meetings.c.meeting_key == key)
            conn.execute(stmt)
            if before is not None and before["stopped_at_ms"] is None:
                return []
            after = _row(conn, s.meetings, s.meetings.c.meeting_key == key)
            assert after is not None
            return self._changed(conn, NewItem.of(feed.MEETING_STARTED, after["meeting_uuid"],
                                                  meeting_json(after)))

        await self._feed(write)
        self.counters["nul_replaced"] += replaced

    @guarded
    async def upsert_stream(self, r: StreamRecord) -> None:
        """A stream new, or in a state other than the one stored, is a `meeting.state` (or
        `meeting.interrupted`) item."""
        values = {"rtms_stream_id": r.rtms_stream_id, "meeting_uuid": r.meeting_uuid,
                  "server_urls": r.server_urls, "state": r.state, "status_code": r.status_code,
                  "status_reason": r.status_reason, "started_at_ms": r.started_at_ms,
                  "stopped_at_ms": r.stopped_at_ms, "stop_reason": r.stop_reason,
                  "updated_at_ms": _now_ms()}
        replaced = self._scrub(values)
        key = values["stream_key"] = _key(values["rtms_stream_id"])
        stmt = self._insert(s.streams).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["stream_key"], set_={
            k: stmt.excluded[k] for k in ("server_urls", "state", "status_code", "status_reason",
                                           "stopped_at_ms", "stop_reason", "updated_at_ms")})

        def write(conn: Connection) -> list[FeedItem]:
            before = _row(conn, s.streams, s.streams.c.stream_key == key)
            conn.execute(stmt)
            if before is not None and before["state"] == r.state:
                return []
            after = _row(conn, s.streams, s.streams.c.stream_key == key)
            assert after is not None
            return self._changed(conn, _stream_item(after))

        await self._feed(write)
        self.counters["nul_replaced"] += replaced

    @guarded
    async def mark_stream(self, rtms_stream_id: str, *, state: str | None = None,
                          stopped_at_ms: int | None = None, stop_reason: int | None = None,
                          status_code: int | None = None, status_reason: str | None = None,
                          server_urls: str | None = None) -> None:
        """Update a stored stream (nothing if there is none); a new state is an item."""
        values: dict[str, Any] = {"updated_at_ms": _now_ms()}
        for name, value in (("state", state), ("stopped_at_ms", stopped_at_ms), ("stop_reason", stop_reason),
                            ("status_code", status_code), ("status_reason", status_reason),
                            ("server_urls", server_urls)):
            if value is not None:
                values[name] = value
        key, replaced = _key(self._id(rtms_stream_id)), self._scrub(values)

        def write(conn: Connection) -> list[FeedItem]:
            before = _row(conn, s.streams, s.streams.c.stream_key == key)
            conn.execute(update(s.streams).where(s.streams.c.stream_key == key).values(values))
            if before is None or state is None or before["state"] == values["state"]:
                return []
            return self._changed(conn, _stream_item({**before, **values}))

        await self._feed(write)
        self.counters["nul_replaced"] += replaced

    @guarded
    async def mark_meeting_stopped(self, meeting_uuid: str, stopped_at_ms: int, stop_reason: int | None) -> None:
        """The first stop of a live meeting is `meeting.ended` (its other streams' later
        stops change nothing the feed tells)."""
        m, key = s.meetings, _key(self._id(meeting_uuid))

        def write(conn: Connection) -> list[FeedItem]:
            before = _row(conn, m, m.c.meeting_key == key)
            conn.execute(update(m).where(m.c.meeting_key == key)
                         .values(stopped_at_ms=stopped_at_ms, stop_reason=stop_reason))
            if before is None or before["stopped_at_ms"] is not None:
                return []
            after = {**before, "stopped_at_ms": stopped_at_ms, "stop_reason": stop_reason}
            return self._changed(conn, NewItem.of(feed.MEETING_ENDED, before["meeting_uuid"],
                                                  meeting_json(after)))

        await self._feed(write)

    @guarded
    async def add_account_item(self, kind: str, body: dict[str, Any], key: str) -> bool:
        """A notice about the Zoom account (`feed.CONCURRENCY_ITEMS[kind]`) as an item of no
        meeting; `key` names the notice, so one delivered twice (Zoom's retry, before or
        after a restart) is one item. Whether it was new."""
        new = NewItem.of(feed.CONCURRENCY_ITEMS[kind], feed.NO_MEETING, body, feed.ACCOUNT_KEY + key)
        made = await self._feed(lambda conn: list(
            feed.append_records(conn, self._insert, [new], _now_ms()).values()))
        return bool(made)

    @guarded
    async def write_batch(self, segments: Iterable[TranscriptSegment] = (), chats: Iterable[ChatMessage] = (),
                          events: Iterable[TimelineEvent] = ()) -> int:
        """Everything in one transaction; rows already stored are skipped. Returns rows new."""
        return len(await self.write_batch_items(segments, chats, events))

    @guarded
    async def write_batch_items(self, segments: Iterable[TranscriptSegment] = (),
                                chats: Iterable[ChatMessage] = (),
                                events: Iterable[TimelineEvent] = ()) -> list[FeedItem]:
        """`write_batch`, returning the feed items of the records new (one each, in feed
        order: segments, then chat, then events, each in the order given)."""
        batch = records.RecordBatch(self._scrub)
        batch.add_segments(segments)
        batch.add_chats(chats)
        batch.add_events(events)
        made = await self._feed(partial(batch.write, insert=self._insert, now_ms=_now_ms(),
                                        index_texts=not self._pg))
        self.counters["nul_replaced"] += batch.replaced
        return made

    @guarded
    async def upsert_media_file(self, f: MediaFile) -> None:
        """One row per track (stream, kind, participant); later calls bring it up to date.
        A track new is `media.new`, one that becomes complete `media.ready`."""
        values = convert.media_file_row(f)
        values["updated_at_ms"] = _now_ms()
        replaced = self._scrub(values)
        m = s.media_files
        insert = self._insert(m).values(values)
        stmt = insert.on_conflict_do_update(index_elements=["track_key"], set_={
            k: insert.excluded[k] for k in ("path", "format", "user_name", "first_ms", "last_ms",
                                             "frames", "bytes", "complete", "updated_at_ms")
        }).returning(m.c.id)

        def write(conn: Connection) -> list[FeedItem]:
            before = _row(conn, m, m.c.track_key == values["track_key"])
            file_id = conn.execute(stmt).scalar_one()
            items = []
            stored = convert.media_file({**values, "id": file_id})
            body = media_file_json(stored)
            if before is None:
                items.append(NewItem.of(feed.MEDIA_NEW, stored.meeting_uuid, body))
            if stored.complete and (before is None or not before["complete"]):
                items.append(NewItem.of(feed.MEDIA_READY, stored.meeting_uuid, body))
            return self._changed(conn, *items)

        await self._feed(write)
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
        detail: MeetingDetail = _summary(MeetingDetail, row, [x["state"] for x in streams])
        detail.account_id = row["account_id"]
        detail.operator_id = row["operator_id"]
        detail.session_key = row["session_key"]
        detail.streams = [stream_json(x) for x in streams]
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
            stmt = (update(s.streams).where(s.streams.c.stream_key.in_(
                [_key(self._id(x)) for x in rtms_stream_ids])).values(updated_at_ms=_now_ms()))
            await execute(self.engine, stmt)

    async def transcript(self, meeting_uuid: str) -> list[TranscriptSegment]:
        """The whole transcript, by time."""
        return [row.record for row in await self.transcript_page(meeting_uuid)]

    async def chat(self, meeting_uuid: str) -> list[ChatMessage]:
        return [row.record for row in await self.chat_page(meeting_uuid)]

    async def timeline(self, meeting_uuid: str) -> list[TimelineEvent]:
        return [row.record for row in await self.timeline_page(meeting_uuid)]

    async def transcript_page(self, meeting_uuid: str, *, after: int | None = None,
                              limit: int | None = None) -> list[Cursored[TranscriptSegment]]:
        """Segments with their cursors: without a `limit` the whole transcript by time (as
        `transcript`); with one, at most `limit` after `after`, in feed order."""
        return await self._listed(records.SEGMENTS, meeting_uuid, after, limit)

    async def chat_page(self, meeting_uuid: str, *, after: int | None = None,
                        limit: int | None = None) -> list[Cursored[ChatMessage]]:
        """Chat messages, as `transcript_page` does segments."""
        return await self._listed(records.CHATS, meeting_uuid, after, limit)

    @guarded
    async def chat_message(self, meeting_uuid: str, message_id: str) -> Cursored[ChatMessage] | None:
        """A chat message as it stands, with its cursor (None if it is not stored)."""
        async with self.engine.connect() as conn:
            return await chat.one(conn, self._id(meeting_uuid), self._id(message_id))

    @guarded
    async def chat_history(self, meeting_uuid: str, message_ids: Collection[str]
                           ) -> dict[str, list[Cursored[ChatMessage]]]:
        """Every version of each of these chat messages (new, updates, deletion, ...) as it
        came, oldest first, each with its cursor; a message not stored is left out."""
        if not message_ids:
            return {}
        asked = {self._id(x): x for x in message_ids}  # keyed by the ids as the caller gave them
        async with self.engine.connect() as conn:
            found = await chat.history(conn, self._id(meeting_uuid), list(asked))
        return {asked[x]: versions for x, versions in found.items()}

    async def timeline_page(self, meeting_uuid: str, *, after: int | None = None,
                            limit: int | None = None) -> list[Cursored[TimelineEvent]]:
        """Timeline events, as `transcript_page` does segments."""
        return await self._listed(records.EVENTS, meeting_uuid, after, limit)

    @guarded
    async def _listed(self, listing: records.Listing[Any], meeting_uuid: str, after: int | None,
                      limit: int | None) -> list[Cursored[Any]]:
        async with self.engine.connect() as conn:
            if limit is None:
                return await listing.whole(conn, self._id(meeting_uuid))
            return await listing.page(conn, self._id(meeting_uuid), after, limit)

    @guarded
    async def feed(self, *, after: int | None = None, meeting_uuid: str | None = None,
                   kinds: Collection[FeedKind] | None = None, limit: int = 1000) -> list[FeedItem]:
        """Up to `limit` feed items after the sequence number `after` (`parse_cursor` of a
        client's cursor; None: from the start), oldest first; of one meeting, of some kinds."""
        key = _key(self._id(meeting_uuid)) if meeting_uuid is not None else None
        query = feed.items_query(after=after, meeting_key=key, kinds=kinds, limit=limit)
        async with self.engine.connect() as conn:
            return feed.items_of(await conn.execute(query))

    @guarded
    async def feed_head(self) -> int | None:
        """The newest item's sequence number: where a consumer that wants only what comes
        next starts (None while the feed is empty)."""
        async with self.engine.connect() as conn:
            seq: int | None = (await conn.execute(feed.head_query())).scalar()
        return seq

    async def search(self, q: str, *, meeting_uuid: str | None = None,
                     kinds: Collection[FeedKind] = SEARCHABLE, limit: int = 20) -> list[SearchHit]:
        """Transcript segments and chat messages matching `q`, best first (`sinks.search`);
        BadSearch for a query that cannot be run."""
        return await self._search(parse_query(q), meeting_uuid, kinds, limit)

    @guarded
    async def _search(self, terms: tuple[Term, ...], meeting_uuid: str | None,
                      kinds: Collection[FeedKind], limit: int) -> list[SearchHit]:
        uuid = self._id(meeting_uuid) if meeting_uuid is not None else None
        async with self.engine.connect() as conn:
            return await run_search(conn, terms, pg=self._pg, meeting_uuid=uuid, kinds=kinds,
                                    limit=limit)


# ---- helpers ----------------------------------------------------------------------------


def _row(conn: Connection, table: Any, where: Any) -> dict[str, Any] | None:
    row = conn.execute(select(table).where(where)).mappings().first()
    return dict(row) if row is not None else None


def _stream_item(row: dict[str, Any]) -> NewItem:
    return NewItem.of(feed.stream_item(row["state"]), row["meeting_uuid"], stream_json(row))


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
        count(e, e.c.event_type == int(EventType.PARTICIPANT_JOIN),
              what=e.c.user_id.distinct()).label("participant_count"),
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
