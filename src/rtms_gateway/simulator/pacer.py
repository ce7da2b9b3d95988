"""One clock for every stream: a 20 ms tick that sends whatever is due.

Hundreds of meetings at real rate would mean tens of thousands of timer wake-ups a second
with a task per media stream; one loop visiting each streaming stream per tick costs one
wake-up per 20 ms whatever the count. Each feed keeps its own due times, so a late tick
sends the backlog instead of drifting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .scenario import CHUNK_MS

log = logging.getLogger(__name__)
_STATS_WINDOW = 200_000  # ticks kept for percentiles (over an hour at 50 ticks/s)


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PacerStats:
    ticks: int
    lateness_p50_ms: float  # how late each tick's last frame left, against the tick's schedule
    lateness_p99_ms: float
    lateness_max_ms: float
    busy_p50_ms: float  # time spent sending in one tick
    busy_p99_ms: float


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pacer:
    def __init__(self, tick_s: float = CHUNK_MS / 1000) -> None:
        self.tick_s = tick_s
        self._streams: dict[Ticking, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lateness: deque[float] = deque(maxlen=_STATS_WINDOW)
        self._busy: deque[float] = deque(maxlen=_STATS_WINDOW)
        # Wall-clock seconds at which each tick began sending: a packet due at T left with
        # the first tick at or after T (what a benchmark needs to time a packet from its send).
        self.tick_started_at: deque[float] = deque(maxlen=_STATS_WINDOW)
        self.ticks = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rtms-sim-pacer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def add(self, stream: Ticking) -> None:
        self._streams[stream] = None
        self._wake.set()

    def remove(self, stream: Ticking) -> None:
        self._streams.pop(stream, None)

    def reset_stats(self) -> None:
        self._lateness.clear()
        self._busy.clear()
        self.tick_started_at.clear()
        self.ticks = 0

    def stats(self) -> PacerStats:
        late = list(self._lateness)
        busy = list(self._busy)
        return PacerStats(
            ticks=self.ticks,
            lateness_p50_ms=_percentile(late, 0.5) * 1000,
            lateness_p99_ms=_percentile(late, 0.99) * 1000,
            lateness_max_ms=max(late, default=0.0) * 1000,
            busy_p50_ms=_percentile(busy, 0.5) * 1000,
            busy_p99_ms=_percentile(busy, 0.99) * 1000,
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.tick_s
        base, k = loop.time(), 0
        while True:
            if not self._streams:
                self._wake.clear()
                await self._wake.wait()
                base, k = loop.time(), 0
            k += 1
            target = base + k * tick
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self.tick_started_at.append(time.time())
            for stream in list(self._streams):
                try:
                    stream.tick(now)
                except Exception:  # one broken stream must not stop the others
                    log.exception("stream tick failed; the stream stops being paced")
                    self.remove(stream)
            done = loop.time()
            self.ticks += 1
            self._lateness.append(max(0.0, done - target))
            self._busy.append(done - now)
            if done - target > tick:  # overran: skip the ticks already missed
                k = int((done - base) / tick)
