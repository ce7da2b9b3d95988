"""What the simulator observed for each meeting: what it sent, what the client answered."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from ..protocol.constants import MEDIA_KEY, MediaType, StatusCode, StopReason, status_name
from ..protocol.messages import ChatContent, TranscriptContent

SIGNALING = "signaling"


def media_label(bits: int) -> str:
    """How a media socket is named in records: "all", "audio", "audio+transcript", ..."""
    if bits & MediaType.ALL:
        return MEDIA_KEY[MediaType.ALL]
    keys = [key for t, key in MEDIA_KEY.items() if t != MediaType.ALL and bits & t]
    return "+".join(keys) or f"media_type={bits}"


@dataclass(frozen=True, slots=True)
class HandshakeRecord:
    socket: str  # "signaling", or the media served: "audio", "all", "audio+transcript", ...
    status_code: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.status_code == StatusCode.OK


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One webhook as delivered (or not), with the HTTP status of every attempt."""

    event: str
    statuses: tuple[int | str, ...]  # an int per answered attempt, an error name otherwise
    ok: bool


_MASK64 = (1 << 64) - 1


class TimestampJitter:
    """How far each media packet's timestamp is off its slot, as real senders' are: a
    seeded uniform shift in [-limit_ms, limit_ms], a pure function of the stream, the
    media kind, the sender (user id; 0 for the mix) and the slot (ms after time zero), so
    a test can tell the timestamp of any packet sent without a log of them all."""

    __slots__ = ("limit_ms", "_key")

    def __init__(self, limit_ms: int, seed: str) -> None:
        self.limit_ms = limit_ms
        self._key = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=8).digest(), "little")

    def __call__(self, kind: int, user_id: int, slot_ms: int) -> int:
        # splitmix64's finaliser over the packet's coordinates: cheap, well mixed, stateless
        x = (self._key + kind * 0xD6E8FEB86659FD93 + user_id * 0x9E3779B97F4A7C15
             + slot_ms * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (x ^ (x >> 31)) % (2 * self.limit_ms + 1) - self.limit_ms


@dataclass(slots=True)
class SentCounts:
    audio_frames: int = 0
    video_frames: int = 0
    share_frames: int = 0
    transcripts: int = 0
    chat: int = 0
    events: int = 0
    keepalives: int = 0
    dropped: int = 0  # scripted items no socket was there to carry
    buffered: int = 0  # audio packets held from the start webhook to the connection (sent in a burst)


@dataclass
class MeetingRecord:
    product: str
    owner_id: str
    rtms_stream_id: str
    rtms_session_id: str
    sent: SentCounts = field(default_factory=SentCounts)
    transcripts: list[TranscriptContent] = field(default_factory=list)
    chat: list[ChatContent] = field(default_factory=list)
    events: Counter[int] = field(default_factory=Counter)  # event_type -> count sent
    handshakes: list[HandshakeRecord] = field(default_factory=list)
    ready_acks: int = 0
    state_requests: dict[str, int] = field(default_factory=dict)  # "stream" / "session" -> how many
    subscribed: set[int] = field(default_factory=set)
    keepalives_sent: Counter[str] = field(default_factory=Counter)  # by socket
    keepalives_answered: Counter[str] = field(default_factory=Counter)
    keepalive_bad_echoes: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)  # client messages out of place
    frames_rejected: int = 0  # client frames that did not decode
    close_requested: bool = False
    interruptions: int = 0  # signaling lost (webhook *.rtms_interrupted sent)
    media_interruptions: int = 0  # a media socket lost (EVENT_UPDATE 7 sent)
    pauses: int = 0  # the session paused (SESSION_STATE_UPDATE PAUSED sent)
    audio_metadata: int = 0  # META_DATA_AUDIO (23) messages sent
    faults: list[str] = field(default_factory=list)  # injected, as `kind@seconds=argument`
    garbage_sent: int = 0  # frames of the `fuzz` fault
    t0_ms: int | None = None  # wall-clock ms of the meeting's start: media timestamps count from it
    jitter: TimestampJitter | None = None  # media timestamps are off their slot by this (None: exact)
    # Offset (ms after t0) of the first audio packet each time audio started again, after an
    # interruption or a media reconnect: every packet from there on was sent.
    resumed_at_ms: list[int] = field(default_factory=list)
    stop_reason: int | None = None
    outcome: str = "pending"
    webhooks: list[DeliveryRecord] = field(default_factory=list)

    def stamp(self, kind: int, user_id: int, slot_ms: int) -> int:
        """The timestamp the packet of `kind` for `slot_ms` (ms after time zero) from
        `user_id` (0: the mixed audio) carried."""
        shift = self.jitter(kind, user_id, slot_ms) if self.jitter is not None else 0
        return (self.t0_ms or 0) + slot_ms + shift

    @property
    def signaling_ok(self) -> bool:
        return any(h.ok and h.socket == SIGNALING for h in self.handshakes)

    @property
    def media_ok(self) -> list[str]:
        return [h.socket for h in self.handshakes if h.ok and h.socket != SIGNALING]

    @property
    def handshakes_complete(self) -> bool:
        """The client authenticated, opened media and declared itself ready."""
        return self.signaling_ok and bool(self.media_ok) and self.ready_acks > 0

    def summary_line(self) -> str:
        rejected = [f"{h.socket}={h.status_code} {status_name(h.status_code)}"
                    for h in self.handshakes if not h.ok]
        s = self.sent
        sent = (f"transcripts={s.transcripts} audio={s.audio_frames} video={s.video_frames} "
                f"share={s.share_frames} chat={s.chat} events={s.events}")
        answered = sum(self.keepalives_answered.values())
        asked = sum(self.keepalives_sent.values())
        reason = "-" if self.stop_reason is None else f"{self.stop_reason} {StopReason(self.stop_reason).name}"
        hooks = " ".join(f"{d.event.rsplit('.', 1)[-1]}:{'/'.join(map(str, d.statuses)) or '-'}"
                         for d in self.webhooks)
        return (
            f"{self.rtms_stream_id} {self.product:<14} {self.outcome}: sent {sent} | "
            f"handshakes signaling={'ok' if self.signaling_ok else 'no'} "
            f"media={','.join(self.media_ok) or 'none'}"
            f"{' rejected ' + ','.join(rejected) if rejected else ''} ready={self.ready_acks} "
            f"keepalives {answered}/{asked} answered | stop {reason} | webhooks {hooks}"
        )
