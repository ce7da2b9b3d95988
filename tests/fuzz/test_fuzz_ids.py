"""Meetings with generated hostile ids (meeting UUID and stream id) through the real
gateway from the real simulator: nothing lands outside the data directory, and each one's
audio is stored and served. The long run is `bench/fuzz.py --ids N`; `RTMS_FUZZ_IDS`
scales this one."""

from __future__ import annotations

import os

from ..gateway_harness import GatewayWithSimulator
from .drivers import fuzz_ids

EXAMPLES = int(os.environ.get("RTMS_FUZZ_IDS", "12"))


async def test_generated_ids_stay_inside_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    async with GatewayWithSimulator(data_dir, RTMS_MEDIA="audio") as run:
        outcomes = await fuzz_ids(run, data_dir, EXAMPLES)
    assert outcomes["stored"] >= EXAMPLES
