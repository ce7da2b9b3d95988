"""Records and their feed items: written together, read back whole or a page at a time.

A batch of records (transcript segments, chat messages, timeline events) is written in one
transaction: the records first, each table in one statement that skips those stored
already (a replay), as before the feed existed; then an item for each record new, keyed by
the record (`item_key`: a letter for its table and its `dedup_key`); then (SQLite) the new
texts into the search table under their items' sequence numbers. A chat record is a
version of a message (new, update, delete): its item shows the message once the version is
applied, and the message's current state is written after the items (`sinks.chat`).

A record and its item are linked by that key alone (`linked`). Reads: a meeting's records
whole, in the order the API has always listed them (by time), or a page of them in feed
order after a cursor, through the feed's index on (meeting, sequence number).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, Table, and_, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from . import chat, feed
from . import schema as s
from . import store_rows as convert
from .bulk_insert import insert_new
from .chat import ChatApply
from .cursors import Cursored
from .exports import event_json, segment_json
from .feed import FeedItem, NewItem
from .records import ChatMessage, TimelineEvent, TranscriptSegment
from .search import index_texts as search_index

R = TypeVar("R")
Scrub = Callable[[dict[str, Any]], int]
PREFIXES = {s.transcript_segments: feed.SEGMENT_KEY, s.chat_message_versions: feed.CHAT_KEY,
            s.timeline_events: feed.EVENT_KEY}


def linked(table: Table) -> ColumnElement[bool]:
    """A record of `table` and its feed item. Said both ways round, so that either side's
    unique index finds the other, whichever the database reads first."""
    f, prefix = s.feed_items, PREFIXES[table]
    return and_(table.c.dedup_key == func.substr(f.c.item_key, len(prefix) + 1),
                f.c.item_key == literal(prefix) + table.c.dedup_key)


def _event_item(product: str, row: dict[str, Any]) -> tuple[tuple[feed.FeedKind, str], dict[str, Any]]:
    """A timeline event's item, named as its meeting's product names it."""
    return feed.event_item(row["event_type"], product), event_json(convert.event(row, product))


class RecordBatch:
    """Rows for the records of one `write_batch`, with their items and NUL counts."""

    def __init__(self, scrub: Scrub) -> None:
        self._scrub = scrub
        self._rows: list[tuple[Table, dict[str, Any], NewItem]] = []
        self._chats: list[dict[str, Any]] = []  # versions of chat messages (`sinks.chat`)
        self._replaced: dict[str, int] = {}  # item key -> NULs replaced, for rows with any
        self.replaced = 0

    def _add(self, table: Table, row: dict[str, Any], prefix: str,
             item: Callable[[dict[str, Any]], tuple[tuple[feed.FeedKind, str], dict[str, Any]]]
             ) -> None:
        replaced = self._scrub(row)
        key = prefix + row["dedup_key"]
        if replaced:
            self._replaced[key] = replaced
        # The body is built from the row as stored (NUL replaced, ids as they read back),
        # so the feed shows exactly what the REST API will.
        kind_and_type, body = item(row)
        self._rows.append((table, row, NewItem.of(kind_and_type, row["meeting_uuid"], body, key)))

    def add_segments(self, records: Iterable[TranscriptSegment]) -> None:
        for x in records:
            self._add(s.transcript_segments, convert.segment_row(x), feed.SEGMENT_KEY,
                      lambda row: (feed.SEGMENT, segment_json(convert.segment(row))))

    def add_chats(self, records: Iterable[ChatMessage]) -> None:
        """Versions of chat messages: their items are made once they are applied (`write`)."""
        for x in records:
            row = convert.chat_row(x)
            replaced = self._scrub(row)
            if replaced:
                self._replaced[feed.CHAT_KEY + row["dedup_key"]] = replaced
                if row["message_id"] is not None:  # found again by its ids as stored
                    row["message_key"] = convert.chat_message_key(row["meeting_uuid"], row["message_id"])
            self._chats.append(row)

    def add_events(self, records: Iterable[TimelineEvent]) -> None:
        for x in records:
            self._add(s.timeline_events, convert.event_row(x), feed.EVENT_KEY, partial(_event_item, x.product))

    def write(self, conn: Connection, insert: Callable[[Any], Any], now_ms: int, *,
              index_texts: bool) -> list[FeedItem]:
        """Write what is new in this transaction; returns its items in feed order. Sets
        `replaced` to the NULs replaced in the rows written (a replay writes none).
        Synchronous: on SQLite the whole transaction runs in the writer's thread."""
        by_table: dict[Table, list[dict[str, Any]]] = {}
        for table, row, _ in self._rows:
            by_table.setdefault(table, []).append(row)
        if self._chats:
            by_table[s.chat_message_versions] = self._chats
        new: set[str] = set()
        for table, rows in by_table.items():
            new.update(PREFIXES[table] + key for key, in insert_new(
                conn, insert, table, rows, unique="dedup_key", returning=("dedup_key",)))
        chats = ChatApply(self._chats, self._scrub)
        chat_items = chats.items(conn, {key[len(feed.CHAT_KEY):] for key in new
                                              if key.startswith(feed.CHAT_KEY)})
        segments = [item for table, _, item in self._rows if table is s.transcript_segments]
        events = [item for table, _, item in self._rows if table is s.timeline_events]
        made = feed.append_records(
            conn, insert, (item for item in [*segments, *chat_items, *events] if item.item_key in new),
            now_ms)
        self.replaced = sum(self._replaced.get(key, 0) for key in made)
        for key, written in made.items():
            chats.written(key, written.seq)
        chats.apply(conn, insert, index_texts=index_texts)
        if index_texts:
            texts: dict[int, str] = {}  # a record twice in the batch: its text once
            for table, row, item in self._rows:
                got = made.get(item.item_key or "")
                if got is not None and table is s.transcript_segments:
                    texts.setdefault(got.seq, row["text"])
            search_index(conn, list(texts.items()))
        return sorted(made.values(), key=lambda item: item.seq)


# ---- reads ---------------------------------------------------------------------------------


class Listing(Generic[R]):
    """How one kind of record is read back: its table, its conversion, its listing order,
    and whether it is read with its meeting's product (what an event number means)."""

    def __init__(self, table: Table, record: Callable[[Any], R],
                 order: Callable[[Table], Sequence[ColumnElement[Any]]], *,
                 with_product: bool = False) -> None:
        self.table, self.record, self.order = table, record, order
        self.with_product = with_product

    def _with_product(self, query: Select[Any]) -> Select[Any]:
        if not self.with_product:
            return query
        m = s.meetings
        return query.add_columns(m.c.product).outerjoin(m, m.c.meeting_key == s.feed_items.c.meeting_key)

    async def whole(self, conn: AsyncConnection, meeting_uuid: str) -> list[Cursored[R]]:
        t, f = self.table, s.feed_items
        query = self._with_product(select(t, f.c.id.label("feed_seq")).join(f, linked(t)))
        query = query.where(t.c.meeting_uuid == meeting_uuid).order_by(*self.order(t))
        return self._cursored(await conn.execute(query))

    async def page(self, conn: AsyncConnection, meeting_uuid: str, after: int | None,
                   limit: int) -> list[Cursored[R]]:
        """At most `limit` records after `after` in feed order (from the start if None)."""
        t, f = self.table, s.feed_items
        query = self._with_product(select(t, f.c.id.label("feed_seq")).select_from(f).join(t, linked(t)))
        query = (query.where(f.c.meeting_key == s.key_of(meeting_uuid), f.c.id > (after or 0))
                 .order_by(f.c.id).limit(limit))
        return self._cursored(await conn.execute(query))

    def _cursored(self, result: Any) -> list[Cursored[R]]:
        return [Cursored(r["feed_seq"], self.record(r)) for r in result.mappings().all()]


SEGMENTS: Listing[TranscriptSegment] = Listing(
    s.transcript_segments, convert.segment,
    lambda t: (func.coalesce(t.c.start_time, t.c.timestamp), t.c.id))


class ChatListing(Listing[ChatMessage]):
    """Messages as they stand, each at its latest change's place in the feed (`sinks.chat`)."""

    async def whole(self, conn: AsyncConnection, meeting_uuid: str) -> list[Cursored[ChatMessage]]:
        return await chat.whole(conn, meeting_uuid)

    async def page(self, conn: AsyncConnection, meeting_uuid: str, after: int | None,
                   limit: int) -> list[Cursored[ChatMessage]]:
        return await chat.page(conn, meeting_uuid, after, limit)


CHATS = ChatListing(s.chat_messages, convert.chat, lambda t: (t.c.timestamp, t.c.id))
EVENTS: Listing[TimelineEvent] = Listing(s.timeline_events, convert.event,
                                         lambda t: (t.c.timestamp, t.c.id), with_product=True)
