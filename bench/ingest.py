"""Ingest benchmark: N simulated meetings (transcript + chat) against a gateway running in
its own process (`rtms-gateway serve`, SQLite store).

Prints, per N: segments sent and committed (loss), segments/s, latency from the
simulator's send (the utterance's end, when Zoom sends it) to the row being visible in the
database (p50/p99, polled every 10 ms), and gateway CPU per segment.

usage: python bench/ingest.py [--meetings 10,50,100] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import CLIENT_ID, CLIENT_SECRET, TOKEN, free_port, simulator_for, wait_http

from rtms_gateway.protocol.constants import MediaType, Product
from rtms_gateway.simulator import build_meeting


class RowWatcher:
    """Notes when each committed segment first becomes visible to another process."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.last_id = 0
        self.latencies_ms: list[int] = []

    def poll(self) -> None:
        if not self.db.exists():
            return
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
        try:
            rows = conn.execute("select id, end_time from transcript_segments where id > ? order by id",
                                (self.last_id,)).fetchall()
        except sqlite3.OperationalError:
            return
        finally:
            conn.close()
        now = int(time.time() * 1000)
        for row_id, end_time in rows:
            self.last_id = max(self.last_id, row_id)
            if end_time:
                self.latencies_ms.append(now - end_time)


async def run_once(n: int, duration: float, workdir: Path) -> dict[str, float]:
    port = free_port()
    sim, data, ca = await simulator_for(workdir, f"n{n}", port)
    env = {**os.environ, "ZOOM_CLIENT_ID": CLIENT_ID, "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
           "ZOOM_SECRET_TOKEN": TOKEN, "RTMS_DATA_DIR": str(data), "RTMS_CA_FILE": str(ca),
           "RTMS_LOG_LEVEL": "WARNING", "RTMS_DATABASE_URL": ""}
    gateway = subprocess.Popen([sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port)],
                               env=env, cwd=data)
    watcher = RowWatcher(data / "rtms.sqlite3")
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        proc = psutil.Process(gateway.pid)
        cpu0 = proc.cpu_times()
        t0 = time.monotonic()
        products = [Product.MEETING, Product.WEBINAR, Product.SESSION, Product.CONTACT_CENTER]
        handles = [sim.start_meeting(build_meeting(11, i, product=products[i % 4], duration_s=duration,
                                                   offered=MediaType.TRANSCRIPT | MediaType.CHAT))
                   for i in range(n)]
        done = asyncio.gather(*(h.wait(duration + 120) for h in handles))
        while not done.done():
            watcher.poll()
            await asyncio.sleep(0.01)
        records = done.result()
        sent = sum(r.sent.transcripts for r in records)
        settle_end = time.monotonic() + 10
        while len(watcher.latencies_ms) < sent and time.monotonic() < settle_end:
            watcher.poll()
            await asyncio.sleep(0.01)
        wall = time.monotonic() - t0
        cpu1 = proc.cpu_times()
        cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        lat = sorted(watcher.latencies_ms) or [0]
        return {
            "meetings": n,
            "completed": sum(r.outcome == "completed" for r in records),
            "segments_sent": sent,
            "segments_committed": len(watcher.latencies_ms),
            "lost": sent - len(watcher.latencies_ms),
            "segments_per_s": len(watcher.latencies_ms) / wall,
            "p50_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "gateway_cpu_pct": 100 * cpu_s / wall,
            "cpu_ms_per_segment": 1000 * cpu_s / max(1, len(watcher.latencies_ms)),
        }
    finally:
        gateway.terminate()
        gateway.wait(20)
        await sim.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meetings", default="10,50,100,200")
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'N':>5} {'done':>5} {'sent':>7} {'stored':>7} {'lost':>5} {'seg/s':>7} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'gw CPU%':>8} {'CPU ms/seg':>10}")
        for n in (int(x) for x in args.meetings.split(",")):
            r = await run_once(n, args.duration, Path(tmp))
            print(f"{r['meetings']:>5} {r['completed']:>5} {r['segments_sent']:>7} {r['segments_committed']:>7} "
                  f"{r['lost']:>5} {r['segments_per_s']:>7.1f} {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f} "
                  f"{r['gateway_cpu_pct']:>8.1f} {r['cpu_ms_per_segment']:>10.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
