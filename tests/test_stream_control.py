"""Stream control against the simulator (TLS on loopback, the real gateway): closing a
stream from the API (21 -> 22, the stream ends with reason 20), subscribing to one
participant's video (28 -> 29, Zoom's status reported), and RTMS_VIDEO_STREAM=individual
following the active speaker or a named participant by itself."""

from __future__ import annotations

import asyncio
import sys

import httpx

from rtms_gateway.metrics import value_of
from rtms_gateway.protocol.constants import MediaType, StatusCode, StopReason
from rtms_gateway.simulator import build_meeting

from .gateway_harness import API_KEY, GatewayWithSimulator
from .serve_process import clean_env, eventually

VIDEO = MediaType.VIDEO | MediaType.TRANSCRIPT


async def test_close_from_the_api_ends_the_stream_with_reason_20(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=60.0)
        assert await handle.wait_streaming(15)
        stream_id = handle.script.rtms_stream_id
        assert await eventually(lambda: run.gateway.manager.state_of(stream_id) is not None
                                and run.gateway.manager.state_of(stream_id).value == "ready")
        async with run.http() as http:
            answer = await http.post(f"/api/streams/{stream_id}/close")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"rtms_stream_id": stream_id, "status_code": 0,
                                     "status": "OK", "reason": "OK", "answered": True}
            record = await handle.wait(30)
            await run.settle()
            assert record.close_requested
            stored = await run.gateway.store.stream(stream_id)
            assert stored.state == "stopped"
            assert stored.stop_reason == StopReason.RECEIVER_REQUEST_CLOSE
            # Ended: the gateway holds it no more.
            assert (await http.post(f"/api/streams/{stream_id}/close")).status_code == 404
            metrics = (await http.get("/metrics")).text
        assert "rtms_stream_close_requests_total 1.0" in metrics
        assert run.gateway.manager.state_of(stream_id) is None


async def test_video_subscription_reports_zooms_status(tmp_path):
    # Individual video; the participant to follow never joins, so only the API asks.
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="video,transcript",
                                    RTMS_VIDEO_STREAM="individual",
                                    RTMS_VIDEO_FOLLOW="nobody-by-this-name") as run:
        handle = run.simulator.start_meeting(duration=60.0, media=VIDEO)
        assert await handle.wait_streaming(15)
        stream_id = handle.script.rtms_stream_id
        user = handle.script.participants[1].user_id
        assert await eventually(lambda: run.gateway.manager.state_of(stream_id) is not None
                                and run.gateway.manager.state_of(stream_id).value == "ready")
        async with run.http() as http:
            url = f"/api/streams/{stream_id}/video"
            first = await http.post(url, json={"user_id": user, "subscribe": True})
            assert first.status_code == 200, first.text
            assert first.json() == {"rtms_stream_id": stream_id, "user_id": user,
                                         "subscribe": True, "status_code": 0, "status": "OK",
                                         "reason": "", "answered": True}
            assert await eventually(lambda: value_of(run.gateway.metrics.video_frames) > 0)
            again = (await http.post(url, json={"user_id": user, "subscribe": True})).json()
            assert again["status_code"] == StatusCode.DUPLICATE_VIDEO_SUBSCRIPTION
            off = (await http.post(url, json={"user_id": user, "subscribe": False})).json()
            assert off["status_code"] == 0 and off["subscribe"] is False
            assert (await http.post("/api/streams/no-such-stream/video",
                                    json={"user_id": user})).status_code == 404
            assert (await http.post(url, json={"user_id": -1})).status_code == 422
        assert handle.stream.session.video_user is None
        handle.request_stop()
        await handle.wait(30)


async def test_stream_routes_need_an_admin_key(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        async with run.http() as http:
            made = await http.post("/api/keys", json={"name": "reader", "scope": "read"})
            assert made.status_code == 201, made.text
            reader = {"Authorization": f"Bearer {made.json()['key']}"}
            assert (await http.post("/api/streams/s/close", headers=reader)).status_code == 403
        async with httpx.AsyncClient(base_url=run.base_url) as anonymous:
            assert (await anonymous.post("/api/streams/s/close")).status_code == 401


async def test_individual_video_follows_the_active_speaker(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="video,transcript",
                                    RTMS_VIDEO_STREAM="individual") as run:
        handle = run.simulator.start_meeting(duration=60.0, media=VIDEO)
        assert await handle.wait_streaming(15)
        speakers = {u.speaker.user_id for u in handle.script.utterances}
        assert await eventually(lambda: handle.stream.session.video_user in speakers)
        assert await eventually(lambda: value_of(run.gateway.metrics.video_frames) > 0)
        handle.request_stop()
        await handle.wait(30)


async def test_individual_video_follows_the_participant_named(tmp_path):
    script = build_meeting(3, 0, duration_s=60.0, offered=VIDEO)
    followed = script.participants[0]  # here from the start; not the first to speak
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="video,transcript",
                                    RTMS_VIDEO_STREAM="individual",
                                    RTMS_VIDEO_FOLLOW=followed.user_name) as run:
        handle = run.simulator.start_meeting(script, media=VIDEO)
        assert await handle.wait_streaming(15)
        assert await eventually(lambda: handle.stream.session.video_user == followed.user_id)
        assert await eventually(lambda: value_of(run.gateway.metrics.video_frames) > 0)
        # Speaker changes come and go; the gateway asked once, for the participant named.
        uuid = handle.script.owner_id

        async def three_speaker_changes() -> bool:
            await run.gateway.pipeline.flush()
            return sum(e.event_type == 2 for e in await run.gateway.store.timeline(uuid)) >= 3

        assert await eventually(three_speaker_changes, timeout=30)
        assert handle.stream.session.video_user == followed.user_id
        async with run.http() as http:
            assert "rtms_video_subscription_requests_total 1.0" in (await http.get("/metrics")).text
        handle.request_stop()
        await handle.wait(30)


async def _cli(*args: str, cwd) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtms_gateway", *args, cwd=cwd, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_streams_close_from_the_command_line(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=60.0)
        assert await handle.wait_streaming(15)
        stream_id = handle.script.rtms_stream_id
        assert await eventually(lambda: run.gateway.manager.state_of(stream_id) is not None
                                and run.gateway.manager.state_of(stream_id).value == "ready")
        code, out, _ = await _cli("streams", "close", stream_id, "--url", run.base_url,
                                  "--key", API_KEY, cwd=tmp_path)
        assert code == 0 and "Zoom answered 0 OK" in out
        await handle.wait(30)
        await run.settle()
        stored = await run.gateway.store.stream(stream_id)
        assert stored.stop_reason == StopReason.RECEIVER_REQUEST_CLOSE
        code, _, err = await _cli("streams", "close", stream_id, "--url", run.base_url,
                                  "--key", API_KEY, cwd=tmp_path)
        assert code == 1 and "404" in err
