"""The long fuzz run: generated webhook deliveries and OpenAPI cases against a gateway
process over HTTP, then generated garbage frames on one stream's sockets next to a
healthy one, then meetings with generated hostile ids. Prints counts; any 5xx, crash,
loss on the healthy stream, or file outside the data directory fails the run.

    .venv/bin/python bench/fuzz.py [--webhooks 100000] [--openapi 2000] [--frames 100000]
                                   [--ids 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz.drivers import GatewayProcess, fuzz_ids, fuzz_openapi, fuzz_webhooks
from tests.gateway_harness import GatewayWithSimulator

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.faults import Fault, FaultKind


def http_part(webhooks: int, openapi: int, run_seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gateway = GatewayProcess(Path(tmp))
        try:
            t0 = time.perf_counter()
            hooks = fuzz_webhooks(gateway.base_url, webhooks, run_seed)
            t1 = time.perf_counter()
            cases = fuzz_openapi(gateway.base_url, openapi, run_seed)
            t2 = time.perf_counter()
            alive = gateway.alive()
        finally:
            code = gateway.stop()
    print(f"webhooks: {sum(hooks.values())} requests in {t1 - t0:.0f} s, statuses {dict(sorted(hooks.items()))}")
    print(f"openapi:  {sum(cases.values())} cases in {t2 - t1:.0f} s, statuses {dict(sorted(cases.items()))}")
    print(f"gateway alive after: {alive}; exit code on SIGTERM: {code}")
    if not alive or code != 0 or any(s >= 500 for s in (*hooks, *cases)):
        raise SystemExit("FAILED")


async def frames_part(frames: int) -> None:
    media = MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.CHAT
    duration = max(10.0, frames / 10_000 + 6)  # the fault sends 10,000 frames/s
    with tempfile.TemporaryDirectory() as tmp:
        async with GatewayWithSimulator(Path(tmp), RTMS_MEDIA="audio,transcript,chat",
                                        RTMS_RECONNECT_INITIAL_S="0.2", RTMS_LOG_LEVEL="ERROR") as run:
            fuzzed = run.simulator.start_meeting(duration=duration, media=media,
                                                 faults=[Fault(FaultKind.FUZZ, 1.0, float(frames))])
            calm = run.simulator.start_meeting(duration=duration, media=media, seed=1)
            fuzzed_record, calm_record = await fuzzed.wait(duration + 120), await calm.wait(duration + 120)
            await run.settle(60)
            stored = await run.gateway.store.transcript(calm.script.owner_id)
            metrics = run.gateway.manager.metrics()
    calm_ok = (calm_record.outcome == "completed"
               and [s.text for s in stored] == [t.data for t in calm_record.transcripts])
    print(f"frames:   {fuzzed_record.garbage_sent} garbage frames sent; gateway skipped {metrics['frames_rejected']} "
          f"as malformed (the rest decoded as well-formed messages of some type); fuzzed stream ended "
          f"'{fuzzed_record.outcome}'; healthy stream: {len(stored)}/{len(calm_record.transcripts)} "
          f"segments stored, outcome '{calm_record.outcome}'")
    if not calm_ok or fuzzed_record.garbage_sent < frames:
        raise SystemExit("FAILED")


async def ids_part(examples: int, run_seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        async with GatewayWithSimulator(data_dir, RTMS_MEDIA="audio", RTMS_LOG_LEVEL="ERROR") as run:
            outcomes = await fuzz_ids(run, data_dir, examples, run_seed)
    print(f"ids:      {outcomes['stored']} meetings with generated ids in {time.perf_counter() - t0:.0f} s: "
          "each one's audio stored inside the data directory, exactly as sent, and served; nothing outside it")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--openapi", type=int, default=2_000, help="cases per API operation")
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--ids", type=int, default=500, help="meetings with generated hostile ids")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.webhooks or args.openapi:
        http_part(max(args.webhooks, 1), max(args.openapi, 1), args.seed)
    if args.frames:
        asyncio.run(frames_part(args.frames))
    if args.ids:
        asyncio.run(ids_part(args.ids, args.seed))


if __name__ == "__main__":
    main()
