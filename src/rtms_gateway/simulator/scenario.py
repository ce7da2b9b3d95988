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
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..protocol.constants import (
    SINGLE_MEDIA_TYPES,
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
    language: int
    anonymous: bool = False  # sent with no speaker (user 0, no name), as Zoom at times does


@dataclass(frozen=True, slots=True)
class ChatLine:
    at_ms: int
    sender: Speaker
    text: str
    message_id: str
    chat_session_id: str


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
) -> MeetingScript:
    """The script of meeting `index` of a run seeded with `seed`."""
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
    chat = _chat(rng, duration_ms, present) if offered & MediaType.CHAT else []
    shares: list[Interval] = []
    if offered & MediaType.DESKSHARE:
        shares.append(Interval(int(duration_ms * 0.4), int(duration_ms * 0.6), people[0]))
    events = _events(product, offered, initial, late, join_late_ms, leaver, leave_ms, utterances, shares)
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
        out.append(Utterance(speaker, text, start, end, int(language), anonymous=i % ANONYMOUS_EVERY == 2))
    return out


def _chat(rng: random.Random, duration_ms: int, present: Any) -> list[ChatLine]:
    count = max(2, round(duration_ms / 4000))
    step = duration_ms / (count + 1)
    session = rng.randbytes(8).hex()
    lines = []
    for i in range(count):
        at = int(step * (i + 1))
        lines.append(ChatLine(at, rng.choice(present(at)), CHAT_LINES[i % len(CHAT_LINES)],
                              rng.randbytes(12).hex(), session))
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
) -> list[ScriptEvent]:
    if product is Product.CONTACT_CENTER:
        roles = ((ZccEventType.CONSUMER_ANSWERED, "caller"), (ZccEventType.USER_ANSWERED, "callee"))
        return [
            ScriptEvent(0, Event(event_type=int(kind), participant_info={
                "channel_id": who.channel_id, "participant_mode": mode, "display_name": who.user_name,
            }))
            for (kind, mode), who in zip(roles, initial)
        ]
    out = [ScriptEvent(0, Event(event_type=int(EventType.PARTICIPANT_JOIN), participants=_people(initial)))]
    if offered & MediaType.VIDEO:
        out.append(ScriptEvent(0, Event(event_type=int(EventType.PARTICIPANT_VIDEO_ON),
                                        participants=_ids_only(initial))))
    if late is not None:
        out.append(ScriptEvent(join_late_ms, Event(event_type=int(EventType.PARTICIPANT_JOIN),
                                                   participants=_people([late]))))
    if leaver is not None:
        out.append(ScriptEvent(leave_ms, Event(event_type=int(EventType.PARTICIPANT_LEAVE),
                                               participants=_ids_only([leaver]))))
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
