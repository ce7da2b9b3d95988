"""How late the event loop wakes: a task that sleeps `interval` again and again and notes
by how much each wake-up overshot. Whatever blocks the loop (disk I/O, a long callback)
shows as lag, so a benchmark runs it beside the load and reports p50/p99/max.

    monitor = LoopLagMonitor()
    monitor.start()
    ...  # the load
    print(monitor.stop().line())

Samples are bounded (the newest `max_samples` kept), so it can run for hours.

The gateway of a benchmark runs in a process of its own: run it through this file, which
starts a monitor on its event loop. SIGUSR1 starts the samples over (at the start of the
measured window), SIGUSR2 writes the stats so far to `<out.json>` (at its end):

    python bench/loop_lag.py <out.json> serve --port 8080   # `rtms-gateway serve --port 8080`
    os.kill(pid, signal.SIGUSR1); ...; os.kill(pid, signal.SIGUSR2)
    json.load(open(out))  # {"samples", "p50_ms", "p99_ms", "max_ms"}
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path


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

    def reset(self) -> None:
        self._lags.clear()

    def stats(self) -> LagStats:
        ordered = sorted(self._lags)
        return LagStats(len(ordered), 1000 * _percentile(ordered, 0.50), 1000 * _percentile(ordered, 0.99),
                        1000 * (ordered[-1] if ordered else 0.0))

    def stop(self) -> LagStats:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return self.stats()


class _MonitoredLoops(asyncio.DefaultEventLoopPolicy):
    """Every event loop made gets a monitor, and the two signals (see the docstring)."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.call_soon(self._watch, loop)
        return loop

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        monitor = LoopLagMonitor()
        monitor.start()
        loop.add_signal_handler(signal.SIGUSR1, monitor.reset)
        loop.add_signal_handler(signal.SIGUSR2, lambda: self._write(monitor.stats()))

    def _write(self, stats: LagStats) -> None:
        part = self.out.with_name(self.out.name + ".part")
        part.write_text(json.dumps(asdict(stats)))
        part.replace(self.out)  # a reader never sees half a file


def run_gateway_monitored(out: Path, args: list[str]) -> None:
    """`rtms-gateway <args>` in this process, its event loop monitored."""
    from rtms_gateway.cli import main

    asyncio.set_event_loop_policy(_MonitoredLoops(out))
    sys.argv = ["rtms-gateway", *args]
    main()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(f"usage: {sys.argv[0]} <out.json> <rtms-gateway arguments...>")
    run_gateway_monitored(Path(sys.argv[1]), sys.argv[2:])
