"""SIGKILL in the middle of a meeting, then start again: what was committed before the
kill is stored, files are valid, and the stream is rejoined from the stored state."""

from __future__ import annotations

import asyncio
import signal
import time
import wave

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.media import silence_chunk, tone_chunk
from rtms_gateway.simulator.stream import Phase
from rtms_gateway.sinks.store import Store

from .serve_process import (
    eventually,
    free_port,
    no_stream_live,
    serve_env,
    simulator_for,
    start_serve,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_sigkill_then_restart_keeps_what_was_committed_and_rejoins_the_stream(tmp_path):
    port = free_port()
    sim = await simulator_for(port)
    env = serve_env(sim, tmp_path, RTMS_MEDIA="audio,transcript", RTMS_DATA_DIR=str(tmp_path / "data"),
                    RTMS_RECONNECT_INITIAL_S="0.2")
    gateway = await start_serve(tmp_path, port, env, "gateway-1.log")
    try:
        handle = sim.start_meeting(duration=14.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        assert await handle.wait_streaming(15)
        # Into the meeting: an utterance ended well before the kill (so it must be kept).
        assert await eventually(lambda: any((t.end_time or t.timestamp) < _now_ms() - 1500
                                            for t in handle.record.transcripts))
        killed_ms = _now_ms()
        gateway.send_signal(signal.SIGKILL)
        await gateway.wait()
        assert await eventually(lambda: handle.stream.phase is Phase.INTERRUPTED, 10), "Zoom saw no drop"
        gateway = await start_serve(tmp_path, port, env, "gateway-2.log")
        # The restarted gateway rejoins on its own: no webhook comes.
        assert await eventually(lambda: handle.stream.phase is Phase.STREAMING, 10), "the stream was not rejoined"
        back_ms = _now_ms()
        record = await handle.wait(40)
        assert await eventually(lambda: no_stream_live(port), 10)
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 30)
        await sim.stop()
    assert record.outcome == "completed" and record.interruptions == 1

    store = await Store.open(f"sqlite:///{tmp_path / 'data' / 'rtms.sqlite3'}")
    try:
        uuid = handle.script.owner_id
        stored = await store.transcript(uuid)
        files = await store.media_files(uuid)
        stream = await store.stream(handle.script.rtms_stream_id)
    finally:
        await store.close()
    keys = [(s.timestamp, s.text) for s in stored]
    assert len(keys) == len(set(keys)), "nothing stored twice"
    sent = {(t.timestamp, t.data): t for t in record.transcripts}
    assert set(keys) <= set(sent)
    # Everything Zoom sent well before the kill or after the rejoin is there.
    must = [k for k, t in sent.items() if (t.end_time or k[0]) < killed_ms - 1000 or k[0] > back_ms + 500]
    assert must and set(must) <= set(keys)
    assert stream.state == "stopped"

    (f,) = [f for f in files if f.kind == "audio"]
    assert f.complete and f.format == "wav"
    with wave.open(str(tmp_path / "data" / f.path)) as w:
        pcm = w.readframes(w.getnframes())
    lead = (record.t0_ms - f.origin_ms) * 32
    body = pcm[lead:]
    quiet = silence_chunk(16000, 1)
    chunks = len(body) // 640
    present, spoken = [], []
    for i in range(chunks):
        s = handle.script.speaker_at(20 * i)
        expected = tone_chunk(s.tone_hz, 16000, 1) if s else quiet
        got = body[640 * i: 640 * (i + 1)]
        assert got in (expected, quiet), f"chunk {i} is neither what was sent nor silence: files stay aligned"
        present.append(got == expected)
        spoken.append(expected != quiet)  # silence sent and silence missing look alike
    # From the record: packets 0..sent_before-1 went out before the kill, none until the
    # stream came back at `back`, and every one from there to the end of the file after.
    (resumed_ms,) = record.resumed_at_ms
    back = resumed_ms // 20
    sent_before = record.sent.audio_frames - (chunks - back)
    assert 0 < sent_before <= back < chunks
    assert all(present[back:]), "everything sent after the rejoin is in the file"
    # The killed gateway wrote a prefix of what it was sent; only the last of it, still
    # on its way when the process died, is missing (one stretch, up to the kill).
    written = next((i for i in range(sent_before) if not present[i]), sent_before)
    assert not any(present[i] and spoken[i] for i in range(written, back)), \
        "nothing after a missing packet until the rejoin"
    assert written >= sent_before - 5 * 50, "at most the seconds before the kill are missing"


async def test_streams_past_their_window_are_closed_and_their_files_finished(tmp_path):
    from rtms_gateway.gateway.service import Gateway
    from rtms_gateway.sinks.audio import wav_header
    from rtms_gateway.sinks.records import MediaFile, MeetingRecord, StreamRecord

    from .gateway_harness import make_settings

    settings = make_settings(tmp_path)
    store = await Store.open(settings.resolved_database_url)
    await store.upsert_meeting(MeetingRecord(meeting_uuid="m==", product="meeting"))
    await store.upsert_stream(StreamRecord(rtms_stream_id="s1", meeting_uuid="m==", server_urls="wss://x/y",
                                           state="ready"))
    # A WAV as a crash leaves it: 1 s of audio behind a header that says 0 bytes.
    wav = tmp_path / "m%3D%3D" / "s1-audio-mixed.wav"
    wav.parent.mkdir()
    wav.write_bytes(wav_header(16000, 1, 0) + b"\x01\x00" * 16000 + b"\x01")
    await store.upsert_media_file(MediaFile(meeting_uuid="m==", rtms_stream_id="s1", kind="audio", user_id=0,
                                            user_name=None, codec="l16", format="wav",
                                            path=str(wav.relative_to(tmp_path)),
                                            sample_rate=16000, channels=1, origin_ms=0))
    await store.close()
    stored_ms = _now_ms()
    assert await eventually(lambda: _now_ms() > stored_ms + 5)  # older than the 5 ms window below

    gateway = await Gateway.open(make_settings(tmp_path, RTMS_SIGNALING_WINDOW_S="0.005"))
    try:
        assert gateway.manager.health()["streams_live"] == 0
        stream = await gateway.store.stream("s1")
        (f,) = await gateway.store.media_files("m==")
    finally:
        await gateway.close()
    assert stream.state == "lost" and stream.stopped_at_ms is not None
    assert f.complete and f.bytes == 44 + 32000
    with wave.open(str(wav)) as w:
        assert w.getnframes() == 16000 and w.readframes(1) == b"\x01\x00"
