"""Media the simulator streams, checked by an independent client over TLS."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
import struct
import warnings

import pytest

from rtms_gateway.protocol.constants import MediaType, Product
from rtms_gateway.simulator.scenario import (
    TRANSCRIPT_LINES,
    MeetingScript,
    Utterance,
    build_meeting,
)
from tests.peers.minimal_client import MediaRequest

TIMEOUT = 15


async def _run(sim_and_client, *, duration=1.5, offered=MediaType.TRANSCRIPT, product=Product.MEETING,
               sim=None, **client):
    simulator, peer = await sim_and_client(sim=sim, **client)
    handle = simulator.start_meeting(duration=duration, media=offered, product=product)
    record = await handle.wait(TIMEOUT)
    log = peer.streams[handle.script.rtms_stream_id]
    await asyncio.wait_for(log.done.wait(), TIMEOUT)
    return handle, record, log


def _tone(tone_hz: int, rate: int, channels: int) -> bytes:
    """The documented tone of a participant, one 20 ms chunk, written independently."""
    samples = []
    for i in range(rate // 50):
        samples += [round(6000 * math.sin(2 * math.pi * tone_hz * i / rate))] * channels
    return struct.pack(f"<{len(samples)}h", *samples)


def _speaker_at(script: MeetingScript, offset_ms: int):
    for u in script.utterances:
        if u.start_ms <= offset_ms < u.end_ms:
            return u.speaker
    return None


async def test_transcripts_arrive_complete_and_exact(sim_and_client):
    handle, record, log = await _run(sim_and_client, duration=3)
    got = log.of_type(17, "transcript")
    assert record.sent.transcripts == len(handle.script.utterances) == len(got) == 4
    assert [u.anonymous for u in handle.script.utterances] == [False, False, True, False]
    t0 = record.t0_ms
    for msg, u in zip(got, handle.script.utterances):
        c = msg["content"]
        assert c["data"] == u.text
        if u.anonymous:  # as Zoom at times sends them: user 0, no name
            assert c["user_id"] == 0 and "user_name" not in c
        else:
            assert (c["user_id"], c["user_name"]) == (u.speaker.user_id, u.speaker.user_name)
        assert (c["timestamp"], c["start_time"], c["end_time"]) == (t0 + u.start_ms, t0 + u.start_ms, t0 + u.end_ms)
        assert c["language"] == 9  # English: language detection starts 30 s into the stream
        assert c.get("attribute") == u.attribute
    assert any(u.attribute is not None for u in handle.script.utterances)
    assert any(u.attribute is None for u in handle.script.utterances)
    assert record.outcome == "completed" and record.stop_reason == 6


async def test_transcript_text_covers_unicode_and_long_lines(sim_and_client):
    simulator, peer = await sim_and_client()
    base = build_meeting(7, 0, duration_s=3.0, offered=MediaType.TRANSCRIPT)
    people = base.participants
    lines = [Utterance(people[i % len(people)], text, 100 + 180 * i, 250 + 180 * i, int(lang))
             for i, (text, lang) in enumerate(TRANSCRIPT_LINES)]
    handle = simulator.start_meeting(dataclasses.replace(base, utterances=lines))
    record = await handle.wait(TIMEOUT)
    log = peer.streams[base.rtms_stream_id]
    await asyncio.wait_for(log.done.wait(), TIMEOUT)
    texts = [m["content"]["data"] for m in log.of_type(17, "transcript")]
    assert texts == [u.text for u in lines] and record.sent.transcripts == len(lines)
    joined = "".join(texts)
    assert any("\u3040" <= ch <= "\u9fff" for ch in joined)  # CJK
    assert any(ord(ch) > 0xFFFF for ch in joined)  # emoji outside the BMP
    assert any("\u0590" <= ch <= "\u06ff" for ch in joined)  # Hebrew/Arabic
    assert max(map(len, texts)) > 300
    assert len({m["content"]["user_id"] for m in log.of_type(17, "transcript")}) >= 3


async def test_transcript_language_pinned_without_lid(sim_and_client):
    params = {"transcript": {"content_type": 5, "src_language": 20, "enable_lid": False}}
    _, _, log = await _run(sim_and_client, media=[MediaRequest("transcript", 8, params)])
    assert log.handshakes["transcript"]["media_params"]["transcript"] == params["transcript"]
    assert {m["content"]["language"] for m in log.of_type(17, "transcript")} == {20}


async def test_audio_mixed_stream_exact_samples(sim_and_client):
    handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.AUDIO,
                                     media=[MediaRequest("audio", 1)])
    accepted = log.handshakes["audio"]["media_params"]["audio"]
    assert accepted == {"content_type": 2, "sample_rate": 1, "channel": 1, "codec": 1, "data_opt": 1, "send_rate": 20}
    frames = [m["content"] for m in log.of_type(14, "audio")]
    # What was sent, however long the client took to connect: the meeting's 2 s from the
    # connection on (50 packets a second), after the start-up buffer of the time before.
    assert len(frames) == record.sent.audio_frames >= 100
    silent = speaking = 0
    for i, c in enumerate(frames):
        assert c["user_id"] == 0 and "user_name" not in c  # Zoom's mixed stream
        assert c["timestamp"] == record.t0_ms + 20 * i
        pcm = base64.b64decode(c["data"])
        assert c["length"] == len(pcm) == 640
        speaker = _speaker_at(handle.script, 20 * i)
        assert pcm == (_tone(speaker.tone_hz, 16000, 1) if speaker else bytes(640)), i
        silent += speaker is None
        speaking += speaker is not None
    assert silent and speaking


async def test_audio_multi_stream_per_participant(sim_and_client):
    params = {"audio": {"content_type": 2, "codec": 1, "sample_rate": 3, "channel": 2, "data_opt": 2,
                        "send_rate": 20}}
    handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.AUDIO,
                                     media=[MediaRequest("audio", 1, params)])
    frames = [m["content"] for m in log.of_type(14, "audio")]
    assert frames and len(frames) == record.sent.audio_frames
    by_user = {p.user_id: p for p in handle.script.participants}
    for c in frames:
        offset = c["timestamp"] - record.t0_ms
        speaker = _speaker_at(handle.script, offset)
        assert speaker is not None and c["user_id"] == speaker.user_id
        assert c["user_name"] == by_user[c["user_id"]].user_name
        assert base64.b64decode(c["data"]) == _tone(speaker.tone_hz, 48000, 2)
        assert c["length"] == 3840
    assert len({c["user_id"] for c in frames}) >= 2


async def test_audio_send_rate_groups_chunks(sim_and_client):
    params = {"audio": {"send_rate": 100}}
    handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.AUDIO,
                                     media=[MediaRequest("audio", 1, params)])
    frames = [m["content"] for m in log.of_type(14, "audio")]
    assert len(frames) == record.sent.audio_frames >= 20  # 2 s in 100 ms packets, after the buffer
    for i, c in enumerate(frames):
        assert c["timestamp"] == record.t0_ms + 100 * i
        expected = b"".join(
            _tone(s.tone_hz, 16000, 1) if (s := _speaker_at(handle.script, 100 * i + 20 * j)) else bytes(640)
            for j in range(5))
        assert base64.b64decode(c["data"]) == expected


async def test_chat_messages(sim_and_client):
    handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.CHAT,
                                     media=[MediaRequest("chat", 16)])
    got = [m["content"] for m in log.of_type(18, "chat")]
    assert len(got) == len(handle.script.chat) == record.sent.chat >= 2
    for c, line in zip(got, handle.script.chat):
        assert c["data"] == line.text
        assert c["sender"] == {"user_id": line.sender.user_id, "user_name": line.sender.user_name}
        assert c["message_id"] == line.message_id and c["chat_session"]["type"] == 1
        assert c["timestamp"] == record.t0_ms + line.at_ms


async def test_events_follow_subscriptions(sim_and_client):
    handle, record, log = await _run(sim_and_client, duration=2.0, events=(3, 4))
    kinds = [m["event"]["event_type"] for m in log.of_type(6)]
    assert kinds[0] == 1  # FIRST_PACKET_TIMESTAMP, unsubscribed
    assert 2 not in kinds  # active speaker not subscribed
    assert kinds.count(3) == 2  # the first participants, then a late joiner
    assert kinds[-1] == 4  # everyone leaves when the meeting ends
    joined = log.of_type(6)[1]["event"]["participants"]
    assert all({"user_id", "user_name"} <= set(p) for p in joined)
    states = [(m["msg_type"], m["state"]) for m in log.signaling if m["msg_type"] in (8, 9)]
    assert states == [(8, 1), (9, 2), (8, 4), (9, 5)]
    stop9 = log.of_type(9)[-1]
    assert stop9["reason"] == stop9["stop_reason"] == 6 and stop9["rtms_session_id"] == handle.script.rtms_session_id
    assert record.subscribed == {3, 4}


async def test_active_speaker_events_when_subscribed(sim_and_client):
    _handle, record, log = await _run(sim_and_client, duration=2.0, events=(2,))
    speakers = [m["event"] for m in log.of_type(6) if m["event"]["event_type"] == 2]
    assert speakers and all({"user_id", "user_name", "timestamp"} <= set(e) for e in speakers)
    assert record.events[2] == len(speakers)


async def test_video_and_deskshare_placeholders(sim_and_client):
    media = [MediaRequest("video", 2, {"video": {"codec": 5, "fps": 5}}),
             MediaRequest("deskshare", 4, {"deskshare": {"codec": 7, "fps": 5}})]
    handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.VIDEO | MediaType.DESKSHARE,
                                     media=media)
    video = [m["content"] for m in log.of_type(15, "video")]
    assert len(video) == record.sent.video_frames >= 10  # 2 s at 5 fps
    first = video[0]["timestamp"]
    assert [c["timestamp"] for c in video] == [first + 200 * i for i in range(len(video))]
    assert all(base64.b64decode(c["data"])[:2] == b"\xff\xd8" for c in video)
    share = [m["content"] for m in log.of_type(16, "deskshare")]
    assert share and record.sent.share_frames == len(share)
    sharer = handle.script.shares[0]
    assert all(sharer.start_ms <= c["timestamp"] - record.t0_ms < sharer.end_ms for c in share)


async def test_unified_all_socket_carries_everything(sim_and_client):
    _handle, _record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.ALL,
                                     media=[MediaRequest("all", 32)])
    kinds = {m["msg_type"] for m in log.media["all"]}
    assert {14, 15, 17, 18} <= kinds
    assert set(log.handshakes["all"]["media_params"]) == {"audio", "video", "deskshare", "transcript", "chat"}


async def test_contact_center_streams_name_channels(sim_and_client):
    handle, _record, log = await _run(sim_and_client, duration=2.0, product=Product.CONTACT_CENTER)
    assert handle.started_payload.keys() >= {"engagement_id", "rtms_stream_id", "server_urls"}
    contents = [m["content"] for m in log.of_type(17, "transcript")]
    assert contents and all("channel_id" in c and "user_id" not in c for c in contents)
    assert log.stopped_payload == {"engagement_id": handle.script.owner_id,
                                   "rtms_stream_id": handle.script.rtms_stream_id, "stop_reason": 6}


async def test_audio_g711_is_alaw(sim_and_client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # an independent A-law encoder (Python < 3.13)
    params = {"audio": {"codec": 2, "sample_rate": 0, "channel": 1}}
    handle, record, log = await _run(sim_and_client, duration=1.0, offered=MediaType.AUDIO,
                                     media=[MediaRequest("audio", 1, params)])
    frames = [m["content"] for m in log.of_type(14, "audio")]
    assert frames
    for c in frames:
        speaker = _speaker_at(handle.script, c["timestamp"] - record.t0_ms)
        pcm = _tone(speaker.tone_hz, 8000, 1) if speaker else bytes(320)
        assert base64.b64decode(c["data"]) == audioop.lin2alaw(pcm, 2) and c["length"] == 160


def test_timestamp_jitter_is_seeded_uniform_and_bounded():
    from rtms_gateway.simulator.records import TimestampJitter

    jitter = TimestampJitter(5, "stream-a")
    shifts = [jitter(1, 0, 20 * i) for i in range(11_000)]
    assert shifts == [TimestampJitter(5, "stream-a")(1, 0, 20 * i) for i in range(11_000)]  # replayable
    assert shifts != [TimestampJitter(5, "stream-b")(1, 0, 20 * i) for i in range(11_000)]  # per stream
    counts = {v: shifts.count(v) for v in range(-5, 6)}
    assert set(shifts) == set(range(-5, 6)) and all(800 <= n <= 1200 for n in counts.values()), counts
    assert [jitter(1, 7, 20 * i) for i in range(50)] != shifts[:50]  # each sender has its own


async def test_jittered_audio_keeps_each_slots_content(sim_and_client):
    params = {"audio": {"data_opt": 2}}  # one stream per speaking participant
    for opt_params, user_of in (({}, lambda c: 0), (params, lambda c: c["user_id"])):
        handle, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.AUDIO,
                                         sim={"timestamp_jitter_ms": 5},
                                         media=[MediaRequest("audio", 1, opt_params)])
        frames = [m["content"] for m in log.of_type(14, "audio")]
        assert frames and len(frames) == record.sent.audio_frames
        shifts = []
        for c in frames:
            slot = round((c["timestamp"] - record.t0_ms) / 20) * 20  # |shift| <= 5 < half a slot
            shift = c["timestamp"] - record.t0_ms - slot
            assert abs(shift) <= 5 and c["timestamp"] == record.stamp(1, user_of(c), slot)
            speaker = _speaker_at(handle.script, slot)
            assert base64.b64decode(c["data"]) == (_tone(speaker.tone_hz, 16000, 1) if speaker else bytes(640))
            shifts.append(shift)
        assert len(set(shifts)) >= 5, "timestamps wander"
        slots = [c["timestamp"] for c in frames if user_of(c) == user_of(frames[0])]
        assert slots == sorted(slots), "a sender's packets stay in order"


async def test_jittered_video_timestamps(sim_and_client):
    media = [MediaRequest("video", 2, {"video": {"codec": 5, "fps": 5}})]
    _, record, log = await _run(sim_and_client, duration=2.0, offered=MediaType.VIDEO, media=media,
                                sim={"timestamp_jitter_ms": 5})
    video = [m["content"] for m in log.of_type(15, "video")]
    assert len(video) == record.sent.video_frames >= 10
    for c in video:
        slot = round((c["timestamp"] - record.t0_ms) / 200) * 200
        assert c["timestamp"] == record.stamp(2, c["user_id"], slot)
    assert len({c["timestamp"] - record.t0_ms - round((c["timestamp"] - record.t0_ms) / 200) * 200
                for c in video}) > 1
