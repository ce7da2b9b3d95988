"""Zoom's protocol features beyond the common path, on the wire: a bare client on loopback
TLS against the simulator. Status 8 while the old signaling socket is still closing,
pause and resume, a revoked stream, video subscription only with data_opt 4."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from rtms_gateway.protocol.constants import (
    MediaType,
    SessionState,
    StatusCode,
    StopReason,
    StreamState,
)
from rtms_gateway.simulator.faults import Fault, FaultKind
from tests.test_simulator_lifecycle import RawStream

TIMEOUT = 15


async def signaling_handshake(raw: RawStream) -> tuple[Any, dict[str, Any]]:
    sig = await websockets.connect(raw.handle.server_urls, ssl=raw.sim.client_ssl_context())
    await sig.send(json.dumps({"msg_type": 1, **raw.ids}))
    return sig, json.loads(await asyncio.wait_for(sig.recv(), 5))


async def test_a_reconnection_while_the_old_signaling_socket_is_still_closing_gets_8_then_succeeds(start_simulator):
    sim = await start_simulator(signaling_linger_s=1.5)
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    raw = RawStream(sim, handle)
    await raw.connect()
    await raw.next_signaling(8)
    await raw.sig.close()
    sig, answer = await signaling_handshake(raw)  # at once: Zoom still holds the old one
    assert answer["status_code"] == StatusCode.DUPLICATE_SIGNAL_REQUEST
    assert "still closing" in answer["reason"]
    await sig.close()
    for _ in range(100):  # a client retries with a pause, as Zoom's library does
        await asyncio.sleep(0.1)
        sig, answer = await signaling_handshake(raw)
        if answer["status_code"] != StatusCode.DUPLICATE_SIGNAL_REQUEST:
            break
        await sig.close()
    assert answer["status_code"] == StatusCode.OK
    await sig.close()
    statuses = [h.status_code for h in handle.record.handshakes if h.socket == "signaling"]
    assert statuses[0] == 0 and statuses[-1] == 0 and StatusCode.DUPLICATE_SIGNAL_REQUEST in statuses
    handle.request_stop()


async def test_the_linger_fault_drops_signaling_and_the_first_reconnection_gets_8(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT,
                               faults=[Fault(FaultKind.LINGER, 0.2, 30.0)])
    raw = RawStream(sim, handle)
    await raw.connect()
    try:
        while True:  # until the fault drops the connection
            await asyncio.wait_for(raw.sig.recv(), TIMEOUT)
    except websockets.ConnectionClosed:
        pass
    sig, answer = await signaling_handshake(raw)
    assert answer["status_code"] == StatusCode.DUPLICATE_SIGNAL_REQUEST
    await sig.close()
    handle.request_stop()


async def test_a_pause_sends_paused_then_resumed(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT,
                               faults=[Fault(FaultKind.PAUSE, 0.2, 0.5)])
    raw = RawStream(sim, handle)
    await raw.connect()
    states = []
    while SessionState.RESUMED not in states:
        msg = await raw.next_signaling(9)
        states.append(msg["state"])
    assert states == [SessionState.STARTED, SessionState.PAUSED, SessionState.RESUMED]
    assert handle.record.pauses == 1
    handle.request_stop()


async def test_a_revoked_stream_terminates_with_reason_8(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT, faults=[Fault(FaultKind.REVOKE, 0.2)])
    raw = RawStream(sim, handle)
    await raw.connect()
    while True:
        msg = await raw.next_signaling(8)
        if msg["state"] == StreamState.TERMINATED:
            break
    assert msg["reason"] == StopReason.STREAM_REVOKED
    stopped = await raw.next_signaling(9)
    assert stopped["state"] == SessionState.STOPPED and stopped["stop_reason"] == StopReason.STREAM_REVOKED
    record = await handle.wait(TIMEOUT)
    assert record.stop_reason == StopReason.STREAM_REVOKED and record.outcome.startswith("revoked")


async def _video_stream(sim: Any, handle: Any, data_opt: int) -> RawStream:
    raw = RawStream(sim, handle)
    ctx = sim.client_ssl_context()
    raw.sig = await websockets.connect(handle.server_urls, ssl=ctx)
    await raw.sig.send(json.dumps({"msg_type": 1, **raw.ids}))
    urls = json.loads(await raw.sig.recv())["media_server"]["server_urls"]
    raw.media = await websockets.connect(urls["video"], ssl=ctx)
    await raw.media.send(json.dumps({"msg_type": 3, "media_type": 2, **raw.ids,
                                     "media_params": {"video": {"data_opt": data_opt}}}))
    assert json.loads(await raw.media.recv())["status_code"] == 0
    await raw.sig.send(json.dumps({"msg_type": 7, "rtms_stream_id": raw.ids["rtms_stream_id"]}))
    await raw.next_signaling(8)
    return raw


async def test_video_subscription_needs_data_opt_4(start_simulator):
    sim = await start_simulator()
    active = sim.start_meeting(duration=30, media=MediaType.VIDEO, seed=1)
    raw = await _video_stream(sim, active, 3)
    await raw.sig.send(json.dumps({"msg_type": 28, "user_id": 16778240, "subscribe": True, "timestamp": 1}))
    answer = await raw.next_signaling(29)
    assert answer["status_code"] == StatusCode.INVALID_MEDIA_VIDEO_DATA_OPT and answer["user_id"] == 16778240

    individual = sim.start_meeting(duration=30, media=MediaType.VIDEO, seed=2)
    raw = await _video_stream(sim, individual, 4)
    user = individual.script.participants[1].user_id
    await raw.sig.send(json.dumps({"msg_type": 28, "user_id": user, "subscribe": True, "timestamp": 1}))
    answer = await raw.next_signaling(29)
    assert answer["status_code"] == StatusCode.OK
    while True:  # that participant's video, and only theirs
        frame = json.loads(await asyncio.wait_for(raw.media.recv(), TIMEOUT))
        if frame["msg_type"] == 15:
            break
    assert frame["content"]["user_id"] == user
    active.request_stop()
    individual.request_stop()


async def test_server_urls_can_list_a_refusing_url_first_and_the_next_one_answers(start_simulator):
    sim = await start_simulator(dead_first_url=True)
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    urls = handle.started_payload["server_urls"].split(",")
    assert len(urls) == 2 and urls[1] == handle.signaling_url and urls[0] != urls[1]
    ctx = sim.client_ssl_context()
    try:
        await websockets.connect(urls[0], ssl=ctx, open_timeout=5)
        raise AssertionError("the first URL should refuse")
    except OSError:
        pass  # refused: fail over to the next
    raw = RawStream(sim, handle)
    sig = await websockets.connect(urls[1], ssl=ctx)
    await sig.send(json.dumps({"msg_type": 1, **raw.ids}))
    assert json.loads(await asyncio.wait_for(sig.recv(), 5))["status_code"] == StatusCode.OK
    await sig.close()
    single = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT, dead_first_url=False)
    assert single.started_payload["server_urls"] == single.signaling_url
    handle.request_stop()
    single.request_stop()
