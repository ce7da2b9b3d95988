"""Structured chat in the store: versions applied to messages, and read back.

Zoom sends each change to a message as a message of its own: new, update, delete (and
emoji reactions), all naming the message by `message_id` (`ChatOperation`). Each such
version is kept as it came (`chat_message_versions`, with its feed item: a replay stores
nothing twice), and the message's current state (`chat_messages`, one row per message) is
the fold of all its versions (`fold`): so versions arriving late, twice or out of order
give the same state as in order.

The state: the text of the latest new or update by time ("" once deleted), when it was
sent (its `new`), last edited, deleted (a deletion is final), who sent it and to whom, its
thread parent, its files (those added, less those a version takes away; none once deleted),
how many versions it has. Its cursor (`last_seq`) is the feed item of the version applied
last, so a page after a cursor lists each message whose state changed since.

On SQLite the current text is in the search table under `last_seq` (each change moves it);
on PostgreSQL the GIN index on `chat_messages.text` follows the row by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, literal, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..protocol.constants import ChatOperation
from . import feed
from . import schema as s
from . import store_rows as convert
from .cursors import Cursored
from .exports import chat_json, chat_operation
from .feed import NewItem
from .records import ChatFile, ChatMessage
from .search import INDEXED_CHARS
from .search import index_texts as add_to_index

_CHUNK = 500  # keys per IN (...)
_TEXT_OPS = (None, ChatOperation.NEW, ChatOperation.UPDATE)


def _order(version: tuple[int, ChatMessage]) -> tuple[int, int]:
    return version[1].timestamp, version[0]


def fold(versions: Sequence[tuple[int, ChatMessage]]) -> ChatMessage:
    """The current state of a message from its versions, each with its arrival order."""
    ordered = [v for _, v in sorted(versions, key=_order)]
    news = [v for v in ordered if v.operation_type in (None, ChatOperation.NEW)]
    base = news[0] if news else ordered[0]
    # Who sent it, to whom, in which thread: the `new` says; other versions fill gaps.
    first = [base] + [v for v in ordered if v is not base]

    def known(name: str) -> Any:
        return next((getattr(v, name) for v in first if getattr(v, name) is not None), None)

    texts = [v for v in ordered if v.operation_type in _TEXT_OPS]
    edits = [v.timestamp for v in ordered if v.operation_type == ChatOperation.UPDATE]
    deletions = [v.timestamp for v in ordered if v.operation_type == ChatOperation.DELETE]
    files: dict[str, ChatFile] = {}
    for v in ordered:
        for i, f in enumerate(v.files):
            files[f.file_id if f.file_id is not None else f"#{i}"] = f
        for gone in v.delete_file_ids:
            files.pop(gone, None)
    last = ordered[-1]
    return ChatMessage(
        meeting_uuid=base.meeting_uuid, rtms_stream_id=base.rtms_stream_id, message_id=base.message_id,
        sender_user_id=known("sender_user_id"), sender_name=known("sender_name"),
        receiver_user_id=known("receiver_user_id"), receiver_name=known("receiver_name"),
        chat_session_type=known("chat_session_type"), parent_message_id=known("parent_message_id"),
        text="" if deletions else (texts[-1].text if texts else ""),
        operation_type=last.operation_type, timestamp=base.timestamp, raw=last.raw,
        files=[] if deletions else list(files.values()),
        edited_at_ms=max(edits) if edits else None, deleted_at_ms=min(deletions) if deletions else None,
        versions=len(ordered))


def state_row(key: str, state: ChatMessage, last_seq: int) -> dict[str, Any]:
    return {"message_key": key, "meeting_uuid": state.meeting_uuid, "rtms_stream_id": state.rtms_stream_id,
            "message_id": state.message_id, "parent_message_id": state.parent_message_id,
            "parent_key": (convert.chat_message_key(state.meeting_uuid, state.parent_message_id)
                           if state.parent_message_id else None),
            "sender_user_id": convert.uid(state.sender_user_id), "sender_name": state.sender_name,
            "receiver_user_id": convert.uid(state.receiver_user_id), "receiver_name": state.receiver_name,
            "chat_session_type": state.chat_session_type, "text": state.text,
            "operation_type": state.operation_type, "timestamp": state.timestamp,
            "edited_at_ms": state.edited_at_ms, "deleted_at_ms": state.deleted_at_ms,
            "versions": state.versions, "last_seq": last_seq, "raw": state.raw}


def file_rows(key: str, state: ChatMessage) -> list[dict[str, Any]]:
    return [{"message_key": key, "meeting_uuid": state.meeting_uuid, "message_id": state.message_id,
             "position": i, "file_id": f.file_id, "file_name": f.file_name, "file_size": f.file_size,
             "file_type": f.file_type, "download_url": f.download_url} for i, f in enumerate(state.files)]


def item_body(state: ChatMessage, version: ChatMessage) -> dict[str, Any]:
    """A version's feed item: the message as it stands once the version is applied, with
    the version's own operation."""
    body = chat_json(state)
    body["operation_type"] = version.operation_type
    body["operation"] = chat_operation(version.operation_type)
    return body


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


class ChatApply:
    """The chat part of one `RecordBatch.write`: versions in, states out."""

    def __init__(self, rows: list[dict[str, Any]], scrub: Callable[[dict[str, Any]], int]) -> None:
        self._rows = rows  # version rows, in arrival order (already scrubbed)
        self._message_of = {feed.CHAT_KEY + r["dedup_key"]: r["message_key"] for r in rows}
        self._scrub = scrub
        self._last_seq: dict[str, int] = {}
        self._states: dict[str, ChatMessage] = {}
        self._before: dict[str, Any] = {}

    def items(self, conn: Connection, new: set[str]) -> list[NewItem]:
        """The feed items of the versions new in this transaction (inserted already), in
        arrival order, each with the message's state once it is applied."""
        fresh = [r for r in dict((r["dedup_key"], r) for r in self._rows).values() if r["dedup_key"] in new]
        keys = list(dict.fromkeys(r["message_key"] for r in fresh))
        if not keys:
            return []
        v, m = s.chat_message_versions, s.chat_messages
        versions: dict[str, list[tuple[int, str, ChatMessage]]] = {}
        replies: dict[str, list[str]] = {}  # message key -> its replies' ids
        for chunk in _chunks(keys):
            for r in (conn.execute(select(v).where(v.c.message_key.in_(chunk)))).mappings():
                versions.setdefault(r["message_key"], []).append(
                    (r["id"], r["dedup_key"], convert.chat_version(r)))
            for r in (conn.execute(select(m).where(m.c.message_key.in_(chunk)))).mappings():
                self._before[r["message_key"]] = r
            for parent, message_id in conn.execute(
                    select(m.c.parent_key, m.c.message_id).where(m.c.parent_key.in_(chunk))
                    .order_by(m.c.timestamp, m.c.id)):
                replies.setdefault(parent, []).append(message_id)
        order = {r["dedup_key"]: i for i, r in enumerate(fresh)}
        made: list[NewItem] = []
        for r in fresh:
            key = r["message_key"]
            mine = versions[key]
            # What was stored before this batch, and this batch's versions up to this one.
            seen = [(i, x) for i, d, x in mine if d not in order or order[d] <= order[r["dedup_key"]]]
            state = fold(seen)
            if key not in self._before and state.parent_message_id and state.message_id:
                thread = replies.setdefault(convert.chat_message_key(state.meeting_uuid,
                                                                     state.parent_message_id), [])
                if state.message_id not in thread:
                    thread.append(state.message_id)
            state.replies = list(replies.get(key, ()))
            this = next(x for _, d, x in mine if d == r["dedup_key"])
            made.append(NewItem.of(feed.CHAT_MESSAGE, r["meeting_uuid"], item_body(state, this),
                                   feed.CHAT_KEY + r["dedup_key"]))
            self._states[key] = fold([(i, x) for i, _, x in mine])
        return made

    def written(self, item_key: str, seq: int) -> None:
        """Note the sequence number of a version's item (its message's cursor, the latest)."""
        key = self._message_of.get(item_key)
        if key is not None:
            self._last_seq[key] = max(seq, self._last_seq.get(key, 0))

    def apply(self, conn: Connection, insert: Callable[[Any], Any], *,
                    index_texts: bool) -> None:
        """Write each changed message's state (and files, and its search text on SQLite)."""
        m, f = s.chat_messages, s.chat_files
        for key, state in self._states.items():
            seq = self._last_seq.get(key)
            if seq is None:
                continue
            row = state_row(key, state, seq)
            self._scrub(row)
            stmt = insert(m).values(row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["message_key"],
                set_={k: stmt.excluded[k] for k in row if k not in ("message_key", "rtms_stream_id")}))
            before = self._before.get(key)
            if before is not None:  # its files as they stand replace those it had
                conn.execute(delete(f).where(f.c.message_key == key))
            files = file_rows(key, state)
            for file_row in files:
                self._scrub(file_row)
            if files:
                conn.execute(insert(f), files)
            if index_texts:
                if before is not None and before["deleted_at_ms"] is None:
                    unindex(conn, [(before["last_seq"], before["text"])])
                if state.deleted_at_ms is None:
                    add_to_index(conn, [(seq, row["text"])])


def unindex(conn: Connection, rows: Iterable[tuple[int, str]]) -> None:
    """SQLite: take texts out of the search table (contentless: it needs the text again)."""
    values = [{"seq": seq, "text": body[:INDEXED_CHARS]} for seq, body in rows]
    if values:
        conn.execute(text(f"INSERT INTO {s.SEARCH_TABLE} ({s.SEARCH_TABLE}, rowid, text) "
                                "VALUES ('delete', :seq, :text)"), values)


# ---- reads ---------------------------------------------------------------------------------


async def with_extras(conn: AsyncConnection, rows: Sequence[Any]) -> list[Cursored[ChatMessage]]:
    """`chat_messages` rows (with `last_seq`) as messages with their files and replies."""
    keys = [r["message_key"] for r in rows]
    files: dict[str, list[ChatFile]] = {}
    replies: dict[str, list[str]] = {}
    f, m = s.chat_files, s.chat_messages
    for chunk in _chunks(keys):
        for r in (await conn.execute(select(f).where(f.c.message_key.in_(chunk))
                                     .order_by(f.c.message_key, f.c.position))).mappings():
            files.setdefault(r["message_key"], []).append(convert.chat_file(r))
        for parent, message_id in await conn.execute(
                select(m.c.parent_key, m.c.message_id).where(m.c.parent_key.in_(chunk))
                .order_by(m.c.timestamp, m.c.id)):
            replies.setdefault(parent, []).append(message_id)
    return [Cursored(r["last_seq"], convert.chat(r, files.get(r["message_key"]), replies.get(r["message_key"])))
            for r in rows]


async def whole(conn: AsyncConnection, meeting_uuid: str) -> list[Cursored[ChatMessage]]:
    m = s.chat_messages
    rows = (await conn.execute(select(m).where(m.c.meeting_uuid == meeting_uuid)
                               .order_by(m.c.timestamp, m.c.id))).mappings().all()
    return await with_extras(conn, rows)


async def page(conn: AsyncConnection, meeting_uuid: str, after: int | None,
               limit: int) -> list[Cursored[ChatMessage]]:
    """Messages whose latest change is after `after`, in feed order (through the feed's
    index on meeting and sequence number, as the other listings)."""
    m, f = s.chat_messages, s.feed_items
    rows = (await conn.execute(
        select(m).select_from(f).join(m, m.c.last_seq == f.c.id)
        .where(f.c.meeting_key == s.key_of(meeting_uuid), f.c.id > (after or 0))
        .order_by(f.c.id).limit(limit))).mappings().all()
    return await with_extras(conn, rows)


async def one(conn: AsyncConnection, meeting_uuid: str, message_id: str) -> Cursored[ChatMessage] | None:
    m = s.chat_messages
    rows = (await conn.execute(select(m).where(
        m.c.message_key == convert.chat_message_key(meeting_uuid, message_id),
        m.c.meeting_uuid == meeting_uuid))).mappings().all()
    found = await with_extras(conn, rows)
    return found[0] if found else None


async def history(conn: AsyncConnection, meeting_uuid: str,
                  message_ids: Sequence[str]) -> dict[str, list[Cursored[ChatMessage]]]:
    """Every version of each of these messages, oldest first, each with its item's cursor."""
    v, f = s.chat_message_versions, s.feed_items
    by_key = {convert.chat_message_key(meeting_uuid, x): x for x in message_ids}
    out: dict[str, list[Cursored[ChatMessage]]] = {}
    for chunk in _chunks(list(by_key)):
        rows = (await conn.execute(
            select(v, f.c.id.label("feed_seq")).join(
                f, f.c.item_key == literal(feed.CHAT_KEY) + v.c.dedup_key)
            .where(v.c.message_key.in_(chunk), v.c.meeting_uuid == meeting_uuid)
            .order_by(v.c.timestamp, v.c.id))).mappings().all()
        for r in rows:
            out.setdefault(by_key[r["message_key"]], []).append(
                Cursored(r["feed_seq"], convert.chat_version(r)))
    return out


async def erase(conn: AsyncConnection, meeting_uuid: str, stream_id: str, *,
                index_texts: bool) -> tuple[int, list[int]]:
    """Delete every message any of whose versions came on the stream, with all their
    versions and files; returns how many versions (records as they came) went, and the
    versions' feed items."""
    m, v, f, fi = s.chat_messages, s.chat_message_versions, s.chat_files, s.feed_items
    keys = set((await conn.execute(select(v.c.message_key).where(
        v.c.meeting_uuid == meeting_uuid, v.c.rtms_stream_id == stream_id))).scalars())
    keys.update((await conn.execute(select(m.c.message_key).where(
        m.c.meeting_uuid == meeting_uuid, m.c.rtms_stream_id == stream_id))).scalars())
    erased, seqs = 0, list[int]()
    for chunk in _chunks(sorted(keys)):
        current = (await conn.execute(select(m.c.last_seq, m.c.text).where(
            m.c.message_key.in_(chunk), m.c.deleted_at_ms.is_(None)))).all()
        if index_texts:
            await conn.run_sync(unindex, [(seq, body) for seq, body in current])
        dedups = (await conn.execute(select(v.c.dedup_key).where(v.c.message_key.in_(chunk)))).scalars().all()
        for part in _chunks([feed.CHAT_KEY + d for d in dedups]):
            seqs += (await conn.execute(select(fi.c.id).where(fi.c.item_key.in_(part)))).scalars().all()
        await conn.execute(delete(f).where(f.c.message_key.in_(chunk)))
        erased += (await conn.execute(delete(v).where(v.c.message_key.in_(chunk)))).rowcount or 0
        await conn.execute(delete(m).where(m.c.message_key.in_(chunk)))
    return erased, seqs
