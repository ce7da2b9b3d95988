import os
import struct
import tracemalloc
import wave

import pytest

from rtms_gateway.sinks import audio
from rtms_gateway.sinks.audio import MAX_DATA_BYTES, PLACED, UNWRITTEN, WavTrack


def _read(path):
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())


def test_track_is_valid_while_growing_and_time_aligned(tmp_path):
    path = tmp_path / "m" / "a.wav"
    track = WavTrack(path, sample_rate=16000, channels=1, origin_ms=1000)
    assert _read(path) == (16000, 1, b"")  # valid before any audio
    a, b = b"\x01\x00" * 320, b"\x02\x00" * 320
    track.place(1000, a)
    track.flush()
    assert _read(path)[2] == a
    track.place(1060, b)  # 40 ms gap (muted speaker) becomes silence
    track.place(1020, a)  # lands on audio already placed: a replay, dropped
    track.flush()
    assert _read(path)[2] == a + bytes(1280) + b
    assert track.duplicates == 1 and track.gaps_filled_bytes == 1280
    assert abs(track.duration_s - 0.08) < 1e-9
    track.close()
    assert _read(path)[2] == a + bytes(1280) + b


def test_stereo_48k_offsets(tmp_path):
    track = WavTrack(tmp_path / "s.wav", sample_rate=48000, channels=2)
    frame = b"\x00\x01" * 1920  # 20 ms of 48 kHz stereo
    track.place(5_000, frame)
    track.place(5_040, frame)
    track.close()
    rate, channels, data = _read(tmp_path / "s.wav")
    assert (rate, channels, len(data)) == (48000, 2, 3 * 3840)


def _chunk(value: int, ms: int = 20, rate: int = 16000, channels: int = 1) -> bytes:
    """`ms` of 16-bit samples all equal to `value`: where each packet lands is visible."""
    return value.to_bytes(2, "little", signed=True) * (rate * ms // 1000 * channels)


def test_packets_a_few_ms_early_or_late_continue_the_track(tmp_path):
    track = WavTrack(tmp_path / "j.wav", sample_rate=16000, channels=1, origin_ms=1000)
    stamps = [1000, 1017, 1043, 1055, 1084, 1100, 1119]  # a 20 ms step, each a few ms off
    packets = [_chunk(i + 1) for i in range(len(stamps))]
    for stamp, pcm in zip(stamps, packets):
        track.place(stamp, pcm)
    track.close()
    assert _read(tmp_path / "j.wav")[2] == b"".join(packets), "every sample, in order, no silence"
    assert track.duplicates == 0 and track.gaps_filled_bytes == 0


def test_drift_beyond_half_a_packet_reanchors(tmp_path):
    track = WavTrack(tmp_path / "d.wav", sample_rate=16000, channels=1, origin_ms=0)
    track.place(0, _chunk(1))
    track.place(20, _chunk(2))
    track.place(71, _chunk(3))  # 31 ms past the end: silence up to its time
    track.place(80, _chunk(4, ms=100))  # 11 ms behind the end, yet newer: appended
    track.place(140, _chunk(5))  # 51 ms behind the end of the 100 ms packet, newer: appended
    track.close()
    silence = bytes(31 * 32)
    assert _read(tmp_path / "d.wav")[2] == _chunk(1) + _chunk(2) + silence + _chunk(3) + _chunk(4, ms=100) + _chunk(5)
    assert track.duplicates == 0 and track.gaps_filled_bytes == len(silence)


def test_one_missing_packet_becomes_silence_even_with_jitter(tmp_path):
    track = WavTrack(tmp_path / "m.wav", sample_rate=16000, channels=1, origin_ms=0)
    track.place(3, _chunk(1))  # 3 ms late: within half a packet of the start, placed at 0
    track.place(36, _chunk(2))  # slot 40 (the one at 20 never came), 4 ms early: 16 ms past the end
    track.close()
    assert _read(tmp_path / "m.wav")[2] == _chunk(1) + bytes(16 * 32) + _chunk(2)


def test_only_replays_are_dropped(tmp_path):
    track = WavTrack(tmp_path / "r.wav", sample_rate=16000, channels=1, origin_ms=0)
    for stamp, value in ((0, 1), (20, 2), (41, 3)):
        track.place(stamp, _chunk(value))
    for stamp, value in ((41, 3), (20, 2), (0, 1), (-500, 9)):  # after a reconnect: sent again
        track.place(stamp, _chunk(value))
    track.place(59, _chunk(4))
    track.close()
    assert _read(tmp_path / "r.wav")[2] == _chunk(1) + _chunk(2) + _chunk(3) + _chunk(4)
    assert track.duplicates == 4


def test_a_track_carried_on_after_a_restart_drops_what_the_file_holds(tmp_path):
    path = tmp_path / "c.wav"
    first = WavTrack(path, sample_rate=16000, channels=1, origin_ms=0)
    for i in range(5):
        first.place(20 * i, _chunk(i + 1))
    first.flush()  # a crash: the file is never closed
    again = WavTrack(path, sample_rate=16000, channels=1, origin_ms=0)
    again.place(60, _chunk(4))  # a replay of what the file holds
    again.place(78, _chunk(5))
    again.place(103, _chunk(6))  # the next packet, 3 ms late: contiguous
    again.close()
    assert _read(path)[2] == b"".join(_chunk(v) for v in (1, 2, 3, 4, 5, 6))
    assert again.duplicates == 2


def _sparse_supported(folder) -> bool:
    probe = folder / "sparse-probe"
    with open(probe, "wb") as f:
        f.truncate(64 << 20)
    blocks = os.stat(probe).st_blocks
    probe.unlink()
    return blocks * 512 < (1 << 20)


def test_an_hour_of_silence_at_48k_stereo_takes_no_memory(tmp_path):
    path = tmp_path / "gap.wav"
    frame = _chunk(7, rate=48000, channels=2)
    track = WavTrack(path, sample_rate=48000, channels=2, origin_ms=0)
    track.place(0, frame)
    tracemalloc.start()
    try:
        track.place(3_600_000, frame)
        track.flush()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    track.close()
    gap = 3_600_000 * 192 - len(frame)
    assert peak < 256 * 1024, f"{peak} bytes allocated for a {gap}-byte gap"
    assert track.gaps_filled_bytes == gap
    assert os.path.getsize(path) == 44 + 2 * len(frame) + gap
    with wave.open(str(path)) as w:
        assert w.getnframes() == (2 * len(frame) + gap) // 4
        w.setpos(w.getnframes() // 2)
        assert w.readframes(480) == bytes(1920)
        w.setpos(w.getnframes() - 960)
        assert w.readframes(960) == frame
    if _sparse_supported(tmp_path):
        assert os.stat(path).st_blocks * 512 < 4 << 20, "the gap is a hole, not zeros on disk"


def test_a_wav_stops_at_4_gib(tmp_path):
    path = tmp_path / "big.wav"
    track = WavTrack(path, sample_rate=48000, channels=2, origin_ms=0)
    frame = _chunk(3, rate=48000, channels=2)
    last_fit = (MAX_DATA_BYTES - len(frame)) // 192 - 20
    assert track.place(last_fit, frame) == PLACED
    assert track.place(last_fit + 40, frame) == UNWRITTEN  # its end would pass the size fields' reach
    assert track.end <= MAX_DATA_BYTES
    if not _sparse_supported(tmp_path):
        return  # writing it would put 4 GiB of zeros on disk; the rule is checked above
    track.close()
    with open(path, "rb") as f:
        header = f.read(44)
    riff, data = struct.unpack_from("<I", header, 4)[0], struct.unpack_from("<I", header, 40)[0]
    assert data == track.end and riff == data + 36


@pytest.mark.parametrize("maps", [True, False])
def test_the_sizes_are_right_after_each_write_whether_or_not_the_file_system_maps_files(tmp_path, monkeypatch, maps):
    if not maps:
        def refuse(*args, **kwargs):
            raise OSError(19, "No such device")  # what mmap says on a file system without it
        monkeypatch.setattr(audio.mmap, "mmap", refuse)
    path = tmp_path / "f.wav"
    track = WavTrack(path, sample_rate=16000, channels=1, origin_ms=0)
    for k in range(3):
        track.place(20 * k, bytes([k + 1]) * 640)
        track.flush()
        with wave.open(str(path)) as w:  # a reader at any moment sees a well-formed file
            assert w.getnframes() == 320 * (k + 1)
    track.close()
    assert _read(path)[2] == b"\x01" * 640 + b"\x02" * 640 + b"\x03" * 640
