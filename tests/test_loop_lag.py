"""The event-loop lag monitor sees a blocked loop, and the gateway shows it in /metrics."""

from __future__ import annotations

import asyncio
import time

from rtms_gateway.gateway.loop_lag import LoopLagMonitor
from rtms_gateway.metrics import GatewayMetrics, render_metrics

from .serve_process import eventually


async def test_a_loop_blocked_for_50_ms_shows_at_least_40_ms_of_lag():
    seen: list[float] = []
    task = asyncio.create_task(LoopLagMonitor(seen.append, interval=0.01).run())
    try:
        assert await eventually(lambda: len(seen) >= 1, step=0.001)
        # The monitor is asleep now: nothing can wake it before the block ends.
        before = len(seen)
        time.sleep(0.05)  # blocking the loop is what is measured
        assert await eventually(lambda: len(seen) > before, step=0.001)
    finally:
        task.cancel()
    assert max(seen) >= 0.04
    assert min(seen) >= 0.0


async def test_the_lag_is_a_histogram_in_the_gateways_metrics():
    metrics = GatewayMetrics.create()
    metrics.event_loop_lag.observe(0.0042)
    text = render_metrics(metrics).decode()
    assert 'rtms_event_loop_lag_seconds_bucket{le="0.004"} 0.0' in text
    assert 'rtms_event_loop_lag_seconds_bucket{le="0.005"} 1.0' in text
    assert "rtms_event_loop_lag_seconds_count 1.0" in text
