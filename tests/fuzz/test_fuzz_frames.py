"""Generated garbage frames on one stream's sockets (the simulator's `fuzz` fault): the
gateway counts and skips them, and the stream next to it loses nothing. The long run is
`bench/fuzz.py`; `RTMS_FUZZ_FRAMES` scales this one."""

from __future__ import annotations

import os

from rtms_gateway.metrics import value_of
from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.faults import Fault, FaultKind

from ..gateway_harness import GatewayWithSimulator

FRAMES = int(os.environ.get("RTMS_FUZZ_FRAMES", "3000"))
MEDIA = MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.CHAT


async def test_garbage_frames_are_counted_and_skipped_and_touch_no_other_stream(tmp_path):
    env = dict(RTMS_MEDIA="audio,transcript,chat", RTMS_RECONNECT_INITIAL_S="0.2")
    async with GatewayWithSimulator(tmp_path, **env) as run:
        fuzzed = run.simulator.start_meeting(duration=6.0, media=MEDIA,
                                             faults=[Fault(FaultKind.FUZZ, 1.0, float(FRAMES))])
        calm = run.simulator.start_meeting(duration=6.0, media=MEDIA, seed=1)
        fuzzed_record, calm_record = await fuzzed.wait(120), await calm.wait(120)
        await run.settle(60)
        stored = await run.gateway.store.transcript(calm.script.owner_id)
        chats = await run.gateway.store.chat(calm.script.owner_id)
        frames_rejected = value_of(run.gateway.metrics.frames_rejected)
        async with run.http() as http:
            health = await http.get("/healthz")
    assert fuzzed_record.garbage_sent == FRAMES
    assert frames_rejected > 0  # counted and skipped, never fatal
    assert health.status_code == 200
    assert calm_record.outcome == "completed" and calm_record.interruptions == 0
    assert [s.text for s in stored] == [t.data for t in calm_record.transcripts]
    assert len(chats) == calm_record.sent.chat
