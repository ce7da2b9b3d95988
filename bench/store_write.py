"""Store write throughput: batches of transcript segments through `Store.write_batch`.

Each batch is one transaction. Printed: rows a second, and per transaction the process's
CPU (user + system) and the bytes it handed to `write`/`pwrite` (on SQLite, the WAL's
pages: what a commit costs the disk), so small transactions (the gateway's under a steady
trickle of segments) can be compared with large ones. `--meetings M` spreads the rows
over M meetings, as a gateway's are.

usage: python bench/store_write.py [--url sqlite:///tmp/bench.sqlite3] [--batch 1000] [--batches 20] [--meetings 1]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid

from rtms_gateway.sinks.records import TranscriptSegment
from rtms_gateway.sinks.store import Store


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bytes_written() -> int:
    """Bytes this process passed to write system calls so far (Linux's `wchar`)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--meetings", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(args.url or f"sqlite:///{tmp}/bench.sqlite3")
        try:
            run = uuid.uuid4().hex[:8]  # rows of earlier runs must not count as duplicates

            def segment(b: int, i: int) -> TranscriptSegment:
                m = (b * args.batch + i) % args.meetings
                return TranscriptSegment(meeting_uuid=f"bench-{run}-{m}", rtms_stream_id=f"s{m}", user_id=i % 7,
                                         user_name="Ann",
                                         text=f"{run} segment {b}-{i} with a sentence of ordinary length",
                                         timestamp=b * 10**6 + i, start_time=b * 10**6 + i,
                                         end_time=b * 10**6 + i + 900, received_at_ms=0)

            n = 0
            start, cpu0, written0 = time.perf_counter(), cpu_seconds(), bytes_written()
            for b in range(args.batches):
                n += await store.write_batch(segments=[segment(b, i) for i in range(args.batch)])
            elapsed, cpu, written = (time.perf_counter() - start, cpu_seconds() - cpu0,
                                     bytes_written() - written0)
            print(f"{store.engine.dialect.name}: {n} rows in {args.batches} batches of {args.batch} "
                  f"over {args.meetings} meeting(s): {n / elapsed:,.0f} rows/s; per transaction "
                  f"{1e6 * cpu / args.batches:,.0f} µs CPU and {written / args.batches / 1024:,.1f} KiB written; "
                  f"{1e6 * cpu / max(n, 1):,.0f} µs CPU per row")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
