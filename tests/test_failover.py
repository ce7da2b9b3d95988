"""Zoom's failover cases against the real gateway and simulator: what the simulator
delivered while a socket was up is stored exactly once, and files stay time-aligned."""

from __future__ import annotations

import asyncio
import time
import wave

import pytest

from rtms_gateway.gateway.manager import INTERRUPTION_NOTICE_DELAY_MS
from rtms_gateway.protocol.constants import MediaType, Product, StopReason
from rtms_gateway.simulator.media import silence_chunk, tone_chunk

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually

FAST = {"RTMS_RECONNECT_INITIAL_S": "0.2", "RTMS_RECONNECT_MAX_S": "1"}
AUDIO = MediaType.AUDIO | MediaType.TRANSCRIPT


async def _stream_of(run, handle, timeout=15.0):
    """The gateway's live stream for the meeting, once it streams."""
    assert await handle.wait_streaming(timeout)

    def held():
        stream = run.gateway.manager.streams.get(handle.script.rtms_stream_id)
        return stream if stream is not None and stream.media_sessions else None

    assert await eventually(held, timeout), "the gateway never held the stream"
    return held()


async def _into_the_meeting(run):
    """Until the first utterance is in: the meeting has carried media for a while."""
    assert await eventually(lambda: run.gateway.pipeline.counters["segments"] > 0)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _stored_texts(run, handle):
    return [s.text for s in await run.gateway.store.transcript(handle.script.owner_id)]


def _sent_texts(record):
    return [t.data for t in record.transcripts]


async def _assert_wav_aligned(run, tmp_path, handle, record):
    """Each 20 ms of the file is what the simulator sent for that moment, or silence
    where nothing arrived (the gap); and it reaches the meeting's last packet."""
    (f,) = [f for f in await run.gateway.store.media_files(handle.script.owner_id) if f.kind == "audio"]
    with wave.open(str(tmp_path / f.path)) as w:
        pcm = w.readframes(w.getnframes())
    lead = (record.t0_ms - f.origin_ms) * 32
    body = pcm[lead:]
    chunks = len(body) // 640
    quiet = silence_chunk(16000, 1)
    delivered = 0
    for i in range(chunks):
        s = handle.script.speaker_at(20 * i)
        expected = tone_chunk(s.tone_hz, 16000, 1) if s else quiet
        got = body[640 * i: 640 * (i + 1)]
        assert got in (expected, quiet), f"chunk {i} is neither what was sent nor silence"
        delivered += got == expected and expected != quiet
    assert chunks >= record.sent.audio_frames
    return delivered


async def test_a_dropped_media_socket_is_reconnected_alone(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=6.0, media=AUDIO)
        stream = await _stream_of(run, handle)
        await _into_the_meeting(run)
        signaling = stream.signaling_socket
        await next(iter(stream.media_sockets.values())).close()
        record = await handle.wait(40)
        await run.settle()
        assert stream.media_reconnects >= 1
        assert stream.signaling_socket is signaling, "signaling was kept"
        assert run.gateway.manager.reconnects == {}
        assert record.outcome == "completed" and record.media_interruptions >= 1
        assert await _stored_texts(run, handle) == _sent_texts(record)
        await _assert_wav_aligned(run, tmp_path, handle, record)


async def test_a_dropped_signaling_socket_redoes_signaling_and_media(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=6.0, media=AUDIO)
        stream = await _stream_of(run, handle)
        await _into_the_meeting(run)
        await stream.signaling_socket.close()
        record = await handle.wait(40)
        await run.settle()
        assert run.gateway.manager.reconnects == {"lost": 1}
        assert record.outcome == "completed" and record.interruptions == 1
        assert await _stored_texts(run, handle) == _sent_texts(record)
        await _assert_wav_aligned(run, tmp_path, handle, record)
        stored = await run.gateway.store.stream(handle.script.rtms_stream_id)
        assert stored.state == "stopped"


async def test_a_new_rtms_started_moves_the_stream_to_its_new_servers(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=5.0, media=MediaType.TRANSCRIPT)
        stream = await _stream_of(run, handle)
        await _into_the_meeting(run)
        moved = dict(handle.started_payload)
        url = moved["server_urls"]
        moved["server_urls"] = (url.replace("localhost", "127.0.0.1") if "localhost" in url
                                else url.replace("127.0.0.1", "localhost"))
        assert moved["server_urls"] != url
        delivery = await run.simulator.sender.send(Product.MEETING.started_event, moved)
        assert delivery.ok
        record = await handle.wait(40)
        await run.settle()
        assert run.gateway.manager.reconnects == {"moved": 1}
        assert stream.outcome.state == "moved"
        assert record.outcome == "completed"
        assert await _stored_texts(run, handle) == _sent_texts(record)
        stored = await run.gateway.store.stream(handle.script.rtms_stream_id)
        assert stored.state == "stopped"


async def test_rtms_interrupted_webhook_makes_the_gateway_connect_again(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=6.0, media=MediaType.TRANSCRIPT)
        stream = await _stream_of(run, handle)
        # A notice stamped this long after the connection began is acted on (an older one
        # would be about a drop the gateway came back from already).
        assert await eventually(lambda: not stream.newer_than(_now_ms() - INTERRUPTION_NOTICE_DELAY_MS - 1))
        delivery = await run.simulator.sender.send(Product.MEETING.interrupted_event,
                                                   handle.script.interrupted_payload())
        assert delivery.ok
        record = await handle.wait(40)
        await run.settle()
        assert run.gateway.manager.reconnects == {"interrupted": 1}
        assert record.outcome == "completed"
        assert await _stored_texts(run, handle) == _sent_texts(record)


@pytest.mark.parametrize("reason", [StopReason.SIGNAL_CONNECTION_INTERRUPTED, StopReason.DATA_CONNECTION_INTERRUPTED])
async def test_a_failure_stop_reason_restarts_while_zoom_still_offers_the_stream(tmp_path, reason):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=5.0, media=MediaType.TRANSCRIPT)
        await _stream_of(run, handle)
        await _into_the_meeting(run)
        delivery = await run.simulator.sender.send(Product.MEETING.stopped_event,
                                                   handle.script.stopped_payload(int(reason)))
        assert delivery.ok
        record = await handle.wait(40)
        await run.settle()
        assert run.gateway.manager.reconnects == {"interrupted": 1}
        assert record.outcome == "completed"
        assert await _stored_texts(run, handle) == _sent_texts(record)


async def test_a_normal_stop_webhook_ends_the_stream_for_good(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript", **FAST) as run:
        handle = run.simulator.start_meeting(duration=30.0, media=MediaType.TRANSCRIPT)
        await _stream_of(run, handle)
        delivery = await run.simulator.sender.send(Product.MEETING.stopped_event,
                                                   handle.script.stopped_payload(int(StopReason.HOST_TRIGGERED)))
        assert delivery.ok
        await asyncio.wait_for(run.gateway.manager.wait_idle(), 10)
        assert run.gateway.manager.reconnects == {}
        # Zoom retries webhooks: a late copy of the start must not reopen the stream.
        again = await run.simulator.sender.send(Product.MEETING.started_event, handle.started_payload)
        assert again.ok  # answered once the gateway decided: the stream stays ended
        assert run.gateway.manager.state_of(handle.script.rtms_stream_id) is None
        assert handle.script.rtms_stream_id not in run.gateway.manager.streams
        handle.request_stop()
        await handle.wait(20)
