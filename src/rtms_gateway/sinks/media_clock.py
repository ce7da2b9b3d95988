"""A stream's own clock: how far ahead of it a media timestamp may plausibly be.

Zoom stamps media with its clock (Unix ms). The first media timestamp a stream brings in
this process anchors that clock, and from then on it advances with our monotonic clock: at
local time t, a timestamp is plausible up to `anchor + (t - anchored) + LEAD_MS`. LEAD_MS
covers Zoom's buffer: the first audio delivered can be up to 60 s older than the live
packets that follow it (after the start webhook, and again after an interruption), so the
anchor itself may lag Zoom's clock by that much. A first timestamp further than
MAX_SKEW_MS ahead of our wall clock anchors nothing (webhook verification already assumes
the two clocks agree within minutes).

Older timestamps are always plausible (buffered audio, reconnects, replays). A refused one
moves nothing: neither the anchor, nor a track, nor the stream's time zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LEAD_MS = 70_000  # Zoom's 60 s buffer, and a margin
MAX_SKEW_MS = 300_000  # how far ahead of our wall clock a stream's first timestamp may be
_NEVER = -(1 << 63)


class StreamClock:
    """Per frame, `ts <= clock.limit_ms or clock.admits(ts)`: the common case is one
    comparison; the clock is read only when a timestamp passes the cached limit."""

    __slots__ = ("_anchor_ms", "_anchored_at", "_now", "_wall", "limit_ms", "refused")

    def __init__(self, *, now: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.limit_ms = _NEVER  # below any timestamp until the clock is anchored
        self.refused = 0
        self._anchor_ms: int | None = None
        self._anchored_at = 0.0
        self._now = now
        self._wall = wall

    def admits(self, timestamp_ms: int) -> bool:
        if timestamp_ms <= self.limit_ms:
            return True
        now = self._now()
        if self._anchor_ms is None:
            if timestamp_ms > self._wall() * 1000 + MAX_SKEW_MS:
                return False
            self._anchor_ms, self._anchored_at = timestamp_ms, now
        self.limit_ms = self._anchor_ms + int((now - self._anchored_at) * 1000) + LEAD_MS
        return timestamp_ms <= self.limit_ms

    def ahead_s(self, timestamp_ms: int) -> float:
        """How far `timestamp_ms` lies past the stream's clock now (for the log)."""
        now_ms = (self._anchor_ms + int((self._now() - self._anchored_at) * 1000)
                  if self._anchor_ms is not None else int(self._wall() * 1000))
        return (timestamp_ms - now_ms) / 1000
