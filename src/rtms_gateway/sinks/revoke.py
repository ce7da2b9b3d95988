"""Erasing a stream Zoom revoked (stop reason 8, STREAM_REVOKED): Zoom asks apps to delete
what they hold of it at once.

One transaction deletes the stream's transcript segments, chat messages (every message a
version of which came on the stream, with all its versions and files) and timeline events,
their feed items (and, on SQLite, their search rows), the pending outbound webhook
deliveries of those items, the stream's media file index and its feed items, and the stream
row; a meeting left with no stream goes too (its row and every feed item of it). What is
kept is a tombstone (stream id, meeting key, reason, time), so the API answers 410 Gone for
the stream's meeting once nothing of it remains. The files on disk are removed after the
commit (a file already gone is fine).

Records still queued for the stream are written before the erasure (the gateway runs it in
order with them, after the stream's files are finished), and erased with the rest.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Table, and_, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import chat
from . import schema as s
from .feed import EVENT_KEY, SEGMENT_KEY, FeedKind
from .outbox_store import PENDING
from .paths import MediaPathError, media_path
from .schema import key_of
from .search import INDEXED_CHARS
from .store_errors import guarded
from .store_open import writing
from .store_part import StorePart

log = logging.getLogger(__name__)

_RECORDS: tuple[tuple[Table, str], ...] = (
    (s.transcript_segments, SEGMENT_KEY), (s.timeline_events, EVENT_KEY))
_CHUNK = 500  # ids per IN (...): well inside SQLite's and asyncpg's parameter limits


@dataclass(frozen=True, slots=True)
class Tombstone:
    rtms_stream_id: str
    stop_reason: int
    revoked_at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"rtms_stream_id": self.rtms_stream_id, "stop_reason": self.stop_reason,
                "revoked_at_ms": self.revoked_at_ms}


@dataclass(slots=True)
class Erased:
    """What one erasure removed (counts only: nothing of the content)."""

    records: int = 0
    feed_items: int = 0
    deliveries: int = 0
    media_files: list[str] = field(default_factory=list)  # paths, relative to the data dir
    meeting_gone: bool = False


class Revocations(StorePart):
    """Erasures and tombstones, on the store's engine."""

    def _id(self, value: str) -> str:
        """An id as stored (PostgreSQL keeps NUL as U+FFFD)."""
        return value.replace("\x00", "\ufffd") if self._pg else value

    @guarded
    async def erase_stream(self, rtms_stream_id: str, meeting_uuid: str | None, *,
                           stop_reason: int, now_ms: int) -> Erased:
        """Delete everything stored of the stream and keep its tombstone; idempotent."""
        stream_id = self._id(rtms_stream_id)
        erased = Erased()
        async with writing(self.engine) as conn:  # in turn with the store's other writers
            row = (await conn.execute(select(s.streams.c.meeting_uuid).where(
                s.streams.c.stream_key == key_of(stream_id)))).first()
            uuid = row[0] if row is not None else (self._id(meeting_uuid) if meeting_uuid else None)
            if uuid is not None:
                await self._erase_records(conn, uuid, stream_id, erased)
                await self._erase_media(conn, uuid, stream_id, erased)
                await self._erase_stream_items(conn, uuid, stream_id, erased)
                await conn.execute(delete(s.streams).where(s.streams.c.stream_key == key_of(stream_id)))
                erased.meeting_gone = await self._erase_meeting_if_empty(conn, uuid, erased)
            await self._bury(conn, stream_id, uuid or "", stop_reason, now_ms)
        self._store.erasures += 1
        return erased

    async def _erase_records(self, conn: AsyncConnection, uuid: str, stream_id: str,
                             erased: Erased) -> None:
        for table, prefix in _RECORDS:
            mine = and_(table.c.meeting_uuid == uuid, table.c.rtms_stream_id == stream_id)
            indexed = table is not s.timeline_events
            columns = [table.c.dedup_key, table.c.text if indexed else table.c.dedup_key]
            texts = {prefix + key: text for key, text in await conn.execute(select(*columns).where(mine))}
            found: list[tuple[int, str]] = []
            for chunk in _chunks(list(texts)):
                found += [(seq, texts[key]) for seq, key in await conn.execute(
                    select(s.feed_items.c.id, s.feed_items.c.item_key).where(
                        s.feed_items.c.item_key.in_(chunk)))]
            if indexed and not self._pg and found:
                # A contentless FTS5 table forgets a row only when told its text again.
                await conn.execute(text(
                    f"INSERT INTO {s.SEARCH_TABLE} ({s.SEARCH_TABLE}, rowid, text) "
                    "VALUES ('delete', :seq, :text)"),
                    [{"seq": seq, "text": body[:INDEXED_CHARS]} for seq, body in found])
            await self._erase_items(conn, [seq for seq, _ in found], erased)
            erased.records += (await conn.execute(delete(table).where(mine))).rowcount or 0
        rows, seqs = await chat.erase(conn, uuid, stream_id, index_texts=not self._pg)
        await self._erase_items(conn, seqs, erased)
        erased.records += rows

    async def _erase_items(self, conn: AsyncConnection, seqs: Sequence[int], erased: Erased) -> None:
        """Feed items by sequence number, with their pending deliveries."""
        o = s.outbound_deliveries
        for chunk in _chunks(seqs):
            erased.deliveries += (await conn.execute(delete(o).where(
                o.c.seq.in_(chunk), o.c.status == PENDING))).rowcount or 0
            erased.feed_items += (await conn.execute(delete(s.feed_items).where(
                s.feed_items.c.id.in_(chunk)))).rowcount or 0

    async def _erase_media(self, conn: AsyncConnection, uuid: str, stream_id: str,
                           erased: Erased) -> None:
        m = s.media_files
        mine = and_(m.c.meeting_uuid == uuid, m.c.rtms_stream_id == stream_id)
        erased.media_files += (await conn.execute(select(m.c.path).where(mine))).scalars().all()
        await conn.execute(delete(m).where(mine))

    async def _erase_stream_items(self, conn: AsyncConnection, uuid: str, stream_id: str,
                                  erased: Erased) -> None:
        """The stream's state and media items: not keyed by a record, so found by their body
        (a meeting has few of them)."""
        f = s.feed_items
        rows = (await conn.execute(select(f.c.id, f.c.body).where(
            f.c.meeting_key == key_of(uuid), f.c.item_key.is_(None),
            f.c.kind.in_([FeedKind.MEETING.value, FeedKind.MEDIA.value])))).all()
        seqs = [seq for seq, body in rows if _stream_of(body) == stream_id]
        await self._erase_items(conn, seqs, erased)

    async def _erase_meeting_if_empty(self, conn: AsyncConnection, uuid: str,
                                      erased: Erased) -> bool:
        left = (await conn.execute(select(s.streams.c.id).where(
            s.streams.c.meeting_uuid == uuid).limit(1))).first()
        if left is not None:
            return False
        f = s.feed_items
        seqs = (await conn.execute(select(f.c.id).where(f.c.meeting_key == key_of(uuid)))).scalars().all()
        await self._erase_items(conn, seqs, erased)
        await conn.execute(delete(s.meetings).where(s.meetings.c.meeting_key == key_of(uuid)))
        return True

    async def _bury(self, conn: AsyncConnection, stream_id: str, uuid: str, stop_reason: int,
                    now_ms: int) -> None:
        r = s.revoked_streams
        found = (await conn.execute(select(r.c.id).where(r.c.stream_key == key_of(stream_id)))).first()
        if found is None:
            await conn.execute(r.insert().values(
                stream_key=key_of(stream_id), rtms_stream_id=stream_id, meeting_key=key_of(uuid),
                stop_reason=stop_reason, revoked_at_ms=now_ms))

    @guarded
    async def tombstones(self, meeting_uuid: str) -> list[Tombstone]:
        """The meeting's revoked streams."""
        r = s.revoked_streams
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(r.c.rtms_stream_id, r.c.stop_reason, r.c.revoked_at_ms)
                                       .where(r.c.meeting_key == key_of(self._id(meeting_uuid)))
                                       .order_by(r.c.id))).all()
        return [Tombstone(*row) for row in rows]

    @guarded
    async def gone(self, meeting_uuid: str) -> list[Tombstone]:
        """The tombstones of a meeting erased whole (no stream of it left); else []."""
        uuid = self._id(meeting_uuid)
        async with self.engine.connect() as conn:
            left = (await conn.execute(select(s.meetings.c.id).where(
                s.meetings.c.meeting_key == key_of(uuid)))).first()
        return [] if left is not None else await self.tombstones(meeting_uuid)


def remove_files(data_dir: Path, paths: Sequence[str]) -> int:
    """Delete the media files (a directory of frames with its frames); how many went."""
    removed = 0
    for relative in paths:
        try:
            path = media_path(data_dir, relative)
        except MediaPathError:
            continue
        try:
            if path.is_dir():  # numbered frames
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("a revoked stream's media file could not be removed: %s",
                        type(exc).__name__)
    return removed


def _stream_of(body: str) -> str | None:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    found = value.get("rtms_stream_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]

