"""Every media type through the real gateway, from the real simulator, to files and the API."""

from __future__ import annotations

import wave
from urllib.parse import quote

import av
import pytest

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.media import encode_audio, silence_chunk, tone_chunk
from rtms_gateway.sinks.audio_codecs import decode_alaw

from .gateway_harness import GatewayWithSimulator
from .media_checks import assert_mp4_duration
from .serve_process import eventually

AUDIO = MediaType.AUDIO | MediaType.TRANSCRIPT


def _read_wav(path):
    with wave.open(str(path)) as w:
        return (w.getframerate(), w.getnchannels(), w.getsampwidth()), w.readframes(w.getnframes())


async def _media_index(run, meeting_uuid):
    async with run.http() as http:
        response = await http.get(f"/api/meetings/{quote(meeting_uuid, safe='')}/media")
    assert response.status_code == 200
    return response.json()["files"]


async def test_per_participant_audio_lands_in_one_wav_each_equal_to_what_was_sent(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript", RTMS_AUDIO_STREAMS="multi") as run:
        handle = run.simulator.start_meeting(duration=4.0, media=AUDIO)
        record = await handle.wait(30)
        await run.settle()
        files = await _media_index(run, handle.script.owner_id)
    assert record.outcome == "completed"
    script = handle.script
    speakers = {s.user_id: s for i in range(200) if (s := script.speaker_at(20 * i))}
    assert len(speakers) >= 2, "the scripted meeting has several voices"
    wavs = {f["user_id"]: f for f in files if f["kind"] == "audio"}
    assert set(wavs) == set(speakers), "one file per participant who spoke, no mixed file"
    # Offset N of every file is offset N of the stream: leading silence up to the first
    # chunk, then the participant's tone where they spoke and silence elsewhere.
    total = 0
    for user_id, f in wavs.items():
        assert (f["complete"], f["format"], f["user_name"]) == (True, "wav", speakers[user_id].user_name)
        params, pcm = _read_wav(tmp_path / f["path"])
        assert params == (16000, 1, 2)
        lead = (record.t0_ms - f["origin_ms"]) * 32
        assert lead >= 0 and pcm[:lead] == bytes(lead)
        body = pcm[lead:]
        chunks = len(body) // 640
        expected = b"".join(
            tone_chunk(speakers[user_id].tone_hz, 16000, 1) if (s := script.speaker_at(20 * i)) and s.user_id == user_id
            else silence_chunk(16000, 1) for i in range(chunks))
        assert body == expected
        total += sum(1 for i in range(chunks) if (s := script.speaker_at(20 * i)) and s.user_id == user_id)
    assert total == record.sent.audio_frames, "every packet sent is in a file, none twice"


async def test_g711_audio_is_decoded_into_the_time_aligned_wav(tmp_path):
    env = dict(RTMS_MEDIA="audio", RTMS_AUDIO_CODEC="g711", RTMS_AUDIO_SAMPLE_RATE="8000")
    async with GatewayWithSimulator(tmp_path, **env) as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.AUDIO)
        record = await handle.wait(30)
        await run.settle()
        (f,) = await _media_index(run, handle.script.owner_id)
    assert (f["codec"], f["format"], f["sample_rate"]) == ("g711", "wav", 8000)
    params, pcm = _read_wav(tmp_path / f["path"])
    assert params == (8000, 1, 2)
    lead = (record.t0_ms - f["origin_ms"]) * 16
    body = pcm[lead:]
    assert len(body) == record.sent.audio_frames * 320
    script = handle.script

    def chunk(i):
        s = script.speaker_at(20 * i)
        return tone_chunk(s.tone_hz, 8000, 1) if s else silence_chunk(8000, 1)

    expected = b"".join(decode_alaw(encode_audio(chunk(i), 2)) for i in range(record.sent.audio_frames))
    assert body == expected


async def test_h264_video_becomes_an_mp4_whose_every_frame_decodes(tmp_path):
    env = dict(RTMS_MEDIA="audio,video", RTMS_VIDEO_CODEC="h264", RTMS_VIDEO_RESOLUTION="sd",
               RTMS_VIDEO_FPS="10")
    async with GatewayWithSimulator(tmp_path, simulator={"timestamp_jitter_ms": 5}, **env) as run:
        handle = run.simulator.start_meeting(duration=4.0, media=MediaType.AUDIO | MediaType.VIDEO)
        record = await handle.wait(30)
        await run.settle()  # includes the muxing that runs when the stream ends
        files = await _media_index(run, handle.script.owner_id)
    videos = [f for f in files if f["kind"] == "video"]
    assert videos and all(f["format"] == "mp4" and f["complete"] for f in videos)
    decoded = 0
    for f in videos:
        with av.open(str(tmp_path / f["path"])) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base  # read while open: a closed container's stream has none
            frames = list(container.decode(stream))
        assert (frames[0].width, frames[0].height) == (640, 360)
        assert len(frames) == f["frames"]
        # Frames sit at their capture time (as stamped, jitter and all), on the stream's
        # time line (shared with audio); the file lasts until the last one's end.
        starts = assert_mp4_duration(tmp_path / f["path"])
        assert starts == [float(fr.pts * time_base) for fr in frames]
        assert round(starts[0], 3) == f["starts_at_s"]
        for at in starts:
            stamp = round(at * 1000) + f["origin_ms"]
            slot = round((stamp - record.t0_ms) / 100) * 100
            speaker = handle.script.active_speaker_at(slot)
            assert stamp == record.stamp(int(MediaType.VIDEO), speaker.user_id, slot)
        decoded += len(frames)
    assert decoded == record.sent.video_frames


async def test_screen_share_jpgs_are_numbered_frames_stamped_with_their_offset(tmp_path):
    env = dict(RTMS_MEDIA="deskshare", RTMS_SHARE_CODEC="jpg", RTMS_SHARE_FPS="1",
               RTMS_SHARE_RESOLUTION="sd")
    async with GatewayWithSimulator(tmp_path, **env) as run:
        handle = run.simulator.start_meeting(duration=10.0, media=MediaType.DESKSHARE)
        record = await handle.wait(30)
        await run.settle()
        files = await _media_index(run, handle.script.owner_id)
        shares = [f for f in files if f["kind"] == "share"]
        assert record.sent.share_frames >= 2
        assert shares and sum(f["frames"] for f in shares) == record.sent.share_frames
        async with run.http() as http:
            archive = await http.get(shares[0]["url"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    for f in shares:
        names = sorted(p.name for p in (tmp_path / f["path"]).iterdir())
        assert len(names) == f["frames"]
        offsets = [int(n.split("_")[1].split(".")[0]) for n in names]
        assert [int(n.split("_")[0]) for n in names] == list(range(1, len(names) + 1))
        assert offsets == sorted(offsets) and offsets[0] / 1000 == f["starts_at_s"]
        with av.open(str(tmp_path / f["path"] / names[0])) as image:
            frame = next(image.decode(video=0))
        assert (frame.width, frame.height) == (640, 360)


async def test_chat_timeline_participants_and_inferred_speakers_through_the_api(tmp_path):
    media = MediaType.TRANSCRIPT | MediaType.CHAT
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript,chat") as run:
        handle = run.simulator.start_meeting(duration=6.0, media=media)
        record = await handle.wait(30)
        await run.settle()
        uuid = quote(handle.script.owner_id, safe="")
        async with run.http() as http:
            chat = (await http.get(f"/api/meetings/{uuid}/chat")).json()["messages"]
            events = (await http.get(f"/api/meetings/{uuid}/events")).json()["events"]
            people = (await http.get(f"/api/meetings/{uuid}/participants")).json()["participants"]
            segments = (await http.get(f"/api/meetings/{uuid}/transcript")).json()["segments"]
            missing = await http.get("/api/meetings/nope/events")
    script = handle.script
    assert missing.status_code == 404
    assert len(chat) == record.sent.chat > 0
    assert {(m["sender_user_id"], m["text"]) for m in chat} == {(c.sender.user_id, c.text) for c in script.chat}
    kinds = {e["event"] for e in events}
    assert {"participant_join", "active_speaker_change", "first_packet_timestamp"} <= kinds
    assert {p["user_id"] for p in people} >= {s.user_id for s in script.participants}
    assert sum(p["talk_time_s"] for p in people) > 0
    # Utterances Zoom sent without a speaker are attributed from the active-speaker timeline.
    anonymous = [u for u in script.utterances if u.anonymous]
    assert anonymous, "the scripted meeting includes speakerless transcripts"
    by_text = {s["text"]: s for s in segments}
    for u in anonymous:
        seg = by_text[u.text]
        assert seg["speaker_inferred"] is True
        assert (seg["user_id"], seg["user_name"]) == (u.speaker.user_id, u.speaker.user_name)
    named = [by_text[u.text] for u in script.utterances if not u.anonymous and u.text in by_text]
    assert named and not any(s["speaker_inferred"] for s in named)


async def test_export_writes_the_meetings_wav(tmp_path):
    import subprocess
    import sys

    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio") as run:
        handle = run.simulator.start_meeting(duration=2.0, media=MediaType.AUDIO)
        await handle.wait(30)
        await run.settle()
        files = await _media_index(run, handle.script.owner_id)
    out = tmp_path / "out.wav"
    env = {"RTMS_DATA_DIR": str(tmp_path), "RTMS_DATABASE_URL": f"sqlite:///{tmp_path / 'rtms.sqlite3'}",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "rtms_gateway", "export", handle.script.owner_id,
                           "--format", "wav", "-o", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (tmp_path / files[0]["path"]).read_bytes()
    done = subprocess.run([sys.executable, "-m", "rtms_gateway", "export", handle.script.owner_id,
                           "--format", "mp4", "-o", str(tmp_path / "x.mp4")], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "no mp4 file" in done.stdout


@pytest.mark.parametrize("env,name", [
    ({"RTMS_AUDIO_CODEC": "mp3"}, "RTMS_AUDIO_CODEC"),
    ({"RTMS_AUDIO_SAMPLE_RATE": "44100"}, "RTMS_AUDIO_SAMPLE_RATE"),
    ({"RTMS_VIDEO_RESOLUTION": "4k"}, "RTMS_VIDEO_RESOLUTION"),
    ({"RTMS_AUDIO_SEND_RATE": "30"}, "RTMS_AUDIO_SEND_RATE"),
    ({"RTMS_AUDIO_CODEC": "opus"}, "RTMS_AUDIO_SAMPLE_RATE=48000"),
    ({"RTMS_SHARE_CODEC": "png", "RTMS_SHARE_FPS": "5"}, "RTMS_SHARE_FPS=1"),
])
def test_bad_media_settings_are_refused_with_the_name(tmp_path, env, name):
    from pydantic import ValidationError

    from .gateway_harness import make_settings

    with pytest.raises(ValidationError, match=name):
        make_settings(tmp_path, **env)



@pytest.mark.parametrize("buffer_data", [True, False])
async def test_the_startup_buffer_burst_lands_where_it_belongs(tmp_path, buffer_data):
    env = dict(RTMS_MEDIA="audio,transcript", RTMS_BUFFER_DATA=str(buffer_data).lower())
    async with GatewayWithSimulator(tmp_path, **env) as run:
        handle = run.simulator.start_meeting(duration=4.0, media=AUDIO, webhook_delay=1.5)
        record = await handle.wait(30)
        await run.settle()
        (f,) = await _media_index(run, handle.script.owner_id)
    assert record.outcome == "completed"
    if not buffer_data:
        assert record.sent.buffered == 0
    else:
        assert record.sent.buffered >= 70, "about 1.5 s of audio was held and sent in a burst"
    _, pcm = _read_wav(tmp_path / f["path"])
    # Time zero is the first packet: the start webhook's moment when Zoom buffers; the
    # file from there is what was sent for each 20 ms, silence only where nothing was.
    lead = (record.t0_ms - f["origin_ms"]) * 32
    body = pcm[lead:] if lead >= 0 else bytes(-lead) + pcm
    script = handle.script

    def chunk(i):
        s = script.speaker_at(20 * i)
        return tone_chunk(s.tone_hz, 16000, 1) if s else silence_chunk(16000, 1)

    chunks = len(body) // 640
    # Without the buffer, audio starts when the app connected: nothing before that.
    skipped = 0 if buffer_data else round((f["origin_ms"] + f["starts_at_s"] * 1000 - record.t0_ms) / 20)
    assert buffer_data or skipped >= 70
    expected = bytes(640 * skipped) + b"".join(chunk(i) for i in range(skipped, chunks))
    differing = [i for i in range(chunks) if body[640 * i:640 * (i + 1)] != expected[640 * i:640 * (i + 1)]]
    assert not differing, (differing[:10], skipped, chunks, record.sent.audio_frames)
    assert chunks - skipped >= record.sent.audio_frames


@pytest.mark.parametrize("codec,rate", [("opus", 48000), ("g722", 16000)])
async def test_opus_and_g722_are_decoded_into_the_time_aligned_wav(tmp_path, codec, rate):
    import array
    import math

    env = dict(RTMS_MEDIA="audio", RTMS_AUDIO_CODEC=codec, RTMS_AUDIO_SAMPLE_RATE=str(rate))
    async with GatewayWithSimulator(tmp_path, **env) as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.AUDIO)
        record = await handle.wait(30)
        await run.settle()
        (f,) = await _media_index(run, handle.script.owner_id)
    assert (f["codec"], f["format"], f["sample_rate"]) == (codec, "wav", rate)
    assert run.gateway.pipeline.counters["media_unwritten"] == 0
    _, pcm = _read_wav(tmp_path / f["path"])
    per_chunk = rate // 50 * 2
    body = pcm[(record.t0_ms - f["origin_ms"]) * per_chunk // 20:]
    # Lossy codecs: each 20 ms carries the tone where someone spoke, near-silence elsewhere
    # (a chunk either side of a change may blur).
    agree = total = 0
    for i in range(len(body) // per_chunk):
        samples = array.array("h", body[i * per_chunk:(i + 1) * per_chunk])
        rms = math.sqrt(sum(x * x for x in samples) / len(samples))
        speaking = handle.script.speaker_at(20 * i) is not None
        agree += (rms > 2000) if speaking else (rms < 500)
        total += 1
    assert total >= record.sent.audio_frames - 5 and agree >= 0.9 * total


def _chunk_of(script, slot_ms, rate=16000, user_id=None):
    """What was sent for a 20 ms slot: the speaker's tone (only `user_id`'s, if given), else silence."""
    s = script.speaker_at(slot_ms)
    if s is not None and user_id in (None, s.user_id):
        return tone_chunk(s.tone_hz, rate, 1)
    return silence_chunk(rate, 1)


async def test_jittered_mixed_audio_lands_whole_and_in_order(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"timestamp_jitter_ms": 5}, RTMS_MEDIA="audio") as run:
        handle = run.simulator.start_meeting(duration=4.0, media=MediaType.AUDIO)
        record = await handle.wait(30)
        await run.settle()
        (f,) = await _media_index(run, handle.script.owner_id)
        metrics = run.gateway.manager.metrics()
    n = record.sent.audio_frames
    stamps = [record.stamp(1, 0, 20 * i) for i in range(n)]
    assert len({s - record.t0_ms - 20 * i for i, s in enumerate(stamps)}) == 11, "every shift in ±5 ms was sent"
    _, pcm = _read_wav(tmp_path / f["path"])
    # Every packet is within a few ms of where the one before ended: one run, from the start.
    assert pcm == b"".join(_chunk_of(handle.script, 20 * i) for i in range(n))
    assert metrics["media_duplicates"] == 0 and metrics["media_refused"] == 0


async def test_jittered_per_participant_audio_lands_whole_and_in_order(tmp_path):
    env = dict(RTMS_MEDIA="audio", RTMS_AUDIO_STREAMS="multi")
    async with GatewayWithSimulator(tmp_path, simulator={"timestamp_jitter_ms": 5}, **env) as run:
        handle = run.simulator.start_meeting(duration=5.0, media=MediaType.AUDIO)
        record = await handle.wait(30)
        await run.settle()
        files = await _media_index(run, handle.script.owner_id)
    script = handle.script
    wavs = {f["user_id"]: f for f in files}
    sent = 0
    for user_id, f in wavs.items():
        _, pcm = _read_wav(tmp_path / f["path"])
        # Each utterance is one run of packets: it starts at its first packet's time (as
        # stamped), then every packet follows the one before; silence between runs.
        expected, runs = bytearray(), []
        for i in range(script.duration_ms // 20):  # the meeting streams its whole script
            s = script.speaker_at(20 * i)
            if s is None or s.user_id != user_id:
                continue
            if not runs or runs[-1][1] != i - 1:
                runs.append([i, i])
            else:
                runs[-1][1] = i
        for first, last in runs:
            at = (record.stamp(1, user_id, 20 * first) - f["origin_ms"]) * 32
            assert at >= len(expected)
            expected += bytes(at - len(expected))
            expected += tone_chunk(next(p for p in script.participants if p.user_id == user_id).tone_hz,
                                   16000, 1) * (last - first + 1)
            sent += last - first + 1
        assert pcm == bytes(expected), user_id
    assert sent == record.sent.audio_frames and len(wavs) >= 2


async def test_a_frame_far_in_the_future_costs_nothing_and_is_counted(tmp_path):
    import base64
    import resource

    from rtms_gateway.protocol.messages import AudioData, MediaContent, encode

    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio") as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.AUDIO)
        assert await handle.wait_streaming(15)
        assert await eventually(lambda: handle.record.sent.audio_frames >= 25)  # the stream is flowing
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pcm = tone_chunk(400, 16000, 1)
        for ahead_ms in (10 * 3600 * 1000, 2**40):
            frame = AudioData(content=MediaContent(data=base64.b64encode(pcm).decode(), user_id=0, length=640,
                                                   timestamp=handle.record.t0_ms + ahead_ms))
            handle.stream.served[MediaType.AUDIO].send(encode(frame))
        record = await handle.wait(30)
        await run.settle()
        (f,) = await _media_index(run, handle.script.owner_id)
        async with run.http() as http:
            metrics = (await http.get("/metrics")).text
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    assert "rtms_media_refused_frames_total 2.0" in metrics
    assert peak_after - peak_before < 200 * 1024, "no gap was built in memory"
    _, pcm = _read_wav(tmp_path / f["path"])
    assert pcm == b"".join(_chunk_of(handle.script, 20 * i) for i in range(record.sent.audio_frames))
    assert (tmp_path / f["path"]).stat().st_size == 44 + 640 * record.sent.audio_frames
