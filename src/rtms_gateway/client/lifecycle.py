"""The life of one RTMS stream as the gateway holds it, across its connections (sans-I/O).

Every state a stream can be in, and every move between them, is written here once; the
client, the manager, recovery and the store ask this module (the store keeps `state.value`).

The moves (anything else is a LocalProtocolError):

    CONNECTING --every media handshake done (or refused)--> READY
    CONNECTING | READY --the connection ends--> how it ended:
        STOPPED      Zoom ended the stream (normally, or for a failure stop reason)
        LOST         a socket or handshake failed on its own, or a window ran out
        INTERRUPTED  we ended it to connect again (`rtms_interrupted`, a failure stop)
        MOVED        we ended it to connect to new servers (a new `rtms_started`)
        DETACHED     we let go at shutdown while Zoom keeps it
        REJECTED     Zoom refused the signaling handshake (CONNECTING only)
        REFUSED      we refused a server URL that is not TLS (CONNECTING only)
        FAILED       a bug in the client
        CANCELLED    the task holding it was cancelled
    LOST | STOPPED | REJECTED | INTERRUPTED | MOVED --the policy retries--> RECONNECTING
    RECONNECTING --> CONNECTING
    INTERRUPTED | MOVED | RECONNECTING --Zoom stops it / we shut down--> STOPPED | DETACHED
    DETACHED --the next start of the gateway rejoins it--> CONNECTING

What follows from the table (and nothing else decides it):
- terminal: a stream may end there, nothing follows but a retry (stopped, lost, rejected,
  refused, failed, cancelled); the store stamps `stopped_at_ms`;
- retryable: a retry may follow (lost, stopped, rejected, interrupted, moved); the ones
  that are not terminal (interrupted, moved: we ended them to connect again) reconnect at
  once, the others after the backoff and only inside Zoom's window (`policy.ReconnectPolicy`, which
  also says which rejections are worth another handshake);
- live: every other state (connecting, ready, reconnecting, interrupted, moved, detached).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ..protocol.errors import LocalProtocolError


class StreamState(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    INTERRUPTED = "interrupted"
    MOVED = "moved"
    DETACHED = "detached"
    STOPPED = "stopped"
    LOST = "lost"
    REJECTED = "rejected"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


_S = StreamState
# How a connection can end once its handshakes are done.
_ENDS_WHEN_READY = frozenset({_S.STOPPED, _S.LOST, _S.INTERRUPTED, _S.MOVED, _S.DETACHED,
                              _S.FAILED, _S.CANCELLED})
# Before the end of a retry, Zoom may stop the stream or we may shut down.
_CUT_SHORT = frozenset({_S.STOPPED, _S.DETACHED, _S.CANCELLED})

MOVES: Mapping[StreamState, frozenset[StreamState]] = {
    _S.CONNECTING: _ENDS_WHEN_READY | {_S.READY, _S.REJECTED, _S.REFUSED},
    _S.READY: _ENDS_WHEN_READY,
    _S.LOST: frozenset({_S.RECONNECTING}),
    _S.STOPPED: frozenset({_S.RECONNECTING}),
    _S.INTERRUPTED: _CUT_SHORT | {_S.RECONNECTING},
    _S.MOVED: _CUT_SHORT | {_S.RECONNECTING},
    _S.RECONNECTING: _CUT_SHORT | {_S.CONNECTING},
    _S.DETACHED: frozenset({_S.CONNECTING}),
    _S.REJECTED: frozenset({_S.RECONNECTING}),  # Zoom's status says whether to (policy)
    _S.REFUSED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, after in MOVES.items() if after <= {_S.RECONNECTING})
RETRYABLE = frozenset(s for s, after in MOVES.items() if _S.RECONNECTING in after)
RECONNECT_AT_ONCE = RETRYABLE - TERMINAL
LIVE = frozenset(StreamState) - TERMINAL
# How one connection can end: what the client reports in its outcome.
ENDINGS = MOVES[_S.CONNECTING] - {_S.READY}
# Ended, and not because Zoom ended it or we stopped: a meeting made only of these failed.
FAILURES = TERMINAL - {_S.STOPPED, _S.CANCELLED}


class Lifecycle:
    """One stream's state, moved only along the table."""

    __slots__ = ("state",)

    def __init__(self, state: StreamState = StreamState.CONNECTING) -> None:
        self.state = state

    def can_move(self, new: StreamState) -> bool:
        return new in MOVES[self.state]

    def move(self, new: StreamState) -> None:
        if new not in MOVES[self.state]:
            raise LocalProtocolError(f"a stream cannot go from {self.state.value} to {new.value}")
        self.state = new

    @property
    def ended(self) -> bool:
        """Whether the connection this lifecycle follows is over (any state past READY)."""
        return self.state is not StreamState.CONNECTING and self.state is not StreamState.READY


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """How one connection ended, and why."""

    state: StreamState
    stop_reason: int | None = None
    status_code: int | None = None
    status_reason: str | None = None
    media_rejected: Mapping[str, int] = field(default_factory=dict)  # media key -> status


# ---- what a stream tells its observer about its lifecycle, in this order ----------------


@dataclass(frozen=True, slots=True)
class Connecting:
    """The signaling socket is being opened."""

    url: str


@dataclass(frozen=True, slots=True)
class Connected:
    """Signaling accepted us; these media sockets are being opened."""

    media: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ready:
    """Every media socket completed its handshake or was refused: the stream is READY."""


@dataclass(frozen=True, slots=True)
class MediaRejected:
    """Zoom refused one media socket; the others stream on."""

    media: str
    status_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The connection is over (always the last notification of a run)."""

    outcome: StreamOutcome


LifecycleChange = Connecting | Connected | Ready | MediaRejected | Ended


# ---- a meeting, from the states of its streams -----------------------------------------


class MeetingState(StrEnum):
    PENDING = "pending"  # no stream yet
    LIVE = "live"
    STOPPED = "stopped"
    FAILED = "failed"


def meeting_state(stream_states: Iterable[str], stopped: bool) -> MeetingState:
    """A meeting is live while one of its streams is and Zoom has not stopped it; failed
    when each of its streams ended in a failure."""
    states = list(stream_states)
    if not stopped and any(s in LIVE for s in states):
        return MeetingState.LIVE
    if states and all(s in FAILURES for s in states):
        return MeetingState.FAILED
    return MeetingState.STOPPED if stopped or states else MeetingState.PENDING
