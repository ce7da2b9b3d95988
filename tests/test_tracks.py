"""Video and raw tracks on real files: order by timestamp, carrying on after a crash, and
the MP4 an H.264 track becomes (real H.264 from the simulator's encoder)."""

from __future__ import annotations

import av
import pytest

from rtms_gateway.protocol.constants import Codec
from rtms_gateway.protocol.errors import RTMSError
from rtms_gateway.protocol.messages import VideoParams
from rtms_gateway.simulator.media import StreamingEncoder
from rtms_gateway.simulator.scenario import build_meeting
from rtms_gateway.simulator.video import H264Pattern
from rtms_gateway.sinks.audio import DUPLICATE, PLACED, UNWRITTEN
from rtms_gateway.sinks.audio_codecs import UndecodableAudio, pcm_decoder
from rtms_gateway.sinks.media_files import finish_file
from rtms_gateway.sinks.records import MediaFile
from rtms_gateway.sinks.tracks import AudioTrack, FramesTrack, H264Track, RawTrack, index_path

from .media_checks import assert_mp4_duration

ORIGIN = 1_700_000_000_000
SPEAKER = build_meeting(0).participants[0]


def _info(fmt: str, path: str, codec: str = "h264") -> MediaFile:
    return MediaFile(meeting_uuid="m", rtms_stream_id="s", kind="video", user_id=None, user_name=None,
                     codec=codec, format=fmt, path=path, origin_ms=ORIGIN)


def _units(count: int) -> list[bytes]:
    encoder = H264Pattern(VideoParams(codec=7, resolution=1, fps=10))
    return [encoder.frame_bytes(SPEAKER, i) for i in range(count)]


def test_h264_becomes_an_mp4_whose_frames_sit_at_their_times(tmp_path):
    stamps = [ORIGIN + 2000 + 100 * i + d for i, d in enumerate([0, 4, -3, 5, 1, -5, 2, 0, -1, 3, 5, -4])]
    info = _info("h264", "v.h264")
    track = H264Track(tmp_path / "v.h264", info)
    for stamp, unit in zip(stamps, _units(len(stamps))):
        assert track.place(stamp, unit) == PLACED
    assert track.place(stamps[5], b"\x00\x00\x01") == DUPLICATE  # not newer than the last frame
    track.close()
    done = finish_file(tmp_path, info)
    assert (done.format, done.path, done.frames, done.complete) == ("mp4", "v.mp4", len(stamps), True)
    assert not (tmp_path / "v.h264").exists() and not index_path(tmp_path / "v.h264").exists()
    times = assert_mp4_duration(tmp_path / "v.mp4")
    assert times == [(s - ORIGIN) / 1000 for s in stamps]
    with av.open(str(tmp_path / "v.mp4")) as container:
        assert len(list(container.decode(video=0))) == len(stamps)


def test_an_h264_track_carried_on_after_a_crash_agrees_with_its_index(tmp_path):
    units = _units(16)
    stamps = [ORIGIN + 40 * i for i in range(16)]
    path = tmp_path / "c.h264"
    info = _info("h264", "c.h264")
    track = H264Track(path, info)
    for stamp, unit in zip(stamps[:10], units[:10]):
        track.place(stamp, unit)
    track.flush()
    # The crash: a unit half written, an index line whose unit never reached the disk.
    with open(path, "ab") as f:
        f.write(units[10][: len(units[10]) // 2])
    with open(index_path(path), "a") as f:
        f.write(f"{stamps[10]} {len(units[10])}\n{stamps[11]} 12")
    stale = _info("h264", "c.h264")  # the store's copy lags: it knows of no frame
    again = H264Track(path, stale)
    assert (stale.frames, stale.last_ms, stale.bytes) == (10, stamps[9], sum(map(len, units[:10])))
    assert again.place(stamps[8], units[8]) == DUPLICATE  # replayed after the reconnect
    assert again.place(stamps[9], units[9]) == DUPLICATE
    for stamp, unit in zip(stamps[10:], units[10:]):
        assert again.place(stamp, unit) == PLACED
    again.close()
    done = finish_file(tmp_path, stale)
    assert done.frames == 16
    assert assert_mp4_duration(tmp_path / "c.mp4") == [(s - ORIGIN) / 1000 for s in stamps]


def test_an_h264_left_by_a_crash_is_repaired_when_finished(tmp_path):
    units = _units(6)
    path = tmp_path / "f.h264"
    info = _info("h264", "f.h264")
    track = H264Track(path, info)
    for i, unit in enumerate(units[:5]):
        track.place(ORIGIN + 100 * i, unit)
    track.close()
    with open(path, "ab") as f:  # a unit written, its index line lost
        f.write(units[5])
    done = finish_file(tmp_path, _info("h264", "f.h264"))
    assert done.frames == 5 and done.format == "mp4"
    assert assert_mp4_duration(tmp_path / "f.mp4") == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_numbered_frames_carry_on_after_a_restart(tmp_path):
    folder = tmp_path / "share-jpg"
    info = _info("frames", "share-jpg", codec="jpg")
    track = FramesTrack(folder, info, "jpg")
    for i in range(3):
        track.place(ORIGIN + 1000 * i, b"\xff\xd8jpeg %d" % i)
    track.close()
    stale = _info("frames", "share-jpg", codec="jpg")
    again = FramesTrack(folder, stale, "jpg")
    assert (stale.frames, stale.first_ms, stale.last_ms) == (3, ORIGIN, ORIGIN + 2000)
    assert again.place(ORIGIN + 2000, b"replayed") == DUPLICATE
    assert again.place(ORIGIN + 3000, b"\xff\xd8jpeg 3") == PLACED
    again.close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "000001_000000000.jpg", "000002_000001000.jpg", "000003_000002000.jpg", "000004_000003000.jpg"]


def test_raw_packets_carry_on_after_a_crash(tmp_path):
    path = tmp_path / "a.opus.raw"
    info = _info("raw", "a.opus.raw", codec="opus")
    track = RawTrack(path, info)
    for i in range(4):
        track.place(ORIGIN + 20 * i, b"packet %d" % i)
    track.flush()
    with open(path, "ab") as f:  # a packet cut short by the crash
        f.write(RawTrack._HEAD.pack(ORIGIN + 80, 100) + b"cut")
    stale = _info("raw", "a.opus.raw", codec="opus")
    again = RawTrack(path, stale)
    assert (stale.frames, stale.last_ms) == (4, ORIGIN + 60)
    assert again.place(ORIGIN + 60, b"packet 3") == DUPLICATE
    assert again.place(ORIGIN + 81, b"packet 4") == PLACED
    again.close()
    data, stamps = path.read_bytes(), []
    at = 0
    while at < len(data):
        stamp, length = RawTrack._HEAD.unpack_from(data, at)
        stamps.append(stamp)
        at += RawTrack._HEAD.size + length
    assert stamps == [ORIGIN, ORIGIN + 20, ORIGIN + 40, ORIGIN + 60, ORIGIN + 81] and at == len(data)


def test_a_corrupt_opus_frame_is_unwritten_and_the_next_one_lands(tmp_path):
    decoder = pcm_decoder(Codec.OPUS, 16000, 1)
    assert decoder is not None
    with pytest.raises(UndecodableAudio) as err:
        decoder(b"\xff" * 7)
    assert isinstance(err.value, RTMSError)
    info = MediaFile(meeting_uuid="m", rtms_stream_id="s", kind="audio", user_id=0, user_name=None,
                     codec="opus", format="wav", path="a.wav", sample_rate=16000, channels=1, origin_ms=ORIGIN)
    track = AudioTrack(tmp_path / "a.wav", info, pcm_decoder(Codec.OPUS, 16000, 1))
    encoder = StreamingEncoder(Codec.OPUS, 16000, 1)
    assert track.place(ORIGIN, b"\xff" * 7) == UNWRITTEN
    assert track.place(ORIGIN + 20, encoder.encode(b"\x00\x01" * 320)) == PLACED
    track.flush()
    assert info.frames == 1


def test_an_audio_tracks_record_counts_on_after_a_restart_as_of_each_write_handed_over(tmp_path):
    def audio_info(frames: int = 0, first_ms: int | None = None) -> MediaFile:
        return MediaFile(meeting_uuid="m", rtms_stream_id="s", kind="audio", user_id=0, user_name=None,
                         codec="l16", format="wav", path="a.wav", sample_rate=16000, channels=1,
                         origin_ms=ORIGIN, frames=frames, first_ms=first_ms)

    pcm = b"\x01\x00" * 320  # 20 ms
    info = audio_info()
    track = AudioTrack(tmp_path / "a.wav", info, pcm_decoder(Codec.L16, 16000, 1))
    for k in range(3):
        assert track.place(ORIGIN + 20 * k, pcm) == PLACED
    assert track.place(ORIGIN + 20, pcm) == DUPLICATE
    track.close()
    assert (info.frames, info.first_ms, info.last_ms, info.bytes) == (3, ORIGIN, ORIGIN + 40, 44 + 3 * 640)

    again = audio_info(frames=3, first_ms=ORIGIN)  # the store's record of it, after a restart
    track = AudioTrack(tmp_path / "a.wav", again, pcm_decoder(Codec.L16, 16000, 1))
    assert track.place(ORIGIN + 20, pcm) == DUPLICATE  # in the file already
    assert track.place(ORIGIN + 60, pcm) == PLACED
    track.flush()
    assert (again.frames, again.first_ms, again.last_ms, again.bytes) == (4, ORIGIN, ORIGIN + 60, 44 + 4 * 640)
    track.close()
