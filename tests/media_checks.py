"""Assertions shared by every test that produces media files."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av


def assert_mp4_duration(path: Path | str) -> list[float]:
    """The MP4 lasts until its last frame's time plus one frame (the median spacing of its
    frames), counted from the stream's time zero like the frames themselves. Returns the
    frames' times in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(packet.pts * stream.time_base) for packet in container.demux(stream) if packet.size]
        start, duration = container.start_time, container.duration
    assert times, f"{path} holds no frame"
    times.sort()
    spacings = sorted(b - a for a, b in pairwise(times))
    end_s = (start + duration) / 1_000_000  # microseconds; the container starts at the first frame
    if spacings:
        one_frame = spacings[len(spacings) // 2]
        assert abs(end_s - (times[-1] + one_frame)) < 0.0015, (end_s, times[-1], one_frame)
    else:
        assert times[-1] < end_s <= times[-1] + 1.0, (end_s, times)
    return times
