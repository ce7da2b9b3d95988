"""The benchmark's lag monitor sees a blocked event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import sys
import time
from pathlib import Path

from .serve_process import _healthy, eventually, free_port, serve_env, simulator_for

_PATH = Path(__file__).parent.parent / "bench" / "loop_lag.py"
_spec = importlib.util.spec_from_file_location("loop_lag", _PATH)
assert _spec is not None and _spec.loader is not None
loop_lag = importlib.util.module_from_spec(_spec)
sys.modules["loop_lag"] = loop_lag
_spec.loader.exec_module(loop_lag)


async def test_a_loop_blocked_for_50_ms_shows_at_least_40_ms_of_lag():
    monitor = loop_lag.LoopLagMonitor(interval=0.01)
    monitor.start()
    try:
        assert await eventually(lambda: monitor.stats().samples >= 1, step=0.001)
        # The monitor is asleep now: nothing can wake it before the block ends.
        before = monitor.stats().samples
        time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is what is measured
        assert await eventually(lambda: monitor.stats().samples > before, step=0.001)
    finally:
        stats = monitor.stop()
    assert stats.max_ms >= 40.0
    assert stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert "p99" in stats.line()


async def test_no_samples_read_as_zero():
    stats = loop_lag.LoopLagMonitor().stats()
    assert (stats.samples, stats.p50_ms, stats.p99_ms, stats.max_ms) == (0, 0.0, 0.0, 0.0)


async def test_a_gateway_run_through_the_monitor_reports_its_lag_on_a_signal(tmp_path):
    port = free_port()
    sim = await simulator_for(port)
    out = tmp_path / "lag.json"
    try:
        with open(tmp_path / "gateway.log", "ab") as stderr:  # noqa: ASYNC230 - the child's, once
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(_PATH), str(out), "serve", "--port", str(port), cwd=tmp_path,
                env=serve_env(sim, tmp_path), stderr=stderr)
        try:
            assert await eventually(lambda: _healthy(port)), (tmp_path / "gateway.log").read_text()[-2000:]
            proc.send_signal(signal.SIGUSR1)
            proc.send_signal(signal.SIGUSR2)
            assert await eventually(out.exists)
            stats = json.loads(out.read_text())
            assert set(stats) == {"samples", "p50_ms", "p99_ms", "max_ms"}
            assert 0 <= stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    finally:
        await sim.stop()
