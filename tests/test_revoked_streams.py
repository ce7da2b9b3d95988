"""A stream Zoom revokes (stop reason 8), end to end: the real gateway against the
simulator over TLS on loopback, with audio written to files. The simulator ends the stream
with reason 8 (the terminate update on signaling, then `meeting.rtms_stopped`); the
gateway erases what it stored of the stream and answers 410 for its meeting. With
RTMS_ON_REVOKED=keep, nothing is erased."""

from __future__ import annotations

import logging
from urllib.parse import quote

from rtms_gateway.metrics import value_of
from rtms_gateway.protocol.constants import MediaType, StopReason

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually

MEDIA = MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.CHAT


async def _revoke_a_meeting(run):
    handle = run.simulator.start_meeting(duration=60.0, media=MEDIA)
    assert await handle.wait_streaming(15)
    gateway = run.gateway
    assert await eventually(lambda: value_of(gateway.metrics.segments) > 0
                            and value_of(gateway.metrics.audio_frames) > 0)
    await gateway.pipeline.flush()
    uuid = handle.script.owner_id
    assert await gateway.store.transcript(uuid)
    files = [run.gateway.settings.data_dir / f.path for f in gateway.pipeline.media.live(uuid)]
    assert files and all(f.exists() for f in files)
    handle.request_stop(StopReason.STREAM_REVOKED)
    record = await handle.wait(30)
    assert any(w.event == "meeting.rtms_stopped" and w.ok for w in record.webhooks)
    await run.settle()
    return handle, uuid, files


async def test_a_revoked_stream_is_erased_and_its_meeting_is_gone(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rtms_gateway")
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript,chat") as run:
        handle, uuid, files = await _revoke_a_meeting(run)
        gateway, stream_id = run.gateway, handle.script.rtms_stream_id
        assert gateway.revoked is not None
        assert await eventually(lambda: gateway.revoked.counters["streams_erased"] == 1)
        assert gateway.revoked.counters["streams_revoked"] == 1  # signaling and webhook: once

        assert await gateway.store.get_meeting(uuid) is None
        assert await gateway.store.transcript(uuid) == []
        assert await gateway.store.chat(uuid) == []
        assert await gateway.store.media_files(uuid) == []
        assert await gateway.store.feed(meeting_uuid=uuid) == []
        assert not any(f.exists() for f in files)

        async with run.http() as http:
            encoded = quote(uuid, safe="")
            for route in ("", "/transcript", "/chat", "/events", "/participants", "/media"):
                answer = await http.get(f"/api/meetings/{encoded}{route}")
                assert answer.status_code == 410, route
            revoked = answer.json()["detail"]["revoked"]
            assert [(r["rtms_stream_id"], r["stop_reason"]) for r in revoked] == [(stream_id, 8)]
            assert uuid not in (await http.get("/api/meetings")).text
            metrics = (await http.get("/metrics")).text
        assert "rtms_streams_erased_total 1.0" in metrics
        # A late start webhook for the stream reopens nothing.
        assert (await run.simulator.sender.send("meeting.rtms_started", handle.started_payload)).ok
        assert gateway.manager.state_of(stream_id) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("revoked by Zoom" in m and stream_id in m for m in warnings)
    assert any("erased" in m and stream_id in m for m in warnings)


async def test_keep_leaves_a_revoked_stream_as_it_was(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript,chat",
                                    RTMS_ON_REVOKED="keep") as run:
        _, uuid, files = await _revoke_a_meeting(run)
        gateway = run.gateway
        assert gateway.revoked is not None and gateway.revoked.counters["streams_revoked"] == 1
        await gateway.revoked.settled()
        assert gateway.revoked.counters["streams_erased"] == 0
        assert await gateway.store.transcript(uuid) and await gateway.store.media_files(uuid)
        assert all(f.exists() for f in files)
        meeting = await gateway.store.get_meeting(uuid)
        assert meeting is not None and meeting.stop_reason == StopReason.STREAM_REVOKED
        async with run.http() as http:
            assert (await http.get(f"/api/meetings/{quote(uuid, safe='')}")).status_code == 200


async def test_a_stopped_webhook_with_reason_8_erases_a_stream_still_held(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=60.0)
        assert await handle.wait_streaming(15)
        gateway = run.gateway
        assert await eventually(lambda: value_of(gateway.metrics.segments) > 0)
        payload = handle.script.stopped_payload(int(StopReason.STREAM_REVOKED))
        assert (await run.simulator.sender.send("meeting.rtms_stopped", payload)).ok
        assert gateway.revoked is not None
        assert await eventually(lambda: gateway.revoked.counters["streams_erased"] == 1)
        uuid = handle.script.owner_id
        assert await gateway.store.transcript(uuid) == []
        assert await gateway.store.get_meeting(uuid) is None
        handle.request_stop()
        await handle.wait(30)
