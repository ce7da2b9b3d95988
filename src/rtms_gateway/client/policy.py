"""When to connect again, and for how long: Zoom's failover guide as one policy (sans-I/O).

Whether a connection that ended is worth another is `ReconnectPolicy.classify`, the one
place that decides it; how long to wait is its `Backoff`: the first retry after `initial`
seconds, doubling up to `cap`, each wait jittered so many clients do not come back in step,
started over after a successful handshake. A window bounds the effort: Zoom keeps a media
socket's place for 65 s and a whole stream's for 60 s (`protocol.constants`), and the
gateway keeps trying until the window has closed, never giving up before.

A signaling handshake Zoom refuses is final only for the statuses the reference calls
final (`FINAL_REJECTIONS`: a bad signature, request, stream, media type or parameter,
which no retry can mend). The others are transient: above all DUPLICATE_SIGNAL_REQUEST
(8), Zoom's answer while it still holds the socket a blip left behind, which Zoom's own
library retries; they are retried like a lost connection.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..protocol.constants import (
    FAILURE_STOP_REASONS,
    MEDIA_RECONNECT_WINDOW_S,
    RECONNECT_INITIAL_S,
    RECONNECT_MAX_S,
    SIGNALING_RECONNECT_WINDOW_S,
    StatusCode,
)
from .lifecycle import RECONNECT_AT_ONCE, RETRYABLE, StreamOutcome, StreamState

JITTER = 0.2  # each wait is drawn from ±20% around its nominal value

# Handshake statuses after which no retry can succeed (the reference's auth, request,
# stream and media categories, 1-7 and 9-43, and the transcript target language 46).
# DUPLICATE_SIGNAL_REQUEST (8), INTERNAL_EXCEPTION (45), CHAT_SESSION_KEY_NOT_AVAILABLE
# (47) and any code the enum does not know yet are worth another handshake.
FINAL_REJECTIONS: frozenset[int] = frozenset({
    *range(StatusCode.INVALID_MESSAGE_TYPE, StatusCode.DUPLICATE_SIGNAL_REQUEST),  # 1-7
    *range(StatusCode.DUPLICATE_SIGNAL_REQUEST + 1,
           StatusCode.INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE + 1),  # 9-43
    StatusCode.INVALID_MEDIA_TRANSCRIPT_TARGET_LANGUAGE,  # 46
})


@dataclass(slots=True)
class Backoff:
    initial: float = RECONNECT_INITIAL_S
    cap: float = RECONNECT_MAX_S
    window: float = SIGNALING_RECONNECT_WINDOW_S
    jitter: float = JITTER
    random: Callable[[], float] = field(default=_random.random, repr=False)
    attempts: int = 0
    started_at: float | None = None

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next attempt, or None once the window has closed.
        The window counts from the first call after a reset; a wait that would end past
        it is cut to end with it, so the last attempt is made as the window closes."""
        if self.started_at is None:
            self.started_at = now
        left = self.started_at + self.window - now
        if left <= 0:
            return None
        nominal = min(self.cap, self.initial * 2.0 ** min(self.attempts, 64))
        self.attempts += 1
        return min(left, nominal * (1 - self.jitter + 2 * self.jitter * self.random()))

    def reset(self) -> None:
        self.attempts = 0
        self.started_at = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Connect again after `delay` seconds; `cause` is how the connection ended."""

    delay: float
    cause: StreamState


@dataclass(frozen=True, slots=True)
class Stop:
    """Connect no more: `outcome` is how the stream ends, with the reason."""

    outcome: StreamOutcome


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    initial_s: float = RECONNECT_INITIAL_S
    cap_s: float = RECONNECT_MAX_S
    media_window_s: float = MEDIA_RECONNECT_WINDOW_S
    signaling_window_s: float = SIGNALING_RECONNECT_WINDOW_S
    jitter: float = JITTER
    random: Callable[[], float] = field(default=_random.random, repr=False)

    def stream_backoff(self) -> Backoff:
        """For a whole stream (signaling and media) lost: Zoom's signaling window."""
        return Backoff(self.initial_s, self.cap_s, self.signaling_window_s, self.jitter,
                       self.random)

    def media_backoff(self) -> Backoff:
        """For one media socket lost while signaling stays: Zoom's media window."""
        return Backoff(self.initial_s, self.cap_s, self.media_window_s, self.jitter, self.random)

    def after_stop(self, stop_reason: int | None) -> StreamState:
        """How to end the connection of a stream Zoom stopped (`*.rtms_stopped`): the
        failover guide restarts the whole connection after a failure reason (INTERRUPTED:
        connect again at once; if Zoom no longer offers the stream, the handshake says
        so), any other reason ends it (STOPPED)."""
        if stop_reason in FAILURE_STOP_REASONS:
            return StreamState.INTERRUPTED
        return StreamState.STOPPED

    @staticmethod
    def transient(status_code: int | None) -> bool:
        """Whether a signaling handshake refused with this status is worth another."""
        return status_code is not None and status_code not in FINAL_REJECTIONS

    def classify(self, outcome: StreamOutcome, backoff: Backoff, now: float) -> Retry | Stop:
        """Whether the stream whose connection ended so is connected again, and when.

        A connection we ended to connect again (interrupted, moved) is followed at once.
        One that was lost, that Zoom stopped for a failure reason (the failover guide's
        10-19 and 24), or whose handshake Zoom refused for a transient status (8 above
        all), waits its backoff, while Zoom's window is open. Anything else ends the
        stream: a normal stop, a refusal, a handshake refused for good."""
        state = outcome.state
        if state not in RETRYABLE:
            return Stop(outcome)
        if state is StreamState.STOPPED and outcome.stop_reason not in FAILURE_STOP_REASONS:
            return Stop(outcome)
        if state is StreamState.REJECTED and not self.transient(outcome.status_code):
            return Stop(outcome)
        if state in RECONNECT_AT_ONCE:
            return Retry(0.0, state)
        delay = backoff.next_delay(now)
        if delay is None:
            why = outcome.status_reason or state.value
            return Stop(replace(outcome, status_reason=f"{why}; no connection within "
                                                        f"{backoff.window:.0f} s"))
        return Retry(delay, state)
