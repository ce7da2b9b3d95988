import wave

from rtms_gateway.sinks.audio import WavTrack


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
