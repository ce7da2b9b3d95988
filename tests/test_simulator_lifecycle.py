"""A stream's life: ready, keep-alives, interruptions, reconnection, stop (by time, by the
client's STREAM_CLOSE_REQ, by the host), and clients that never come."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from rtms_gateway.protocol.constants import MediaType, StatusCode
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.peers.minimal_client import MediaRequest, WebhookReceiver, handshake_signature
from tests.serve_process import eventually

TIMEOUT = 15


class RawStream:
    """Hand-driven sockets of one stream, for paths the minimal client does not take."""

    def __init__(self, sim: Any, handle: Any) -> None:
        self.sim, self.handle = sim, handle
        s = handle.script
        self.ids = {"meeting_uuid": s.owner_id, "rtms_stream_id": s.rtms_stream_id,
                    "signature": handshake_signature(CLIENT_ID, CLIENT_SECRET, s.owner_id, s.rtms_stream_id)}
        self.sig: Any = None
        self.media: Any = None

    async def connect(self, media_type: int = 8) -> None:
        ctx = self.sim.client_ssl_context()
        self.sig = await websockets.connect(self.handle.server_urls, ssl=ctx)
        await self.sig.send(json.dumps({"msg_type": 1, **self.ids}))
        urls = json.loads(await self.sig.recv())["media_server"]["server_urls"]
        self.media = await websockets.connect(urls["all"], ssl=ctx)
        await self.media.send(json.dumps({"msg_type": 3, "media_type": media_type, **self.ids}))
        assert json.loads(await self.media.recv())["status_code"] == 0
        await self.sig.send(json.dumps({"msg_type": 7, "rtms_stream_id": self.ids["rtms_stream_id"]}))

    async def next_signaling(self, msg_type: int) -> dict[str, Any]:
        while True:
            msg = json.loads(await asyncio.wait_for(self.sig.recv(), 5))
            if msg["msg_type"] == 12:
                await self.sig.send(json.dumps({"msg_type": 13, "timestamp": msg["timestamp"]}))
            elif msg["msg_type"] == msg_type:
                return msg


async def _finish(handle: Any, client: Any = None) -> tuple[Any, Any]:
    record = await handle.wait(TIMEOUT)
    log = None
    if client is not None:
        log = client.streams.get(handle.script.rtms_stream_id)
        if log is not None:
            await asyncio.wait_for(log.done.wait(), TIMEOUT)
    return record, log


async def test_keepalives_sent_when_idle_and_answered(sim_and_client):
    sim, client = await sim_and_client(sim={"keepalive_interval": 0.2})
    handle = sim.start_meeting(duration=1.5, media=MediaType.TRANSCRIPT)
    record, log = await _finish(handle, client)
    assert record.keepalives_sent["signaling"] >= 1  # events count as traffic: fewer than 1.5/0.2
    assert record.keepalives_answered["signaling"] >= record.keepalives_sent["signaling"] - 1
    assert record.keepalives_answered["transcript"] >= 1  # an idle media socket is kept alive too
    assert log.keepalives_answered["signaling"] == record.keepalives_answered["signaling"]
    assert record.keepalive_bad_echoes == 0 and record.interruptions == 0
    assert record.outcome == "completed"


async def test_busy_audio_socket_gets_no_keepalives(sim_and_client):
    # An interval far above the 20 ms packet spacing: a loaded machine's pauses do not make
    # the audio socket look idle; signaling, with nothing to carry, gets keep-alives.
    sim, client = await sim_and_client(sim={"keepalive_interval": 0.5}, media=[MediaRequest("audio", 1)],
                                       events=())
    handle = sim.start_meeting(duration=2.0, media=MediaType.AUDIO)
    record, _ = await _finish(handle, client)
    assert record.keepalives_sent["audio"] == 0 and record.keepalives_sent["signaling"] >= 1
    assert record.keepalives_answered["signaling"] >= record.keepalives_sent["signaling"] - 1


async def test_unanswered_keepalives_interrupt_then_stop_24(sim_and_client):
    sim, client = await sim_and_client(sim={"keepalive_interval": 0.1, "signaling_reconnect_window": 0.5},
                                       answer_keepalives=False)
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    record, log = await _finish(handle, client)
    assert record.interruptions == 1 and record.stop_reason == 24
    assert record.outcome == "stopped: keep-alives unanswered"
    assert log.close_codes["signaling"] == 1001
    events = [d.event for d in client.receiver.received]
    assert events == ["meeting.rtms_started", "meeting.rtms_interrupted", "meeting.rtms_stopped"]
    interrupted = client.receiver.received[1].payload
    assert interrupted == {"meeting_uuid": handle.script.owner_id, "rtms_stream_id": handle.script.rtms_stream_id}
    assert client.receiver.received[2].payload["stop_reason"] == 24


async def test_reconnect_within_window_resumes(sim_and_client):
    sim, client = await sim_and_client(sim={"keepalive_interval": 0.1, "signaling_reconnect_window": 5},
                                       answer_keepalives=False, reconnect_on_interrupt=True)
    handle = sim.start_meeting(duration=2.5, media=MediaType.TRANSCRIPT)
    record, log = await _finish(handle, client)
    assert record.interruptions == 1 and record.stop_reason == 6 and record.outcome == "completed"
    assert [h.socket for h in record.handshakes if h.ok] == ["signaling", "transcript"] * 2
    assert [m["state"] for m in log.of_type(9)] == [2, 5]  # started, stopped: a reconnection resumes no session
    assert log.interrupted == 1


async def test_stream_close_request_stops_with_reason_20(sim_and_client):
    sim, client = await sim_and_client(close_after=0.3)
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    record, log = await _finish(handle, client)
    assert record.close_requested and record.stop_reason == 20
    close = log.of_type(22)[0]
    assert (close["status_code"], close["reason"], close["rtms_stream_id"]) == (0, "OK", handle.script.rtms_stream_id)
    terminated = log.of_type(8)[-1]
    assert (terminated["state"], terminated["reason"]) == (4, 20)
    assert log.close_codes["signaling"] == 1000 and log.close_codes["transcript"] == 1000
    assert log.stopped_payload["stop_reason"] == 20


async def test_host_stop(sim_and_client):
    sim, client = await sim_and_client()
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    assert await handle.wait_streaming(5)
    handle.request_stop()
    record, log = await _finish(handle, client)
    assert record.stop_reason == 1 and log.of_type(8)[-1]["reason"] == 1


async def test_client_that_never_connects(start_simulator, credentials):
    receiver = WebhookReceiver(credentials["secret_token"])  # answers 200, connects nothing
    url = await receiver.start()
    try:
        sim = await start_simulator(webhook_url=url, connect_timeout=0.3)
        record = await sim.start_meeting(duration=5).wait(TIMEOUT)
        assert record.outcome == "client never connected" and record.stop_reason == 11
        assert not record.handshakes_complete
        assert [d.event for d in receiver.received] == ["meeting.rtms_started", "meeting.rtms_stopped"]
        assert receiver.received[1].payload["stop_reason"] == 11
    finally:
        await receiver.close()


async def test_ready_per_socket_and_late_media_socket(sim_and_client):
    media = [MediaRequest("transcript", 8), MediaRequest("chat", 16)]
    sim, client = await sim_and_client(media=media, ready_per_socket=True)
    handle = sim.start_meeting(duration=3, media=MediaType.TRANSCRIPT | MediaType.CHAT)
    record, log = await _finish(handle, client)
    assert record.ready_acks == 2
    assert len(log.of_type(17, "transcript")) == record.sent.transcripts == len(handle.script.utterances)
    assert len(log.of_type(18, "chat")) == record.sent.chat == len(handle.script.chat)
    assert [m["state"] for m in log.of_type(9)] == [2, 5]  # one session start despite two acks


async def test_media_socket_lost_sends_event_7_then_stops(start_simulator):
    sim = await start_simulator(media_reconnect_window=0.3)
    handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
    raw = RawStream(sim, handle)
    await raw.connect()
    await raw.next_signaling(9)
    await raw.media.close()
    event = await raw.next_signaling(6)
    while event["event"]["event_type"] != 7:
        event = await raw.next_signaling(6)
    terminated = await raw.next_signaling(8)
    assert (terminated["state"], terminated["reason"]) == (4, 19)
    record = await handle.wait(TIMEOUT)
    assert record.media_interruptions == 1 and record.stop_reason == 19


async def test_media_socket_replaced_in_time(start_simulator):
    sim = await start_simulator(media_reconnect_window=5)
    handle = sim.start_meeting(duration=1.5, media=MediaType.TRANSCRIPT)
    raw = RawStream(sim, handle)
    await raw.connect()
    await raw.media.close()

    kept = []

    async def replaced() -> bool:
        """A new media socket, welcome once the simulator let go of the closed one."""
        second = await websockets.connect(f"{sim.base_url}/media/transcript/x", ssl=sim.client_ssl_context())
        await second.send(json.dumps({"msg_type": 3, "media_type": 8, **raw.ids}))
        status = json.loads(await second.recv())["status_code"]
        if status != 0:
            assert status == StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION, status  # the old one still holds it
            await second.close()
            return False
        kept.append(second)  # open until the meeting ends
        return True

    assert await eventually(replaced, 5)
    record = await handle.wait(TIMEOUT)
    assert record.stop_reason == 6 and record.media_interruptions == 1


async def test_signaling_dropped_without_reconnect(start_simulator, credentials):
    receiver = WebhookReceiver(credentials["secret_token"])
    url = await receiver.start()
    try:
        sim = await start_simulator(webhook_url=url, signaling_reconnect_window=0.3)
        handle = sim.start_meeting(duration=30, media=MediaType.TRANSCRIPT)
        raw = RawStream(sim, handle)
        await raw.connect()
        await raw.next_signaling(9)
        await raw.sig.close()
        record = await handle.wait(TIMEOUT)
        assert record.interruptions == 1 and record.stop_reason == 19
        assert [d.event.rsplit(".")[-1] for d in receiver.received] == ["rtms_started", "rtms_interrupted",
                                                                         "rtms_stopped"]
    finally:
        await receiver.close()


async def test_state_requests_and_video_subscription(start_simulator):
    sim = await start_simulator()
    handle = sim.start_meeting(duration=30, media=MediaType.ALL)
    raw = RawStream(sim, handle)
    await raw.connect()
    await raw.next_signaling(9)
    sid = handle.script.rtms_stream_id
    await raw.sig.send(json.dumps({"msg_type": 19, "rtms_stream_id": sid}))
    assert (await raw.next_signaling(20))["state"] == 1
    await raw.sig.send(json.dumps({"msg_type": 10, "rtms_session_id": handle.script.rtms_session_id}))
    assert (await raw.next_signaling(11))["state"] == 2
    user = handle.script.participants[1].user_id
    # no video socket with data_opt 4 here (test_simulator_protocol_features has one)
    await raw.sig.send(json.dumps({"msg_type": 28, "user_id": user, "subscribe": True, "timestamp": 1}))
    resp = await raw.next_signaling(29)
    assert (resp["user_id"], resp["status_code"]) == (user, StatusCode.INVALID_MEDIA_VIDEO_DATA_OPT)
    await raw.sig.send(b'{"msg_type": 99}')
    await raw.sig.send(b"garbage")
    await eventually(lambda: handle.record.frames_rejected >= 1)  # the last one sent
    assert handle.record.unexpected["signaling:UnknownMessage"] == 1 and handle.record.frames_rejected == 1
    handle.request_stop()
    await handle.wait(TIMEOUT)
