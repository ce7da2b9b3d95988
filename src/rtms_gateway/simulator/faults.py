"""Zoom's failure cases, on demand: what the simulator can do wrong, and when.

This module names the faults, parses and draws them, makes the bad frames they send, and
decides what each socket-level one does to a stream (`FaultInjector`, which plugs into the
stream's sans-I/O session); the webhook ones (`interrupted-webhook`, `move`) the runner posts.

A fault is written `kind[@seconds][=argument]`: `drop-media@3`, `silent@2=70`,
`reject@0=3`. Without `@` it happens 2 s into streaming. `random_faults` draws some for a
meeting from a seed, so a failing run can be replayed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from enum import StrEnum

from ..protocol.constants import StatusCode, StopReason
from .session import Drop, PauseReading, SendRaw, StreamSession


class FaultKind(StrEnum):
    DROP_SIGNALING = "drop-signaling"  # the signaling socket dies (no close frame)
    DROP_MEDIA = "drop-media"  # one media socket dies
    SILENT = "silent"  # nothing at all (data, keep-alives) for `argument` seconds, sockets open
    REJECT = "reject"  # the next signaling handshake is refused with status `argument`
    MALFORMED = "malformed"  # frames that are not JSON, or JSON of the wrong shape
    TRUNCATED = "truncated"  # a valid frame cut short
    UNKNOWN_TYPE = "unknown-type"  # well-formed frames of message types that do not exist
    DUPLICATE = "duplicate"  # the last frames of every socket sent again
    INTERRUPTED_WEBHOOK = "interrupted-webhook"  # `*.rtms_interrupted` posted, sockets untouched
    MOVE = "move"  # a new `*.rtms_started` for the live stream, with new server URLs
    SLOW_READER = "slow-reader"  # the server stops reading the client for `argument` seconds
    FUZZ = "fuzz"  # `argument` generated garbage frames (mutated real ones, random JSON, bytes)
    LINGER = "linger"  # signaling dies and is held as "still closing" for `argument` s: reconnecting gets status 8
    PAUSE = "pause"  # the session pauses for `argument` seconds, then resumes
    REVOKE = "revoke"  # the stream ends with STREAM_REVOKED (8): the app must delete what it has
    END = "end"  # the stream ends with stop reason `argument`


DEFAULT_AT_S = 2.0
DEFAULT_ARGUMENT = {FaultKind.SILENT: 70.0, FaultKind.REJECT: 3.0, FaultKind.SLOW_READER: 5.0,
                    FaultKind.FUZZ: 1000.0, FaultKind.LINGER: 5.0, FaultKind.PAUSE: 3.0,
                    FaultKind.END: float(StopReason.HOST_TRIGGERED)}
# Faults that a random draw may pick: every one a client should ride out. A refused or
# lingering handshake and a revoked or ended stream are chosen on purpose only, and so is
# a pause (kinds added later stay out, so that a seed draws what it always drew).
RANDOM_KINDS = tuple(k for k in FaultKind if k not in (FaultKind.REJECT, FaultKind.LINGER, FaultKind.PAUSE,
                                                       FaultKind.REVOKE, FaultKind.END))


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    at_s: float = DEFAULT_AT_S  # seconds after streaming started
    argument: float | None = None

    @property
    def value(self) -> float | None:
        return self.argument if self.argument is not None else DEFAULT_ARGUMENT.get(self.kind)

    def __str__(self) -> str:
        arg = f"={self.argument:g}" if self.argument is not None else ""
        return f"{self.kind.value}@{self.at_s:g}{arg}"


def parse_fault(text: str) -> Fault:
    """`kind[@seconds][=argument]` -> Fault; ValueError naming what is wrong."""
    spec, _, argument = text.partition("=")
    name, _, at = spec.partition("@")
    try:
        kind = FaultKind(name.strip())
    except ValueError:
        raise ValueError(f"unknown fault {name!r} (known: {', '.join(k.value for k in FaultKind)})") from None
    try:
        fault = Fault(kind, float(at) if at else DEFAULT_AT_S, float(argument) if argument else None)
    except ValueError:
        raise ValueError(f"fault {text!r}: time and argument are numbers (kind@seconds=argument)") from None
    if kind is FaultKind.END and fault.value not in {float(r) for r in StopReason}:
        raise ValueError(f"fault {text!r}: {argument} is not a stop reason (0-26)")
    return fault


def random_faults(seed: int, index: int, count: int, duration_s: float) -> list[Fault]:
    """`count` faults for meeting `index`, at times inside its first two thirds."""
    rng = random.Random(f"rtms-faults:{seed}:{index}")
    latest = max(1.0, duration_s * 2 / 3)
    faults = []
    for _ in range(count):
        kind = rng.choice(RANDOM_KINDS)
        argument = None
        if kind is FaultKind.SILENT:
            argument = round(rng.uniform(1.0, 4.0), 1)
        elif kind is FaultKind.SLOW_READER:
            argument = round(rng.uniform(0.5, 3.0), 1)
        elif kind is FaultKind.FUZZ:
            argument = float(rng.randint(50, 500))
        faults.append(Fault(kind, round(rng.uniform(0.5, latest), 2), argument))
    return sorted(faults, key=lambda f: f.at_s)


# ---- bad frames -------------------------------------------------------------------------

# What a `malformed` fault sends: not JSON, JSON that is not an object, and messages of
# known types with fields of the wrong shape.
MALFORMED_FRAMES = (
    b"\x00\xffnot json at all",
    b"[1, 2, 3]",
    b'{"msg_type": "fourteen"}',
    b'{"msg_type": 17, "content": "not an object"}',
    b'{"msg_type": 14, "content": {"data": "%%%not base64%%%", "timestamp": 1}}',
)
# What an `unknown-type` fault sends: well-formed frames of types that do not exist.
UNKNOWN_TYPE_FRAMES = (
    b'{"msg_type":99,"content":{"data":"from the future"}}',
    b'{"msg_type":0}',
)
_SOME_FRAME = b'{"msg_type":12,"timestamp":1}'  # cut short when a socket sent nothing yet


def truncated(frame: bytes | None) -> bytes:
    """A `truncated` fault's frame: the first half of the last one sent."""
    whole = frame or _SOME_FRAME
    return whole[: max(1, len(whole) // 2)]


# ---- garbage, for the `fuzz` fault ------------------------------------------------------

_FIELDS = ("msg_type", "content", "event", "user_id", "user_name", "data", "timestamp", "state", "reason",
           "status_code", "media_type", "rtms_stream_id", "sequence", "participants", "length", "start_time")


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**64, rng.randint(-1000, 1000)])
    if pick == 1:
        return rng.choice(["", "x" * rng.randint(1, 300), "\u0000", "\ud83d\ude00 ünïcödé", "%%%", "null"])
    if pick == 2:
        return rng.choice([None, True, False])
    if pick == 3:
        return rng.uniform(-1e18, 1e18)
    if pick == 4:
        return rng.randint(0, 40)  # message types, enums
    if pick == 5:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 64)))
    if pick == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_FIELDS): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def garbage_frame(rng: random.Random, real: bytes | None) -> bytes:
    """One frame a broken or hostile server might send: random bytes, a real frame cut or
    with bytes flipped, or JSON of a real message type with fields of any shape."""
    pick = rng.randrange(6)
    if pick == 0 or (real is None and pick < 3):
        return rng.randbytes(rng.randint(0, 200))
    if pick == 1 and real is not None:
        return real[: rng.randrange(len(real) or 1)]
    if pick == 2 and real:
        data = bytearray(real)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    body = {rng.choice(_FIELDS): _value(rng) for _ in range(rng.randint(0, 6))}
    body["msg_type"] = rng.choice([rng.randint(-5, 40), 14, 15, 16, 17, 18, 6, 8, 9, 12, "14", None])
    try:
        return json.dumps(body, allow_nan=rng.random() < 0.1).encode()
    except ValueError:
        return b"{}"


# ---- what a fault does to a stream ------------------------------------------------------

FUZZ_PER_TICK = 200  # garbage frames per 20 ms tick: 10,000/s


class FaultInjector:
    """The socket-level faults of one stream: each one's effect, through its session."""

    def __init__(self, session: StreamSession) -> None:
        self.session = session
        self._fuzz_left = 0
        self._fuzz_rng = random.Random(0)

    def inject(self, fault: Fault, now: float, stamp: int = 0) -> None:
        """Do `fault` now (`stamp`: wall-clock ms for the messages it causes): queue its
        drops, pauses and frames, or set what the session's rules consult (silence, the
        next handshake's refusal)."""
        session, kind = self.session, fault.kind
        session.record.faults.append(str(fault))
        media = [s for s in session.media if s.live]
        live = session.live_sockets()
        if kind is FaultKind.DROP_SIGNALING and session.signaling is not None:
            session.queue(Drop(session.signaling))
        elif kind is FaultKind.DROP_MEDIA and media:
            session.queue(Drop(media[0]))
        elif kind is FaultKind.SILENT:
            session.silence(now + (fault.value or 0))
        elif kind is FaultKind.REJECT:
            session.refuse_next_signaling(int(fault.value or StatusCode.INVALID_SIGNATURE))
            if session.signaling is not None:
                session.queue(Drop(session.signaling))  # so that the client has to handshake again
        elif kind is FaultKind.MALFORMED:
            for socket in live:
                session.queue(SendRaw(socket, MALFORMED_FRAMES))
        elif kind is FaultKind.TRUNCATED:
            for socket in live:
                session.queue(SendRaw(socket, (truncated(socket.last_payload),)))
        elif kind is FaultKind.UNKNOWN_TYPE:
            for socket in live:
                session.queue(SendRaw(socket, UNKNOWN_TYPE_FRAMES))
        elif kind is FaultKind.DUPLICATE:
            for socket in media:
                session.queue(SendRaw(socket, tuple(socket.recent)))
        elif kind is FaultKind.SLOW_READER:
            for socket in live:
                session.queue(PauseReading(socket, fault.value or 0))
        elif kind is FaultKind.LINGER:
            session.linger_signaling(now, fault.value or 0)
        elif kind is FaultKind.PAUSE:
            session.pause(now, stamp, fault.value or 0)
        elif kind is FaultKind.REVOKE:
            session.request_stop(StopReason.STREAM_REVOKED)
        elif kind is FaultKind.END:
            session.request_stop(StopReason(int(fault.value or StopReason.HOST_TRIGGERED)))
        elif kind is FaultKind.FUZZ:
            self._fuzz_left += int(fault.value or 0)
            self._fuzz_rng = random.Random(f"rtms-fuzz:{session.rtms_stream_id}:{fault}")

    @property
    def fuzzing(self) -> bool:
        return self._fuzz_left > 0

    def fuzz(self) -> None:
        """One tick's share of the `fuzz` fault's frames, over every live socket."""
        session = self.session
        live = session.live_sockets()
        if not self._fuzz_left or not live:
            return
        rng = self._fuzz_rng
        last = {s: s.last_payload for s in live}  # each garbage frame mutates the one before
        for _ in range(min(FUZZ_PER_TICK, self._fuzz_left)):
            socket = rng.choice(live)
            frame = garbage_frame(rng, last[socket])
            last[socket] = frame
            session.queue(SendRaw(socket, (frame,)))
            self._fuzz_left -= 1
            session.record.garbage_sent += 1
