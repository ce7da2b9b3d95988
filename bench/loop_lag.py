"""How late the event loop wakes: a task that sleeps `interval` again and again and notes
by how much each wake-up overshot. Whatever blocks the loop (disk I/O, a long callback)
shows as lag, so a benchmark runs it beside the load and reports p50/p99/max.

    monitor = LoopLagMonitor()
    monitor.start()
    ...  # the load
    print(monitor.stop().line())

Samples are bounded (the newest `max_samples` kept), so it can run for hours.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LagStats:
    """Lag of the loop's wake-ups, in milliseconds."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (f"event-loop lag over {self.samples} wake-ups: p50 {self.p50_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoopLagMonitor:
    def __init__(self, interval: float = 0.01, max_samples: int = 100_000) -> None:
        self.interval = interval
        self._lags: deque[float] = deque(maxlen=max_samples)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def _run(self) -> None:
        clock, interval, lags = time.perf_counter, self.interval, self._lags
        while True:
            asked = clock()
            await asyncio.sleep(interval)
            lags.append(max(0.0, clock() - asked - interval))

    def stats(self) -> LagStats:
        ordered = sorted(self._lags)
        return LagStats(len(ordered), 1000 * _percentile(ordered, 0.50), 1000 * _percentile(ordered, 0.99),
                        1000 * (ordered[-1] if ordered else 0.0))

    def stop(self) -> LagStats:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return self.stats()


async def _demo(seconds: float) -> None:
    monitor = LoopLagMonitor()
    monitor.start()
    await asyncio.sleep(seconds)
    print(monitor.stop().line())


if __name__ == "__main__":
    import sys

    asyncio.run(_demo(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))
