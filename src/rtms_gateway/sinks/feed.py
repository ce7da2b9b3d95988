"""The feed: everything the store keeps, in one order, each item with its cursor.

An item is written in the same transaction as what it stands for, so a committed record
always has its item and an item always stands for something committed: a consumer that
reads "everything after cursor C" and later resumes from its last cursor misses nothing
and sees nothing twice. Items are made for:

- each record stored (a transcript segment, a chat message, a timeline event), once: a
  record stored again (a reconnect replays it) is a no-op, and makes no item;
- each change the store records: a meeting started (or started again) or ended, a stream's
  state, a media file new or ready;
- each notice Zoom sends about the account (its concurrency cap), once: an item of no
  meeting (kind `account`), so that it reaches the live feeds and outbound webhooks too.

Kinds (the live feed's filter) and types (what happened), as the README lists them: every
timeline event type maps to one kind here (`EVENT_ITEMS`). The body is the JSON the REST
API shows for the record (`sinks.exports`); media items carry the file's `id` but no URL
(the API, which knows its own address, adds it).

Order: one process writes the feed at a time (the store's write lock), so sequence order is
commit order. Several gateways on one database would need more (see README, Cursors).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from ..client.lifecycle import StreamState
from ..protocol.constants import EventType, Product, ZccEventType, event_name
from . import schema as s
from .bulk_insert import insert_new
from .cursors import format_cursor
from .exports import iso_utc
from .records import GatewayEvent

Insert = Callable[[Any], Any]  # the dialect's `insert` (it has ON CONFLICT)


class FeedKind(StrEnum):
    TRANSCRIPT = "transcript"
    CHAT = "chat"
    PARTICIPANT = "participant"
    SPEAKER = "speaker"
    SHARING = "sharing"
    MEETING = "meeting"
    MEDIA = "media"
    ACCOUNT = "account"  # about the Zoom account, no meeting: Zoom's concurrency notices


K = FeedKind
# Timeline event type -> (kind, type). An event type not listed is `meeting.event`.
EVENT_ITEMS: dict[int, tuple[FeedKind, str]] = {
    EventType.FIRST_PACKET_TIMESTAMP: (K.MEETING, "meeting.first_packet"),
    EventType.ACTIVE_SPEAKER_CHANGE: (K.SPEAKER, "speaker.changed"),
    EventType.PARTICIPANT_JOIN: (K.PARTICIPANT, "participant.joined"),
    EventType.PARTICIPANT_LEAVE: (K.PARTICIPANT, "participant.left"),
    EventType.SHARING_START: (K.SHARING, "sharing.started"),
    EventType.SHARING_STOP: (K.SHARING, "sharing.stopped"),
    EventType.MEDIA_CONNECTION_INTERRUPTED: (K.MEETING, "meeting.media_interrupted"),
    EventType.PARTICIPANT_VIDEO_ON: (K.PARTICIPANT, "participant.video_on"),
    EventType.PARTICIPANT_VIDEO_OFF: (K.PARTICIPANT, "participant.video_off"),
    EventType.CHAT_GROUP_CREATE: (K.CHAT, "chat.group_created"),
    EventType.CHAT_GROUP_DELETE: (K.CHAT, "chat.group_deleted"),
    EventType.CHAT_GROUP_MEMBERS_ADD: (K.CHAT, "chat.group_members_added"),
    EventType.CHAT_GROUP_MEMBERS_DELETE: (K.CHAT, "chat.group_members_removed"),
    EventType.CHAT_GROUP_MEMBER_STATUS_UPDATE: (K.CHAT, "chat.group_member_status"),
}
# What Zoom reports outside EVENT_UPDATE: the session's state, the interpreter's metadata.
SESSION_STATE = (K.MEETING, "meeting.session_state")
EVENT_ITEMS.update({int(t): SESSION_STATE for t in GatewayEvent if t.is_session_state})
EVENT_ITEMS[GatewayEvent.AUDIO_METADATA] = (K.MEETING, "meeting.audio_metadata")
OTHER_EVENT = (K.MEETING, "meeting.event")
_ZCC_TYPES = frozenset(int(e) for e in ZccEventType)
SEGMENT = (K.TRANSCRIPT, "transcript.segment")
CHAT_MESSAGE = (K.CHAT, "chat.message")
MEETING_STARTED = (K.MEETING, "meeting.started")
MEETING_ENDED = (K.MEETING, "meeting.ended")
STREAM_STATE = (K.MEETING, "meeting.state")
STREAM_INTERRUPTED = (K.MEETING, "meeting.interrupted")
# Account items belong to no meeting: their `meeting_uuid` is empty (no meeting has that id).
NO_MEETING = ""
CONCURRENCY_ITEMS = {"near_limit": (K.ACCOUNT, "rtms.concurrency_near_limit"),
                     "limited": (K.ACCOUNT, "rtms.concurrency_limited")}
MEDIA_NEW = (K.MEDIA, "media.new")
MEDIA_READY = (K.MEDIA, "media.ready")
# The stream state the gateway records while it reconnects a dropped stream.
INTERRUPTED_STATE = StreamState.RECONNECTING.value

# Each record kind's prefix to its dedup key, making `item_key`: unique across tables.
SEGMENT_KEY, CHAT_KEY, EVENT_KEY = "t", "c", "e"
ACCOUNT_KEY = "a"  # an account item's own key (a notice Zoom delivers twice is one item)

_encode = msgspec.json.Encoder().encode


def event_item(event_type: int, product: str = Product.MEETING.value) -> tuple[FeedKind, str]:
    """A timeline event's kind and type. A Contact Center's own events (8-29, which
    number other things in meetings) are `contact_center.<name>`, of the participant kind:
    they are about the caller and the agents."""
    if product == Product.CONTACT_CENTER and event_type in _ZCC_TYPES:
        return K.PARTICIPANT, f"contact_center.{event_name(product, event_type)}"
    return EVENT_ITEMS.get(event_type, OTHER_EVENT)


def stream_item(state: str) -> tuple[FeedKind, str]:
    return STREAM_INTERRUPTED if state == INTERRUPTED_STATE else STREAM_STATE


class NewItem(NamedTuple):
    """An item about to be written (its sequence number comes from the database)."""

    kind: FeedKind
    type: str
    meeting_uuid: str  # as stored (NUL already replaced on PostgreSQL)
    body: bytes  # JSON
    item_key: str | None = None

    @classmethod
    def of(cls, kind_and_type: tuple[FeedKind, str], meeting_uuid: str, body: dict[str, Any],
           item_key: str | None = None) -> NewItem:
        kind, type_ = kind_and_type
        try:
            data = _encode(body)
        except UnicodeEncodeError:
            # A lone surrogate, which UTF-8 cannot hold: escaped, as JSON allows. A text
            # column holding one is refused by the database itself, in this transaction.
            data = json.dumps(body, separators=(",", ":")).encode()
        return cls(kind, type_, meeting_uuid, data, item_key)


class _Envelope(msgspec.Struct):
    cursor: str
    kind: str
    type: str
    meeting_uuid: str
    stored_at_ms: int
    stored_at_iso: str | None
    data: msgspec.Raw


class FeedItem(msgspec.Struct, frozen=True, gc=False):
    """One item of the feed. `seq` orders items inside the gateway; clients see `cursor`."""

    seq: int
    kind: FeedKind
    type: str
    meeting_uuid: str
    stored_at_ms: int
    data: msgspec.Raw  # the body, JSON as the REST API shows the record

    @property
    def cursor(self) -> str:
        return format_cursor(self.seq)

    def to_json(self) -> bytes:
        """`{"cursor", "kind", "type", "meeting_uuid", "stored_at_ms", "stored_at_iso",
        "data": {...}}`: what a consumer of the feed is handed."""
        return _encode(_Envelope(self.cursor, self.kind, self.type, self.meeting_uuid,
                                 self.stored_at_ms, iso_utc(self.stored_at_ms), self.data))


def _rows(items: Iterable[NewItem], now_ms: int) -> list[dict[str, Any]]:
    keys: dict[str, str] = {}  # a batch is mostly one meeting's: hash its id once
    return [{"kind": i.kind.value, "type": i.type,
             "meeting_key": keys.get(i.meeting_uuid) or keys.setdefault(
                 i.meeting_uuid, s.key_of(i.meeting_uuid)),
             "meeting_uuid": i.meeting_uuid, "item_key": i.item_key, "stored_at_ms": now_ms,
             "body": i.body.decode()} for i in items]


def append(conn: Connection, insert: Insert, items: Sequence[NewItem],
           now_ms: int) -> list[FeedItem]:
    """Write the items of changes (no `item_key`) in this transaction, in this order."""
    if not items:
        return []
    seqs = conn.execute(_insert_changes(insert), _rows(items, now_ms)).scalars().all()
    return [_item(seq, item, now_ms) for seq, item in zip(seqs, items, strict=True)]


def append_records(conn: Connection, insert: Insert, items: Iterable[NewItem],
                   now_ms: int) -> dict[str, FeedItem]:
    """Write the items of records (each with its `item_key`) in this transaction; those
    whose record has an item already are not written again. Returns the items written,
    by key (a key twice in `items` counts once)."""
    first: dict[str, NewItem] = {}
    for i in items:
        assert i.item_key is not None
        first.setdefault(i.item_key, i)
    if not first:
        return {}
    written = insert_new(conn, insert, s.feed_items, _rows(first.values(), now_ms), unique="item_key",
                         returning=("id", "item_key"))
    return {key: _item(seq, first[key], now_ms) for seq, key in written}


@functools.cache
def _insert_changes(insert: Insert) -> Any:
    """The statement of `append`, built once per dialect."""
    return insert(s.feed_items).returning(s.feed_items.c.id, sort_by_parameter_order=True)


def _item(seq: int, new: NewItem, now_ms: int) -> FeedItem:
    return FeedItem(seq, new.kind, new.type, new.meeting_uuid, now_ms, msgspec.Raw(new.body))


def items_query(*, after: int | None, meeting_key: str | None,
                kinds: Collection[FeedKind] | None, limit: int) -> Select[Any]:
    """Items after `after` (all if None), oldest first; of one meeting, of some kinds."""
    f = s.feed_items
    query = select(f.c.id, f.c.kind, f.c.type, f.c.meeting_uuid, f.c.stored_at_ms, f.c.body)
    if after is not None:
        query = query.where(f.c.id > after)
    if meeting_key is not None:
        query = query.where(f.c.meeting_key == meeting_key)
    if kinds is not None:
        query = query.where(f.c.kind.in_([k.value for k in kinds]))
    return query.order_by(f.c.id).limit(limit)


def items_of(rows: Iterable[Any]) -> list[FeedItem]:
    return [FeedItem(seq, FeedKind(kind), type_, uuid, at, msgspec.Raw(body.encode()))
            for seq, kind, type_, uuid, at, body in rows]


def head_query() -> Select[Any]:
    """The newest item's sequence number (None while the feed is empty)."""
    return select(s.feed_items.c.id).order_by(s.feed_items.c.id.desc()).limit(1)
