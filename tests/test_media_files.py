"""MediaFiles on a real data directory: where files go whatever the ids, and which frames
reach them (the stream's clock refuses frames stamped implausibly far ahead)."""

from __future__ import annotations

import os
import tracemalloc
import wave
from dataclasses import dataclass

import pytest

from rtms_gateway.protocol.constants import Codec, MediaType
from rtms_gateway.protocol.messages import AudioParams, VideoParams
from rtms_gateway.sinks.media_clock import LEAD_MS, MAX_SKEW_MS, StreamClock
from rtms_gateway.sinks.media_files import MediaFiles
from rtms_gateway.sinks.records import MediaFile

from .test_paths import HOSTILE

NOW_MS = 1_790_000_000_000  # our wall clock, and Zoom's, in these tests
PCM = b"\x05\x00" * 320  # 20 ms at 16 kHz mono


@dataclass
class Stream:
    meeting_uuid: str
    stream_id: str


class Clocks:
    """A monotonic and a wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def clock(self) -> StreamClock:
        return StreamClock(now=lambda: 1000.0 + self.elapsed, wall=lambda: NOW_MS / 1000 + self.elapsed)


def _files(data_dir, clocks=None, video_codec=Codec.JPG) -> MediaFiles:
    clocks = clocks or Clocks()
    indexed: list[MediaFile] = []

    def params(stream, kind):
        if kind == MediaType.AUDIO:
            return AudioParams(codec=1, sample_rate=1, channel=1)
        return VideoParams(codec=video_codec)

    files = MediaFiles(data_dir, params_of=params, on_file=indexed.append, clock=clocks.clock)
    files.indexed = indexed  # type: ignore[attr-defined]
    return files


def _pcm_of(data_dir, info: MediaFile) -> bytes:
    with wave.open(str(data_dir / info.path)) as w:
        return w.readframes(w.getnframes())


def _everything_under(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), folder) for d, dirs, names in os.walk(folder) for n in dirs + names}


def test_every_id_becomes_a_file_inside_the_data_dir(tmp_path):
    data = tmp_path / "data"
    files = _files(data)
    for i, bad in enumerate(HOSTILE):
        stream = Stream(meeting_uuid=bad, stream_id=HOSTILE[-1 - i])
        files.place(stream, MediaType.AUDIO, 0, None, NOW_MS, PCM)
        files.place(stream, MediaType.AUDIO, bad, bad, NOW_MS, PCM)  # a participant named like that
        files.place(stream, MediaType.VIDEO, None, None, NOW_MS, b"\xff\xd8")
    files.flush()
    assert _everything_under(tmp_path) == {"data"} | {f"data/{p}" for p in _everything_under(data)}
    paths = [f.path for f in files.indexed]  # type: ignore[attr-defined]
    assert len(paths) == len(set(paths)) == 3 * len(HOSTILE)
    for info in files.indexed:  # type: ignore[attr-defined]
        assert len(info.path) < 200 and (data / info.path).exists()
        if info.format == "wav":
            assert _pcm_of(data, info) == PCM
    assert files.counters["media_unwritten"] == 0


def test_frames_far_in_the_future_are_refused_and_cost_nothing(tmp_path, caplog):
    data = tmp_path / "data"
    files = _files(data)
    stream = Stream("m", "s")
    for i in range(5):
        files.place(stream, MediaType.AUDIO, 0, None, NOW_MS + 20 * i, PCM)
    files.flush()
    (info,) = files.indexed  # type: ignore[attr-defined]
    size = os.path.getsize(data / info.path)
    tracemalloc.start()
    try:
        for ahead in (10 * 3600 * 1000, 2**40, 2**62):
            files.place(stream, MediaType.AUDIO, 0, None, NOW_MS + ahead, PCM)
            files.flush()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert os.path.getsize(data / info.path) == size
    assert files.counters["media_refused"] == 3 and files.counters["media_duplicates"] == 0
    assert sum("ahead of the stream's clock; refused" in r.message for r in caplog.records) == 1  # rate-limited
    for i in range(5, 8):  # the stream goes on where it was
        files.place(stream, MediaType.AUDIO, 0, None, NOW_MS + 20 * i, PCM)
    files.flush()
    assert _pcm_of(data, info) == PCM * 8


def test_a_far_future_first_frame_opens_nothing_and_sets_no_time_zero(tmp_path):
    data = tmp_path / "data"
    files = _files(data)
    stream = Stream("m", "s")
    files.set_origin("s", NOW_MS - 1000)  # Zoom's first-packet notice
    files.place(stream, MediaType.AUDIO, 0, None, NOW_MS + MAX_SKEW_MS + 1, PCM)
    files.place(stream, MediaType.VIDEO, None, None, NOW_MS + 10 * 3600 * 1000, b"\xff\xd8")
    assert files.indexed == [] and not data.exists()  # type: ignore[attr-defined]
    assert files.counters["media_refused"] == 2
    files.place(stream, MediaType.AUDIO, 0, None, NOW_MS, PCM)
    files.flush()
    (info,) = files.indexed  # type: ignore[attr-defined]
    assert info.origin_ms == NOW_MS - 1000
    assert _pcm_of(data, info) == bytes(32_000) + PCM


def test_a_first_packet_notice_from_long_before_is_not_believed(tmp_path):
    files = _files(tmp_path)
    files.set_origin("s", 0)  # 1970: the file would open with 56 years of silence
    files.place(Stream("m", "s"), MediaType.AUDIO, 0, None, NOW_MS, PCM)
    files.flush()
    (info,) = files.indexed  # type: ignore[attr-defined]
    assert info.origin_ms == NOW_MS and _pcm_of(tmp_path, info) == PCM


def test_the_startup_buffer_then_live_audio_is_all_plausible(tmp_path):
    clocks = Clocks()
    files = _files(tmp_path, clocks)
    stream = Stream("m", "s")
    buffered_from = NOW_MS - 60_000  # Zoom held a minute of audio until we connected
    for i in range(0, 3000, 50):  # the burst: a packet every second of it, sent at once
        files.place(stream, MediaType.AUDIO, 0, None, buffered_from + 20 * i, PCM)
    files.place(stream, MediaType.AUDIO, 0, None, NOW_MS, PCM)  # then live
    assert files.counters["media_refused"] == 0
    # Ahead of what the clock allows now, yet plausible once that much time has passed.
    too_soon = buffered_from + LEAD_MS + 5_000
    files.place(stream, MediaType.AUDIO, 0, None, too_soon, PCM)
    assert files.counters["media_refused"] == 1
    clocks.elapsed = 6.0
    files.place(stream, MediaType.AUDIO, 0, None, too_soon, PCM)
    assert files.counters["media_refused"] == 1


@pytest.mark.parametrize("codec", [Codec.H264, Codec.JPG])
def test_video_far_ahead_is_refused_and_replays_dropped(tmp_path, codec):
    files = _files(tmp_path, video_codec=codec)
    stream = Stream("m", "s")
    for stamp in (NOW_MS, NOW_MS + 40, NOW_MS + 40, NOW_MS + 20, NOW_MS + 2**40, NOW_MS + 80):
        files.place(stream, MediaType.VIDEO, None, None, stamp, b"\x00\x00\x00\x01\x09\xf0")
    (info,) = files.indexed  # type: ignore[attr-defined]
    assert (info.frames, info.first_ms, info.last_ms) == (3, NOW_MS, NOW_MS + 80)
    assert files.counters["media_duplicates"] == 2 and files.counters["media_refused"] == 1


def test_a_carried_on_file_stored_outside_the_data_dir_is_not_opened(tmp_path):
    data = tmp_path / "data"
    outside = tmp_path / "victim.wav"
    outside.write_bytes(b"RIFF precious")
    files = _files(data)
    stored = MediaFile(meeting_uuid="m", rtms_stream_id="s", kind="audio", user_id=0, user_name=None,
                       codec="l16", format="wav", path="../victim.wav", sample_rate=16000, channels=1,
                       origin_ms=NOW_MS)
    files.resume("s", NOW_MS, [stored])
    files.place(Stream("m", "s"), MediaType.AUDIO, 0, None, NOW_MS, PCM)
    files.flush()
    assert outside.read_bytes() == b"RIFF precious"
    assert files.counters["media_unwritten"] == 1


def test_a_carried_on_file_stored_by_an_earlier_version_is_appended(tmp_path):
    from rtms_gateway.sinks.audio import wav_header

    old = tmp_path / "m%3D%3D" / "s-audio-mixed.wav"  # percent-encoded, as earlier versions named it
    old.parent.mkdir()
    old.write_bytes(wav_header(16000, 1, 640) + PCM)
    files = _files(tmp_path)
    stored = MediaFile(meeting_uuid="m==", rtms_stream_id="s", kind="audio", user_id=0, user_name=None,
                       codec="l16", format="wav", path="m%3D%3D/s-audio-mixed.wav", sample_rate=16000,
                       channels=1, origin_ms=NOW_MS)
    files.resume("s", NOW_MS, [stored])
    stream = Stream("m==", "s")
    files.place(stream, MediaType.AUDIO, 0, None, NOW_MS, PCM)  # a replay: the file has it
    files.place(stream, MediaType.AUDIO, 0, None, NOW_MS + 22, b"\x06\x00" * 320)
    files.flush()
    assert _pcm_of(tmp_path, stored) == PCM + b"\x06\x00" * 320
    assert files.counters["media_duplicates"] == 1
