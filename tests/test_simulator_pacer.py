"""The pacer: one 20 ms tick for every stream, and a record of when each tick went out."""

from __future__ import annotations

import time
from itertools import pairwise

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


class Visits:
    """Streams that note, in one shared list, who was visited and when."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []

    def stream(self, name: str) -> Named:
        return Named(name, self.log)


class Named:
    def __init__(self, name: str, log: list[tuple[str, float]]) -> None:
        self.name, self.log = name, log

    def tick(self, now: float) -> None:
        self.log.append((self.name, now))


def test_a_stream_gets_the_first_slot_at_or_after_its_packets_fall_due():
    pacer = Pacer(tick_s=0.02, slots=5)  # visits 4 ms apart
    assert pacer.slot_for(0.0) == 0  # due on the period's first visit
    assert pacer.slot_for(0.0005) == 1
    assert pacer.slot_for(0.004) == 1
    assert pacer.slot_for(0.0045) == 2
    assert pacer.slot_for(0.0195) == 0  # after the last visit: the next period's first
    assert pacer.slot_for(100.0105) == 3  # only the phase counts
    assert {Pacer(slots=1).slot_for(x / 1000) for x in range(20)} == {0}


async def test_streams_on_different_beats_take_turns_each_visited_once_per_period():
    pacer, visits = Pacer(tick_s=0.05, slots=5), Visits()  # visits 10 ms apart
    a, b = visits.stream("a"), visits.stream("b")
    pacer.add(a, origin=0.031)  # slot 4, then moved: a stream is in one slot only
    pacer.add(a, origin=0.001)  # slot 1
    pacer.add(b, origin=0.021)  # slot 3
    pacer.start()
    try:
        assert await eventually(lambda: len(visits.log) >= 8, timeout=10)
    finally:
        await pacer.stop()
    names = [name for name, _ in visits.log]
    assert all(x != y for x, y in pairwise(names)), names  # turns, never twice in a row
    times = [now for _, now in visits.log]
    assert all(x < y for x, y in pairwise(times))  # one at a time, never together


async def test_with_one_slot_every_stream_is_visited_at_the_same_moment():
    pacer, visits = Pacer(tick_s=0.01, slots=1), Visits()
    pacer.add(visits.stream("a"), origin=0.001)
    pacer.add(visits.stream("b"), origin=0.006)
    pacer.start()
    try:
        assert await eventually(lambda: len(visits.log) >= 6, timeout=10)
    finally:
        await pacer.stop()
    pairs = [visits.log[i:i + 2] for i in range(0, len(visits.log) - 1, 2)]
    assert all({n for n, _ in pair} == {"a", "b"} and pair[0][1] == pair[1][1] for pair in pairs)


async def test_a_stream_removed_is_not_visited_again():
    pacer, visits = Pacer(tick_s=0.01, slots=2), Visits()
    a, b = visits.stream("a"), visits.stream("b")
    pacer.add(a, origin=0.0)
    pacer.add(b, origin=0.005)
    pacer.start()
    try:
        assert await eventually(lambda: {"a", "b"} <= {n for n, _ in visits.log}, timeout=10)
        pacer.remove(a)
        seen = len(visits.log)
        assert await eventually(lambda: sum(n == "b" for n, _ in visits.log[seen:]) >= 3, timeout=10)
        assert all(n == "b" for n, _ in visits.log[seen:])
    finally:
        await pacer.stop()
