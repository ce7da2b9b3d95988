"""Scripted meetings: who is there, who says what and when, chat, events, audio tones.

Everything is deterministic for a (seed, index): ids look like Zoom's (meeting UUIDs are
base64 of 16 bytes, so they contain `/`, `+` and end in `==`; stream ids are hex), text
covers what breaks naive code (CJK, emoji, right-to-left scripts, quotes, long lines).

Offsets are milliseconds from the moment the stream starts (the first CLIENT_READY_ACK).
Utterances never overlap, so at any instant at most one participant speaks.

Audio is a pure tone per participant whose frequency is a multiple of 50 Hz, so every
20 ms chunk holds a whole number of periods and all chunks of a speaker are identical:
sample n of a chunk (n counted from the chunk's start) is
`round(TONE_AMPLITUDE * sin(2 * pi * tone_hz * n / sample_rate_hz))`, 16-bit
little-endian, the same value on every channel. Silence is zeros.
"""

from __future__ import annotations

import base64
import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..protocol.constants import (
    SINGLE_MEDIA_TYPES,
    ChatOperation,
    ChatSessionType,
    DataAttribute,
    EventType,
    MediaType,
    Product,
    TranscriptLanguage,
    ZccEventType,
)
from ..protocol.messages import Event, Participant

CHUNK_MS = 20  # the audio clock's unit: the shortest packet interval Zoom sends
TONE_AMPLITUDE = 6000
ALL_SINGLE_MEDIA = MediaType.UNDEFINED
for _t in SINGLE_MEDIA_TYPES:
    ALL_SINGLE_MEDIA |= _t

_L = TranscriptLanguage
TRANSCRIPT_LINES: tuple[tuple[str, TranscriptLanguage], ...] = (
    ("Good morning everyone, let's get started with the weekly sync.", _L.ENGLISH),
    ("The release candidate passed all integration tests last night.", _L.ENGLISH),
    ("Can you share the dashboard? I'd like to look at the latency numbers.", _L.ENGLISH),
    ("了解しました。次の議題に進みましょう。", _L.JAPANESE),
    ("我们下周再讨论这个问题，好吗？", _L.CHINESE_SIMPLIFIED),
    ("Great work, team! 🎉🚀 Shipping it.", _L.ENGLISH),
    ("مرحبا بالجميع، لنبدأ الاجتماع الآن.", _L.ARABIC),
    ("תודה רבה לכולם על ההשתתפות.", _L.HEBREW),
    ("Schön, dass ihr alle da seid — fangen wir an.", _L.GERMAN),
    ('She said "ship it" and then\tleft; the backslash \\ stays.', _L.ENGLISH),
    ("회의록은 제가 정리해서 공유하겠습니다.", _L.KOREAN),
    ("Let me walk you through the migration plan in detail: first we freeze writes on "
     "the old cluster for about ten minutes, then we copy the last incremental snapshot, "
     "verify row counts and checksums table by table, flip the connection strings behind "
     "the feature flag, watch error rates and p99 latency for a full hour, and only after "
     "that do we decommission the old replicas, keeping the final backup for ninety days "
     "in cold storage just in case anyone needs to audit the data later on.", _L.ENGLISH),
    ("Zoë's café résumé naïve façade — ça marche.", _L.FRENCH_FRANCE),
    ("Okay 👍🏽 sounds good to me 👨‍👩‍👧", _L.ENGLISH),
)
CHAT_LINES: tuple[str, ...] = (
    "Link to the doc: https://example.com/doc?id=42&lang=en",
    "+1 from me 👍",
    "見えていますか？",
    'Quote test: "double" and \'single\' and <tags> & ampersands',
    "line one\nline two",
    "أنا موافق",
    "🙂🙃🙂",
)
_NAMES = (
    "Alice Johnson", "Zoë Ångström", "田中 花子", "محمد علي", "Renée \"Ree\" O'Brien",
    "Bob Smith", "Olúwaseun Adébáyọ̀", "Dmitri Ivanov", "Priya Natarajan", "Chen Wei",
)


@dataclass(frozen=True, slots=True)
class Speaker:
    user_id: int
    user_name: str
    tone_hz: int
    channel_id: str  # what Contact Center streams carry instead of the user identity


@dataclass(frozen=True, slots=True)
class Utterance:
    speaker: Speaker
    text: str
    start_ms: int
    end_ms: int  # the transcript is sent when the utterance ends
    language: int  # the language spoken (what detection finds once it runs)
    anonymous: bool = False  # sent with no speaker (user 0, no name), as Zoom at times does
    attribute: int | None = None  # RTMS_DATA_MESSAGE_ATTRIBUTE, present on some transcripts


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One chat message as Zoom's structured chat carries it: a new message (maybe a reply
    in a thread, a direct message, files), or an update or deletion of an earlier one
    (same `message_id`)."""

    at_ms: int
    sender: Speaker
    text: str  # "" for a deletion
    message_id: str
    chat_session_id: str
    operation: ChatOperation = ChatOperation.NEW
    parent_message_id: str | None = None  # a reply in the thread of this message
    receiver: Speaker | None = None  # a direct message to this participant
    files: tuple[dict[str, Any], ...] = ()

    @property
    def session_type(self) -> ChatSessionType:
        return ChatSessionType.INDIVIDUAL if self.receiver is not None else ChatSessionType.EVERYONE


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    at_ms: int
    event: Event  # stamped with its scripted moment when sent


@dataclass(frozen=True, slots=True)
class Interval:
    start_ms: int
    end_ms: int
    speaker: Speaker


@dataclass
class MeetingScript:
    product: Product
    owner_id: str  # the value under product.id_key
    rtms_stream_id: str
    rtms_session_id: str
    duration_s: float
    offered: MediaType  # single media bits the app's scopes allow
    participants: list[Speaker]
    utterances: list[Utterance]
    chat: list[ChatLine]
    events: list[ScriptEvent]
    shares: list[Interval] = field(default_factory=list)
    extra_ids: dict[str, Any] = field(default_factory=dict)  # meeting_id, account_id, ...

    def __post_init__(self) -> None:
        self.utterances.sort(key=lambda u: u.start_ms)
        self._starts = [u.start_ms for u in self.utterances]
        self._video_changes: list[int] = []  # offsets where who has video on changes
        self._video_on: list[frozenset[int | str]] = []
        on: set[int | str] = set()
        for item in sorted(self.events, key=lambda e: e.at_ms):
            kind = item.event.event_type
            if self.product is Product.CONTACT_CENTER or kind not in (EventType.PARTICIPANT_VIDEO_ON,
                                                                       EventType.PARTICIPANT_VIDEO_OFF):
                continue
            ids = {p.user_id for p in item.event.participants or ()}
            on = on | ids if kind == EventType.PARTICIPANT_VIDEO_ON else on - ids
            self._video_changes.append(item.at_ms)
            self._video_on.append(frozenset(on))

    @property
    def duration_ms(self) -> int:
        return int(self.duration_s * 1000)

    def speaker_at(self, offset_ms: int) -> Speaker | None:
        """Who is talking at `offset_ms` (utterances never overlap)."""
        i = bisect.bisect_right(self._starts, offset_ms) - 1
        if i >= 0 and offset_ms < self.utterances[i].end_ms:
            return self.utterances[i].speaker
        return None

    def active_speaker_at(self, offset_ms: int) -> Speaker:
        """The last one who talked (video's active-speaker view), else the host."""
        i = bisect.bisect_right(self._starts, offset_ms) - 1
        return self.utterances[i].speaker if i >= 0 else self.participants[0]

    def video_on_at(self, offset_ms: int) -> frozenset[int | str]:
        """The user ids with their video on at `offset_ms`, by the VIDEO_ON/OFF events."""
        i = bisect.bisect_right(self._video_changes, offset_ms) - 1
        return self._video_on[i] if i >= 0 else frozenset()

    def video_subject_at(self, offset_ms: int) -> Speaker | None:
        """Whose video the active-speaker view shows: the speaker if their video is on,
        else someone whose video is on; nobody (no video flows) when all are off.
        Contact Center scripts have no video events: the speaker."""
        speaker = self.active_speaker_at(offset_ms)
        if self.product is Product.CONTACT_CENTER:
            return speaker
        on = self.video_on_at(offset_ms)
        if speaker.user_id in on:
            return speaker
        return next((p for p in self.participants if p.user_id in on), None)

    def timeline(self) -> list[tuple[int, Utterance | ChatLine | ScriptEvent]]:
        """Everything scripted, by the offset it is sent at (a transcript when its
        utterance ends)."""
        items: list[tuple[int, Utterance | ChatLine | ScriptEvent]] = []
        items += [(u.end_ms, u) for u in self.utterances]
        items += [(c.at_ms, c) for c in self.chat]
        items += [(e.at_ms, e) for e in self.events]
        items.sort(key=lambda x: x[0])
        return items

    def sharer_at(self, offset_ms: int) -> Speaker | None:
        for share in self.shares:
            if share.start_ms <= offset_ms < share.end_ms:
                return share.speaker
        return None

    # ---- webhook payloads (flat, as Zoom posts them) ------------------------------------

    def _ids(self) -> dict[str, Any]:
        return {self.product.id_key: self.owner_id}

    def started_payload(self, server_urls: str) -> dict[str, Any]:
        return {**self._ids(), **self.extra_ids, "rtms_stream_id": self.rtms_stream_id,
                "server_urls": server_urls}

    def stopped_payload(self, stop_reason: int) -> dict[str, Any]:
        extra = {"session_key": self.extra_ids["session_key"]} if self.product is Product.SESSION else {}
        return {**self._ids(), **extra, "rtms_stream_id": self.rtms_stream_id, "stop_reason": stop_reason}

    def interrupted_payload(self) -> dict[str, Any]:
        return {**self._ids(), "rtms_stream_id": self.rtms_stream_id}


# ---- ids ------------------------------------------------------------------------------


def _zoom_uuid(rng: random.Random, *, force_specials: bool = False) -> str:
    while True:
        text = base64.b64encode(rng.randbytes(16)).decode()  # 22 chars + "=="
        if not force_specials or ("/" in text and "+" in text):
            return text


def _account_like(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(rng.choice(alphabet) for _ in range(22))


# ---- building scripts ------------------------------------------------------------------


def build_meeting(
    seed: int,
    index: int = 0,
    *,
    product: Product = Product.MEETING,
    duration_s: float = 20.0,
    offered: MediaType = ALL_SINGLE_MEDIA,
    chat_lines: int | None = None,
) -> MeetingScript:
    """The script of meeting `index` of a run seeded with `seed` (`chat_lines`: how many
    chat messages instead of one per 4 s; the kinds cycle through `CHAT_KINDS`)."""
    rng = random.Random(f"rtms-sim:{seed}:{index}")
    offered = _singles(offered)
    owner_id = _zoom_uuid(rng, force_specials=index == 0)
    stream_id = rng.randbytes(16).hex()
    session_id = rng.randbytes(16).hex()
    extra = _product_ids(product, rng, index)
    duration_ms = max(int(duration_s * 1000), 600)

    if product is Product.CONTACT_CENTER:
        people = [_speaker(0, "Caller " + rng.choice(_NAMES), 0), _speaker(1, rng.choice(_NAMES), 1)]
        initial, late = people, None
    else:
        count = rng.randint(3, 5)
        names = rng.sample(_NAMES, count)
        people = [_speaker(i, names[i], i) for i in range(count)]
        initial, late = people[:-1], people[-1]

    join_late_ms = int(duration_ms * 0.35)
    leave_ms = int(duration_ms * 0.8)
    leaver = initial[1] if product is not Product.CONTACT_CENTER and len(initial) > 2 else None

    def present(at_ms: int) -> list[Speaker]:
        here = list(initial)
        if late is not None and at_ms >= join_late_ms:
            here.append(late)
        if leaver is not None and at_ms >= leave_ms:
            here.remove(leaver)
        return here

    utterances = _utterances(rng, duration_ms, present)
    chat = _chat(rng, duration_ms, present, chat_lines) if offered & MediaType.CHAT else []
    shares: list[Interval] = []
    if offered & MediaType.DESKSHARE:
        shares.append(Interval(int(duration_ms * 0.4), int(duration_ms * 0.6), people[0]))
    events = _events(product, offered, initial, late, join_late_ms, leaver, leave_ms, utterances, shares,
                     duration_ms)
    return MeetingScript(
        product=product, owner_id=owner_id, rtms_stream_id=stream_id, rtms_session_id=session_id,
        duration_s=duration_ms / 1000, offered=offered, participants=people,
        utterances=utterances, chat=chat, events=events, shares=shares, extra_ids=extra,
    )


def build_meetings(
    seed: int,
    count: int,
    *,
    products: Iterable[Product] = (Product.MEETING,),
    duration_s: float = 20.0,
    offered: MediaType = ALL_SINGLE_MEDIA,
) -> list[MeetingScript]:
    """`count` scripts, products taken in turn from `products` (a load mix)."""
    mix = list(products) or [Product.MEETING]
    return [
        build_meeting(seed, i, product=mix[i % len(mix)], duration_s=duration_s, offered=offered)
        for i in range(count)
    ]


def _singles(media: MediaType) -> MediaType:
    return ALL_SINGLE_MEDIA if media & MediaType.ALL else media & ALL_SINGLE_MEDIA


def _speaker(i: int, name: str, channel: int) -> Speaker:
    # 16778240 + k*1024 is how Zoom's uint32 user ids tend to look
    return Speaker(user_id=16778240 + 1024 * i, user_name=name, tone_hz=50 * (4 + 2 * i),
                   channel_id=str(channel + 1))


def _product_ids(product: Product, rng: random.Random, index: int) -> dict[str, Any]:
    number = rng.randint(10**10, 10**11 - 1)
    if product is Product.MEETING:
        return {"meeting_id": number, "account_id": _account_like(rng),
                "operator_id": _account_like(rng), "is_original_host": True}
    if product is Product.WEBINAR:
        return {"meeting_id": number, "webinar_id": number, "account_id": _account_like(rng),
                "operator_id": _account_like(rng), "is_original_host": True}
    if product is Product.SESSION:
        return {"session_key": f"sim-session-{index}", "account_id": _account_like(rng)}
    return {}


# Every this many utterances, one comes without speaker metadata (zoom/rtms issues 80, 88).
ANONYMOUS_EVERY = 4
# Every this many utterances, one carries `attribute` (NEW), as some of Zoom's do.
ATTRIBUTE_EVERY = 3


def _utterances(rng: random.Random, duration_ms: int, present: Any) -> list[Utterance]:
    edge = min(300, duration_ms // 10)
    count = max(4, round(duration_ms / 1000))
    slot = (duration_ms - 2 * edge) / count
    base = rng.randrange(len(TRANSCRIPT_LINES))
    out: list[Utterance] = []
    previous: Speaker | None = None
    for i in range(count):
        start = int(edge + i * slot + rng.uniform(0, 0.1) * slot)
        end = int(start + rng.uniform(0.55, 0.85) * slot)
        here = present(start)
        speaker = rng.choice([p for p in here if p != previous] or here)
        previous = speaker
        text, language = TRANSCRIPT_LINES[(base + i) % len(TRANSCRIPT_LINES)]
        attribute = int(DataAttribute.NEW) if i % ATTRIBUTE_EVERY == 1 else None
        out.append(Utterance(speaker, text, start, end, int(language), anonymous=i % ANONYMOUS_EVERY == 2,
                             attribute=attribute))
    return out


# The kinds of chat messages, in turn: plain ones first (short meetings carry only those),
# then a reply in a thread, a direct message, a file, an edit and a deletion.
CHAT_KINDS = ("new", "new", "reply", "direct", "file", "update", "delete")


def _chat(rng: random.Random, duration_ms: int, present: Any, count: int | None = None) -> list[ChatLine]:
    count = max(2, round(duration_ms / 4000)) if count is None else max(0, count)
    step = duration_ms / (count + 1)
    session = rng.randbytes(8).hex()
    lines: list[ChatLine] = []
    for i in range(count):
        at = int(step * (i + 1))
        here = present(at)
        sender = rng.choice(here)
        text = CHAT_LINES[i % len(CHAT_LINES)]
        line = ChatLine(at, sender, text, rng.randbytes(12).hex(), session)
        kind = CHAT_KINDS[i % len(CHAT_KINDS)]
        plain = [x for x in lines if x.operation == ChatOperation.NEW and x.receiver is None and not x.files]
        if kind == "reply" and plain:
            line = replace(line, parent_message_id=plain[0].message_id)
        elif kind == "direct" and len(here) > 1:
            receiver = rng.choice([p for p in here if p != sender])
            line = replace(line, receiver=receiver, chat_session_id=f"dm-{rng.randbytes(6).hex()}")
        elif kind == "file":
            file_id = rng.randbytes(8).hex()
            line = replace(line, text="report.pdf", files=({
                "file_id": file_id, "file_name": "report.pdf", "file_size": 48213, "file_type": "pdf",
            },))
        elif kind in ("update", "delete") and plain:
            target = plain[-1] if kind == "update" else plain[0]
            edited = target.text + " (edited)" if kind == "update" else ""
            line = replace(line, sender=target.sender, text=edited, message_id=target.message_id,
                           chat_session_id=target.chat_session_id,
                           operation=ChatOperation.UPDATE if kind == "update" else ChatOperation.DELETE)
        lines.append(line)
    return lines


def _events(
    product: Product,
    offered: MediaType,
    initial: list[Speaker],
    late: Speaker | None,
    join_late_ms: int,
    leaver: Speaker | None,
    leave_ms: int,
    utterances: list[Utterance],
    shares: list[Interval],
    duration_ms: int,
) -> list[ScriptEvent]:
    if product is Product.CONTACT_CENTER:
        return _zcc_events(initial, duration_ms)
    out = [ScriptEvent(0, Event(event_type=int(EventType.PARTICIPANT_JOIN), participants=_people(initial)))]
    video = bool(offered & MediaType.VIDEO)
    if video:
        out.append(ScriptEvent(0, Event(event_type=int(EventType.PARTICIPANT_VIDEO_ON),
                                        participants=_ids_only(initial))))
    if late is not None:
        out.append(ScriptEvent(join_late_ms, Event(event_type=int(EventType.PARTICIPANT_JOIN),
                                                   participants=_people([late]))))
        if video:
            out.append(ScriptEvent(join_late_ms, Event(event_type=int(EventType.PARTICIPANT_VIDEO_ON),
                                                       participants=_ids_only([late]))))
    if leaver is not None:
        if video:  # a camera goes off with its owner
            out.append(ScriptEvent(leave_ms, Event(event_type=int(EventType.PARTICIPANT_VIDEO_OFF),
                                                   participants=_ids_only([leaver]))))
        out.append(ScriptEvent(leave_ms, Event(event_type=int(EventType.PARTICIPANT_LEAVE),
                                               participants=_ids_only([leaver]))))
    if offered & MediaType.CHAT and len(initial) > 1:
        out += _chat_group_events(initial, duration_ms)
    previous: Speaker | None = None
    for u in utterances:
        if u.speaker != previous:
            out.append(ScriptEvent(u.start_ms, Event(event_type=int(EventType.ACTIVE_SPEAKER_CHANGE),
                                                     user_id=u.speaker.user_id, user_name=u.speaker.user_name)))
            previous = u.speaker
    for share in shares:
        out.append(ScriptEvent(share.start_ms, Event(event_type=int(EventType.SHARING_START),
                                                     user_id=share.speaker.user_id,
                                                     user_name=share.speaker.user_name)))
        out.append(ScriptEvent(share.end_ms, Event(event_type=int(EventType.SHARING_STOP))))
    out.sort(key=lambda e: e.at_ms)
    return out


def _chat_group_events(people: list[Speaker], duration_ms: int) -> list[ScriptEvent]:
    """A private chat group's life (events 10-14). Zoom does not document their fields;
    these carry the group under `chat_group`."""
    group_id = f"group-{people[0].user_id}"

    def group(kind: EventType, at: float, members: list[Speaker], status: int | None = None) -> ScriptEvent:
        body: dict[str, Any] = {"id": group_id, "name": "Breakout notes", "type": 0,
                                "members": [{"user_id": p.user_id, **({"status": status} if status is not None else {})}
                                            for p in members]}
        return ScriptEvent(int(duration_ms * at), Event(event_type=int(kind), chat_group=body))

    founders, joiner = people[:1], people[1:2]
    return [
        group(EventType.CHAT_GROUP_CREATE, 0.3, founders),
        group(EventType.CHAT_GROUP_MEMBERS_ADD, 0.35, joiner),
        group(EventType.CHAT_GROUP_MEMBER_STATUS_UPDATE, 0.5, joiner, status=1),  # in a breakout room
        group(EventType.CHAT_GROUP_MEMBERS_DELETE, 0.65, joiner),
        group(EventType.CHAT_GROUP_DELETE, 0.75, founders),
    ]


# A call's life in Contact Center events (8-29), by the fraction of the call it happens at
# and whose participant_info it carries (0: the caller, 1: the agent).
_ZCC_SCRIPT: tuple[tuple[ZccEventType, float, int], ...] = (
    (ZccEventType.CONSUMER_ANSWERED, 0.0, 0),
    (ZccEventType.USER_ANSWERED, 0.0, 1),
    (ZccEventType.USER_HOLD, 0.1, 1),
    (ZccEventType.USER_UNHOLD, 0.15, 1),
    (ZccEventType.MONITOR_STARTED, 0.2, 1),
    (ZccEventType.MONITOR_TRANSITIONED, 0.22, 1),
    (ZccEventType.TAKEOVER_STARTED, 0.24, 1),
    (ZccEventType.MONITOR_ENDED, 0.26, 1),
    (ZccEventType.TRANSFER_INITIATED, 0.3, 1),
    (ZccEventType.TRANSFER_CANCELED, 0.32, 1),
    (ZccEventType.TRANSFER_INITIATED, 0.34, 1),
    (ZccEventType.TRANSFER_REJECTED, 0.36, 1),
    (ZccEventType.TRANSFER_INITIATED, 0.38, 1),
    (ZccEventType.TRANSFER_TIMEOUT, 0.4, 1),
    (ZccEventType.TRANSFER_INITIATED, 0.42, 1),
    (ZccEventType.TRANSFER_ACCEPTED, 0.44, 1),
    (ZccEventType.TRANSFER_COMPLETED, 0.46, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_INVITED, 0.5, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_REJECTED, 0.52, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_INVITED, 0.54, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_TIMEOUT, 0.56, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_INVITED, 0.58, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_CANCELED, 0.6, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_INVITED, 0.62, 1),
    (ZccEventType.CONFERENCE_PARTICIPANT_LEFT, 0.66, 1),
    (ZccEventType.CONFERENCE_CANCELED, 0.68, 1),
    (ZccEventType.USER_END, 0.97, 1),
    (ZccEventType.CONSUMER_END, 0.98, 0),
)


def _zcc_events(people: list[Speaker], duration_ms: int) -> list[ScriptEvent]:
    """Every Contact Center event, each with `participant_info` (its `event_ts` is
    stamped when sent)."""
    queue = {"queue_id": "q-sim-1", "queue_name": "Support", "account_id": "sim-account",
             "division_id": "sim-division"}

    def info(who: Speaker, mode: str) -> dict[str, Any]:
        return {"channel_id": who.channel_id, "participant_mode": mode, "display_name": who.user_name,
                "user_id": str(who.user_id), "phone_number": f"+1555010{who.channel_id:0>4}", **queue}

    modes = ("caller", "callee")
    return [ScriptEvent(int(duration_ms * at),
                        Event(event_type=int(kind), participant_info=info(people[who], modes[who])))
            for kind, at, who in _ZCC_SCRIPT]


def _people(speakers: Iterable[Speaker]) -> list[Participant]:
    return [Participant(user_id=s.user_id, user_name=s.user_name) for s in speakers]


def _ids_only(speakers: Iterable[Speaker]) -> list[Participant]:
    return [Participant(user_id=s.user_id) for s in speakers]


def present_at(script: MeetingScript, offset_ms: int) -> list[Speaker]:
    """Participants in the meeting at `offset_ms`, replaying the join/leave events."""
    ids: dict[int | str, None] = {}
    by_id = {p.user_id: p for p in script.participants}
    for item in script.events:
        if item.at_ms > offset_ms:
            break
        kind = item.event.event_type
        for p in item.event.participants or ():
            if kind == EventType.PARTICIPANT_JOIN:
                ids[p.user_id] = None
            elif kind == EventType.PARTICIPANT_LEAVE:
                ids.pop(p.user_id, None)
    if script.product is Product.CONTACT_CENTER:
        return list(script.participants)
    return [by_id[i] for i in ids if i in by_id]
