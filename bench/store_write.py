"""Store write throughput: batches of transcript segments through `Store.write_batch`.

usage: python bench/store_write.py [--url sqlite:///tmp/bench.sqlite3] [--batch 1000] [--batches 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid

from rtms_gateway.sinks.records import TranscriptSegment
from rtms_gateway.sinks.store import Store


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(args.url or f"sqlite:///{tmp}/bench.sqlite3")
        try:
            n = 0
            run = uuid.uuid4().hex[:8]  # rows of earlier runs must not count as duplicates
            start = time.perf_counter()
            for b in range(args.batches):
                rows = [TranscriptSegment(meeting_uuid="bench", rtms_stream_id="s", user_id=i % 7, user_name="Ann",
                                          text=f"{run} segment {b}-{i} with a sentence of ordinary length",
                                          timestamp=b * 10**6 + i, start_time=b * 10**6 + i,
                                          end_time=b * 10**6 + i + 900, received_at_ms=0)
                        for i in range(args.batch)]
                n += await store.write_batch(segments=rows)
            elapsed = time.perf_counter() - start
            print(f"{store.engine.dialect.name}: {n} rows in {args.batches} batches of {args.batch}: "
                  f"{n / elapsed:,.0f} rows/s")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
