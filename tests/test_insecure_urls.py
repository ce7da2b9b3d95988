"""TLS only: server URLs that are not wss:// are refused, with the reason on the stream,
unless RTMS_ALLOW_INSECURE_WS says otherwise."""

from __future__ import annotations

import logging
from urllib.parse import quote

from rtms_gateway.protocol.constants import MediaType

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually


async def _stream_when(run, stream_id, states, timeout=20.0):
    async def reached():
        stream = await run.gateway.store.stream(stream_id)
        return stream if stream is not None and stream.state in states else None

    assert await eventually(reached, timeout), f"stream {stream_id} never reached {states}"
    return await reached()


async def test_a_plain_ws_signaling_url_is_refused_with_its_reason(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rtms_gateway")
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}) as run:
        assert run.simulator.base_url.startswith("ws://")
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.TRANSCRIPT)
        stream = await _stream_when(run, handle.script.rtms_stream_id, {"refused"})
        await run.settle()
        async with run.http() as http:
            detail = (await http.get(f"/api/meetings/{quote(handle.script.owner_id, safe='')}")).json()
        handle.request_stop()
        await handle.wait(30)
    assert "signaling URL ws://" in stream.status_reason and "RTMS_ALLOW_INSECURE_WS" in stream.status_reason
    assert detail["state"] == "failed"
    assert [s["status_reason"] for s in detail["streams"]] == [stream.status_reason]
    assert not handle.record.handshakes, "the gateway never connected to the plain ws:// server"
    assert any("refused" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_plain_ws_is_followed_when_allowed(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}, RTMS_ALLOW_INSECURE_WS="true",
                                    RTMS_MEDIA="transcript") as run:
        handle = run.simulator.start_meeting(duration=2.0, media=MediaType.TRANSCRIPT)
        record = await handle.wait(30)
        await run.settle()
        stored = await run.gateway.store.transcript(handle.script.owner_id)
    assert record.outcome == "completed"
    assert [s.text for s in stored] == [t.data for t in record.transcripts]


async def test_a_plain_ws_media_url_from_a_tls_signaling_server_is_refused(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript") as run:
        server = run.simulator.server
        offered = server.media_urls
        # A signaling server (over TLS) that hands back plain ws:// media URLs.
        server.media_urls = lambda stream_id, media: {  # type: ignore[method-assign]
            key: url.replace("wss://", "ws://", 1) for key, url in offered(stream_id, media).items()}
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.TRANSCRIPT)
        stream = await _stream_when(run, handle.script.rtms_stream_id, {"refused"})
        handle.request_stop()
        await handle.wait(30)
    assert stream.status_reason.startswith("transcript media URL ws://")
    assert handle.record.signaling_ok and not handle.record.media_ok
