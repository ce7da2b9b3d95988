"""The real gateway against the real simulator over TLS on loopback, with a real store."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import pytest

from rtms_gateway.metrics import value_of
from rtms_gateway.protocol.constants import MediaType, Product, StatusCode, StopReason
from rtms_gateway.simulator import build_meeting
from rtms_gateway.sinks.paths import safe_name

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually


async def _meeting_in_store(run, uuid):
    return await run.gateway.store.get_meeting(uuid)


async def test_one_meeting_end_to_end(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=4.0)
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        assert record.handshakes_complete and record.ready_acks == 1
        assert {h.socket for h in record.handshakes if h.ok} == {"signaling", "transcript", "chat"}

        uuid = handle.script.owner_id
        segments = await run.gateway.store.transcript(uuid)
        assert [s.text for s in segments] == [t.data for t in record.transcripts]
        # Speakerless transcripts (user 0, no name) get the speaker who held the floor.
        speakers = {u.text: u for u in handle.script.utterances}
        assert [(s.user_name, s.speaker_inferred) for s in segments] == [
            (speakers[t.data].speaker.user_name, speakers[t.data].anonymous) for t in record.transcripts]
        assert all(s.start_time and s.end_time and s.timestamp for s in segments)
        # `attribute` (NEW on some of Zoom's transcripts) is kept where it came, only there.
        assert [s.attribute for s in segments] == [t.attribute for t in record.transcripts]
        assert any(s.attribute is not None for s in segments)
        chats = await run.gateway.store.chat(uuid)
        assert sorted(c.text for c in chats) == sorted(str(c.data) for c in record.chat)
        timeline = await run.gateway.store.timeline(uuid)
        assert {e.event_type for e in timeline} >= {2, 3}

        detail = (await run.gateway.store.get_meeting(uuid)).to_dict()
        assert detail["product"] == "meeting"
        assert detail["stop_reason"] == StopReason.MEETING_ENDED

        async with run.http() as http:
            encoded = quote(uuid, safe="")
            listing = (await http.get("/api/meetings")).json()
            assert uuid in str(listing)
            body = (await http.get(f"/api/meetings/{encoded}/transcript?format=json")).json()
            assert [s["text"] for s in body["segments"]] == [t.data for t in record.transcripts]
            assert set(body["segments"][0]) >= {"user_id", "user_name", "text", "start_time", "end_time", "timestamp"}
            vtt = await http.get(f"/api/meetings/{encoded}/transcript?format=vtt")
            assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
            assert (await http.get("/healthz")).status_code == 200


async def test_a_simulated_meeting_is_paged_and_searched_over_http(tmp_path):
    """The simulator plays a meeting; its transcript, read seven segments at a time, is the
    whole of it, and a phrase the simulator said is found with the speaker who said it."""
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=12.0)
        record = await handle.wait(40)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        uuid = handle.script.owner_id
        transcript = f"/api/meetings/{quote(uuid, safe='')}/transcript"
        async with run.http() as http:
            whole = (await http.get(transcript)).json()["segments"]
            assert [s["text"] for s in whole] == [t.data for t in record.transcripts]
            assert len(whole) > 7
            pages, after = [], None
            while True:
                page = (await http.get(transcript, params={"limit": 7, "after": after})).json()
                pages += page["segments"]
                if (after := page["next"]) is None:
                    break
            assert pages == whole

            texts = [u.text for u in handle.script.utterances]
            said = next(u for u in handle.script.utterances
                        if texts.count(u.text) == 1 and len(re.findall(r"[A-Za-z]+", u.text)) >= 3)
            phrase = " ".join(re.findall(r"[A-Za-z]+", said.text)[:3])
            found = await http.get("/api/search", params={"q": f'"{phrase}"', "meeting": uuid})
            results = found.json()["results"]
            (hit,) = [r for r in results if r["text"] == said.text]
            assert (hit["kind"], hit["user_name"], hit["speaker_inferred"]) == \
                ("transcript", said.speaker.user_name, said.anonymous)
            assert hit["cursor"] == next(s["cursor"] for s in whole if s["text"] == said.text)
            assert all(f"<mark>{word}</mark>" in hit["snippet"] for word in phrase.split())


async def test_fifty_concurrent_meetings_of_every_kind(tmp_path):
    products = [Product.MEETING, Product.WEBINAR, Product.SESSION, Product.CONTACT_CENTER]
    async with GatewayWithSimulator(tmp_path) as run:
        handles = [
            run.simulator.start_meeting(build_meeting(7, i, product=products[i % 4], duration_s=5.0))
            for i in range(50)
        ]
        records = await asyncio.gather(*(h.wait(60) for h in handles))
        await run.settle(30)
        assert [r.outcome for r in records] == ["completed"] * 50, [
            r.summary_line() for r in records if r.outcome != "completed"]
        for handle, record in zip(handles, records):
            segments = await run.gateway.store.transcript(handle.script.owner_id)
            assert [s.text for s in segments] == [t.data for t in record.transcripts]
            meeting = (await run.gateway.store.get_meeting(handle.script.owner_id)).to_dict()
            assert meeting["product"] == handle.script.product.value
        listing = await run.gateway.store.list_meetings(limit=100, offset=0)
        assert len(listing) == 50


async def test_bad_credentials_are_rejected_and_recorded_without_touching_other_streams(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        good = run.simulator.start_meeting(duration=3.0)
        await good.wait_streaming(10)
        # A stream whose signature cannot verify: the simulator answers INVALID_SIGNATURE.
        run.gateway.manager.credentials = type(run.gateway.manager.credentials)("gw-test-client-id", "wrong")
        bad = run.simulator.start_meeting(duration=3.0)
        bad_record = await bad.wait(30)
        good_record = await good.wait(30)
        await run.settle()
        assert good_record.outcome == "completed"
        assert [h.status_code for h in bad_record.handshakes] == [StatusCode.INVALID_SIGNATURE]
        stream = await run.gateway.store.stream(bad.script.rtms_stream_id)
        assert stream.state == "rejected" and stream.status_code == StatusCode.INVALID_SIGNATURE
        assert stream.status_reason
        good_segments = await run.gateway.store.transcript(good.script.owner_id)
        assert len(good_segments) == len(good_record.transcripts)


async def test_unknown_stream_is_rejected_with_zoom_status(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=2.0)
        await handle.wait_streaming(10)
        payload = dict(handle.started_payload, rtms_stream_id="0" * 32)
        delivery = await run.simulator.sender.send("meeting.rtms_started", payload)
        assert delivery.ok
        await handle.wait(30)
        await run.settle()
        stream = await run.gateway.store.stream("0" * 32)
        assert stream.state == "rejected" and stream.status_code == StatusCode.INVALID_RTMS_STREAM_ID


async def test_media_the_meeting_does_not_offer_is_rejected_the_rest_streams(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript,video") as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.TRANSCRIPT | MediaType.CHAT)
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed"
        segments = await run.gateway.store.transcript(handle.script.owner_id)
        assert len(segments) == len(record.transcripts)
        rejected = [h for h in record.handshakes if not h.ok]
        assert [h.status_code for h in rejected] == [StatusCode.MEDIA_TYPE_VIDEO_NOT_SUPPORT]


async def test_duplicate_start_webhook_opens_one_connection(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=3.0)
        await handle.wait_streaming(10)
        for _ in range(3):  # Zoom retries; a second connection would evict the first
            assert (await run.simulator.sender.send("meeting.rtms_started", handle.started_payload)).ok
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed"
        assert [h.socket for h in record.handshakes].count("signaling") == 1
        # and a late retry after the end does not reopen it
        assert (await run.simulator.sender.send("meeting.rtms_started", handle.started_payload)).ok
        # Answered once the gateway decided: the stream stays ended.
        assert run.gateway.manager.state_of(handle.script.rtms_stream_id) is None
        assert run.gateway.manager.health()["streams_live"] == 0


async def test_stopped_webhook_ends_the_stream(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=30.0)
        await handle.wait_streaming(10)
        assert await eventually(lambda: value_of(run.gateway.metrics.segments) > 0)  # into the meeting
        payload = handle.script.stopped_payload(int(StopReason.HOST_TRIGGERED))
        assert (await run.simulator.sender.send("meeting.rtms_stopped", payload)).ok
        await asyncio.wait_for(run.gateway.manager.wait_idle(), 10)
        await run.gateway.pipeline.flush()
        stream = await run.gateway.store.stream(handle.script.rtms_stream_id)
        assert stream.state == "stopped" and stream.stop_reason == StopReason.HOST_TRIGGERED
        handle.request_stop()
        await handle.wait(30)


async def test_stream_terminated_update_ends_the_stream(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=30.0)
        await handle.wait_streaming(10)
        handle.request_stop(StopReason.HOST_TRIGGERED)
        await handle.wait(30)
        await run.settle()
        stream = await run.gateway.store.stream(handle.script.rtms_stream_id)
        assert stream.state == "stopped" and stream.stop_reason == StopReason.HOST_TRIGGERED


async def test_shutdown_detaches_live_streams_and_keeps_what_arrived(tmp_path):
    ctx = GatewayWithSimulator(tmp_path)
    run = await ctx.__aenter__()
    try:
        handle = run.simulator.start_meeting(duration=30.0)
        await handle.wait_streaming(10)
        assert await eventually(lambda: value_of(run.gateway.metrics.segments) >= 2)  # something to keep
    finally:
        await ctx.__aexit__(None, None, None)  # closes the gateway while the meeting runs
    from rtms_gateway.sinks.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'rtms.sqlite3'}")
    try:
        stream = await store.stream(handle.script.rtms_stream_id)
        assert stream.state == "detached" and stream.stopped_at_ms is None
        assert len(await store.transcript(handle.script.owner_id)) == handle.record.sent.transcripts
    finally:
        await store.close()


async def test_restart_between_meetings_keeps_the_store(tmp_path):
    uuids = []
    for seed in (1, 2):
        async with GatewayWithSimulator(tmp_path) as run:
            handle = run.simulator.start_meeting(build_meeting(seed, 0, duration_s=2.0))
            await handle.wait(30)
            await run.settle()
            uuids.append(handle.script.owner_id)
            listing = [m.to_dict()["meeting_uuid"] for m in await run.gateway.store.list_meetings(limit=10, offset=0)]
            assert listing[0] == handle.script.owner_id  # newest first
    assert len(set(uuids)) == 2
    async with GatewayWithSimulator(tmp_path) as run, run.http() as http:
        listed = {m["meeting_uuid"] for m in (await http.get("/api/meetings")).json()["meetings"]}
        assert listed >= set(uuids)


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"x-zm-request-timestamp": "1", "x-zm-signature": "v0=00"}, 401),
])
async def test_unverified_webhooks_start_nothing(tmp_path, headers, status):
    async with GatewayWithSimulator(tmp_path) as run:
        script = build_meeting(3, 0)
        body = b'{"event":"meeting.rtms_started","event_ts":1,"payload":' + \
            __import__("json").dumps(script.started_payload("wss://localhost:1/x")).encode() + b"}"
        async with run.http() as http:
            response = await http.post("/webhook", content=body, headers=headers)
        assert response.status_code == status
        assert run.gateway.manager.health()["streams_live"] == 0


async def test_mixed_audio_lands_in_a_wav_equal_to_what_was_sent(tmp_path):
    import wave

    from rtms_gateway.simulator.media import silence_chunk, tone_chunk

    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript") as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        record = await handle.wait(30)
        await run.settle()
        (indexed,) = await run.gateway.store.media_files(handle.script.owner_id)
    assert record.outcome == "completed"
    (wav,) = (tmp_path / safe_name(handle.script.owner_id)).glob("*-audio-mixed.wav")
    assert indexed.path == str(wav.relative_to(tmp_path)) and indexed.complete
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        pcm = w.readframes(w.getnframes())
    # The file starts at the stream's time zero (Zoom's first-packet timestamp).
    lead = (record.t0_ms - indexed.origin_ms) * 32
    assert lead >= 0 and pcm[:lead] == bytes(lead)
    pcm = pcm[lead:]
    assert len(pcm) == record.sent.audio_frames * 640
    expected = b"".join(
        tone_chunk(s.tone_hz, 16000, 1) if (s := handle.script.speaker_at(20 * i)) else silence_chunk(16000, 1)
        for i in range(record.sent.audio_frames))
    assert pcm == expected
