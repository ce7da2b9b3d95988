"""How late the event loop runs: a timer that asks to wake every `interval` seconds and
records by how much it overslept. Everything per frame shares this loop, so its lag is
the delay every socket, timer and write saw at that moment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Seconds: fine below 10 ms, where a healthy loop lives, coarse above.
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
               0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class LoopLagMonitor:
    """Feeds `observe(seconds late)` once per wake-up until cancelled."""

    def __init__(self, observe: Callable[[float], None], interval: float = 0.01,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._observe = observe
        self._interval = interval
        self._clock = clock

    async def run(self) -> None:
        while True:
            asked = self._clock() + self._interval
            await asyncio.sleep(self._interval)
            self._observe(max(self._clock() - asked, 0.0))
