"""Every simulator fault against the real gateway: zero segments lost that the simulator
delivered while a socket was up, files aligned, other streams untouched."""

from __future__ import annotations

import wave

import pytest

from rtms_gateway.protocol.constants import MediaType, StatusCode
from rtms_gateway.simulator.faults import Fault, FaultKind, parse_fault, random_faults
from rtms_gateway.simulator.media import silence_chunk, tone_chunk

from .gateway_harness import GatewayWithSimulator

# Zoom keeps idle sockets alive with keep-alives; here every second, so that a socket
# silent for 2.5 s is a dead one.
ENV = dict(RTMS_MEDIA="audio,transcript", RTMS_RECONNECT_INITIAL_S="0.2", RTMS_RECONNECT_MAX_S="1",
           RTMS_SILENCE_S="2.5")
SIM = {"keepalive_interval": 1.0}
AUDIO = MediaType.AUDIO | MediaType.TRANSCRIPT


async def _check_meeting(run, tmp_path, handle, record):
    """Stored once, in order, exactly what was sent; the WAV holds, at each 20 ms, what
    was sent for that moment or silence."""
    assert record.outcome == "completed", record.summary_line()
    stored = await run.gateway.store.transcript(handle.script.owner_id)
    assert [s.text for s in stored] == [t.data for t in record.transcripts]
    (f,) = [f for f in await run.gateway.store.media_files(handle.script.owner_id) if f.kind == "audio"]
    with wave.open(str(tmp_path / f.path)) as w:
        pcm = w.readframes(w.getnframes())
    body = pcm[(record.t0_ms - f.origin_ms) * 32:]
    quiet = silence_chunk(16000, 1)
    for i in range(len(body) // 640):
        s = handle.script.speaker_at(20 * i)
        expected = tone_chunk(s.tone_hz, 16000, 1) if s else quiet
        assert body[640 * i: 640 * (i + 1)] in (expected, quiet), f"chunk {i} misplaced"


@pytest.mark.parametrize("fault", [
    "drop-signaling@1.5", "drop-media@1.5", "silent@1.5=4", "malformed@1.5", "truncated@1.5",
    "unknown-type@1.5", "duplicate@2.5", "interrupted-webhook@2.5", "move@1.5", "slow-reader@1.5=2",
])
async def test_the_gateway_rides_out_each_fault_and_loses_nothing_delivered(tmp_path, fault):
    plan = parse_fault(fault)
    async with GatewayWithSimulator(tmp_path, simulator=SIM, **ENV) as run:
        faulty = run.simulator.start_meeting(duration=6.0, media=AUDIO, faults=[plan])
        calm = run.simulator.start_meeting(duration=6.0, media=AUDIO, seed=1)
        faulty_record, calm_record = await faulty.wait(60), await calm.wait(60)
        await run.settle(30)
        assert faulty_record.faults == [str(plan)]
        await _check_meeting(run, tmp_path, faulty, faulty_record)
        await _check_meeting(run, tmp_path, calm, calm_record)
        metrics = run.gateway.manager.metrics()
    assert calm_record.interruptions == calm_record.media_interruptions == 0, "the other stream was untouched"
    if plan.kind in (FaultKind.MALFORMED, FaultKind.TRUNCATED):
        assert metrics["frames_rejected"] > 0  # counted and skipped
    if plan.kind is FaultKind.DUPLICATE:
        assert metrics["media_duplicates"] > 0  # the replayed audio was recognised
    if plan.kind in (FaultKind.DROP_SIGNALING, FaultKind.SILENT):
        assert faulty_record.interruptions >= 1 and metrics["reconnects"].get("lost", 0) >= 1
    if plan.kind is FaultKind.DROP_MEDIA:
        assert faulty_record.media_interruptions == 1 and not metrics["reconnects"]
    if plan.kind is FaultKind.MOVE:
        assert metrics["reconnects"] == {"moved": 1}


@pytest.mark.parametrize("status", [StatusCode.INVALID_SIGNATURE, StatusCode.INVALID_RTMS_STREAM_ID])
async def test_a_reconnect_refused_by_zoom_ends_the_stream_with_its_status(tmp_path, status):
    env = dict(ENV, RTMS_SIGNALING_WINDOW_S="5")
    fault = Fault(FaultKind.REJECT, 1.5, float(status))
    async with GatewayWithSimulator(tmp_path, simulator={**SIM, "signaling_reconnect_window": 3.0}, **env) as run:
        handle = run.simulator.start_meeting(duration=6.0, media=AUDIO, faults=[fault])
        calm = run.simulator.start_meeting(duration=6.0, media=AUDIO, seed=1)
        record, calm_record = await handle.wait(60), await calm.wait(60)
        await run.settle(30)
        stream = await run.gateway.store.stream(handle.script.rtms_stream_id)
        await _check_meeting(run, tmp_path, calm, calm_record)
    assert stream.state == "rejected" and stream.status_code == int(status)
    assert record.outcome == "stopped: the client did not reconnect in time"


def test_fault_specs_parse_and_random_draws_replay():
    assert parse_fault("silent@2.5=4") == Fault(FaultKind.SILENT, 2.5, 4.0)
    assert parse_fault("drop-media").at_s == 2.0
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("explode@1")
    with pytest.raises(ValueError, match="numbers"):
        parse_fault("silent@soon")
    assert random_faults(3, 1, 4, 30) == random_faults(3, 1, 4, 30) != random_faults(4, 1, 4, 30)
    assert all(f.kind is not FaultKind.REJECT for f in random_faults(1, 0, 50, 30))


async def test_random_faults_from_a_seed_lose_nothing(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator=SIM, **ENV) as run:
        handles = [run.simulator.start_meeting(duration=8.0, media=AUDIO, seed=i,
                                               faults=random_faults(7, i, 2, 8.0)) for i in range(3)]
        records = [await h.wait(90) for h in handles]
        await run.settle(30)
        for handle, record in zip(handles, records):
            await _check_meeting(run, tmp_path, handle, record)
    assert sum(len(r.faults) for r in records) == 6
