"""One clock for every stream: a few wake-ups per 20 ms, each sending what is due.

Hundreds of meetings at real rate would mean tens of thousands of timer wake-ups a second
with a task per media stream; one loop visiting the streams costs a few wake-ups per 20 ms
whatever the count. Each feed keeps its own due times, so a late visit sends the backlog
instead of drifting.

Zoom's meetings start at different moments and each sends on its own 20 ms beat, so a
receiver of many meetings gets their packets spread over each 20 ms, not all at once. The
period is cut into `slots`; a stream is visited in the first slot at or after its packets
fall due (its schedule's origin, modulo 20 ms), once per period. `slots=1` visits every
stream on one beat: every meeting's packets at the same moment, a receiver's worst case.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .scenario import CHUNK_MS

log = logging.getLogger(__name__)
_STATS_WINDOW = 200_000  # visits kept for percentiles (over ten minutes at 250 a second)
SLOTS = 5  # visits per 20 ms: a packet leaves at most 4 ms after it falls due


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PacerStats:
    ticks: int  # visits made (each to the streams of one slot)
    lateness_p50_ms: float  # how late each visit's last frame left, against the visit's schedule
    lateness_p99_ms: float
    lateness_max_ms: float
    busy_p50_ms: float  # time spent sending in one visit
    busy_p99_ms: float


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pacer:
    def __init__(self, tick_s: float = CHUNK_MS / 1000, slots: int = SLOTS) -> None:
        if slots < 1:
            raise ValueError("a pacer needs at least one slot")
        self.tick_s = tick_s
        self.slots = slots
        self._slot_s = tick_s / slots
        self._groups: list[dict[Ticking, None]] = [{} for _ in range(slots)]  # insertion-ordered sets
        self._slot_of: dict[Ticking, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lateness: deque[float] = deque(maxlen=_STATS_WINDOW)
        self._busy: deque[float] = deque(maxlen=_STATS_WINDOW)
        # Wall-clock seconds at which each visit began sending: a packet due at T left with
        # the first visit to its stream at or after T (what a benchmark needs to time a
        # packet from its send).
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

    def slot_for(self, origin: float) -> int:
        """The slot of a schedule starting at `origin` (loop time): the first visit at or
        after its packets fall due, every `tick_s` from `origin`."""
        return math.ceil((origin % self.tick_s) / self._slot_s - 1e-9) % self.slots

    def add(self, stream: Ticking, origin: float | None = None) -> None:
        """Pace `stream`, whose schedule starts at `origin` (loop time; now if not given)."""
        if origin is None:
            origin = asyncio.get_running_loop().time()
        self.remove(stream)
        slot = self._slot_of[stream] = self.slot_for(origin)
        self._groups[slot][stream] = None
        self._wake.set()

    def remove(self, stream: Ticking) -> None:
        slot = self._slot_of.pop(stream, None)
        if slot is not None:
            del self._groups[slot][stream]

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
        slot_s, slots, groups = self._slot_s, self.slots, self._groups
        j = math.ceil(loop.time() / slot_s)  # visit j is at j * slot_s, to slot j % slots
        while True:
            if not self._slot_of:
                self._wake.clear()
                await self._wake.wait()
                j = math.ceil(loop.time() / slot_s)
            while not groups[j % slots]:  # an empty slot is no reason to wake
                j += 1
            target = j * slot_s
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            group = groups[j % slots]
            j += 1
            if not group:  # emptied while asleep
                continue
            now = loop.time()
            self.tick_started_at.append(time.time())
            for stream in list(group):
                try:
                    stream.tick(now)
                except Exception:  # one broken stream must not stop the others
                    log.exception("stream tick failed; the stream stops being paced")
                    self.remove(stream)
            done = loop.time()
            self.ticks += 1
            self._lateness.append(max(0.0, done - target))
            self._busy.append(done - now)
            if done - target > self.tick_s:  # overran: skip whole periods, every slot keeps its turn
                j += int((done - target) / self.tick_s) * slots
