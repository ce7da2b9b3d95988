"""The pacer: one 20 ms tick for every stream, and a record of when each tick went out."""

from __future__ import annotations

import time

from rtms_gateway.simulator.pacer import Pacer

from .serve_process import eventually


class Counting:
    def __init__(self) -> None:
        self.ticks: list[float] = []

    def tick(self, now: float) -> None:
        self.ticks.append(now)


async def test_each_tick_is_recorded_in_wall_clock_time_and_a_reset_starts_the_record_over():
    pacer = Pacer(tick_s=0.005)
    stream = Counting()
    before = time.time()
    pacer.add(stream)
    pacer.start()
    try:
        assert await eventually(lambda: len(stream.ticks) >= 3, timeout=10)
        started = list(pacer.tick_started_at)
        assert len(started) >= 3 and started == sorted(started)
        assert before <= started[0] <= time.time()
        pacer.reset_stats()
        assert not pacer.tick_started_at and pacer.ticks == 0
        assert await eventually(lambda: len(pacer.tick_started_at) >= 2, timeout=10)
        assert pacer.tick_started_at[0] >= started[-1]
    finally:
        await pacer.stop()
