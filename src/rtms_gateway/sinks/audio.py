"""Time-aligned WAV files that are valid at every moment.

A track places each PCM packet by its timestamp: gaps (mute, reconnects) become silence,
so second N of the file is second N after the track's origin, and a packet that lands on
audio already written (a replay after a reconnect) is dropped and counted. Packets are
buffered and written by `flush()`, which also rewrites the two size fields of the header,
so a reader at any moment sees a well-formed file.
"""

from __future__ import annotations

import struct
from pathlib import Path

_HEADER_BYTES = 44


def wav_header(sample_rate: int, channels: int, data_bytes: int, sample_width: int = 2) -> bytes:
    block = channels * sample_width
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block,
                                    8 * sample_width)
            + b"data" + struct.pack("<I", data_bytes))


def repair_wav(path: Path) -> int:
    """Make a WAV's two size fields match what is on disk (after a crash they lag behind);
    a trailing partial sample frame is cut. Returns the audio bytes kept."""
    with open(path, "r+b") as f:
        header = f.read(_HEADER_BYTES)
        if len(header) < _HEADER_BYTES or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a WAV this gateway wrote")
        channels, = struct.unpack_from("<H", header, 22)
        block, = struct.unpack_from("<H", header, 32)
        size = f.seek(0, 2) - _HEADER_BYTES
        size -= size % max(block, 2 * channels, 1)
        f.truncate(_HEADER_BYTES + size)
        f.seek(4)
        f.write(struct.pack("<I", 36 + size))
        f.seek(40)
        f.write(struct.pack("<I", size))
    return size


class WavTrack:
    def __init__(self, path: Path, *, sample_rate: int, channels: int, origin_ms: int | None = None) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_bytes = 2 * channels
        self.origin_ms = origin_ms
        self.end = 0  # bytes of audio placed so far (written or buffered)
        self.written = 0
        self.duplicates = 0
        self.gaps_filled_bytes = 0
        self._pending: list[bytes] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size >= _HEADER_BYTES:
            # The same stream after a restart: carry on where the file ends.
            self.end = self.written = repair_wav(path)
            self._file = open(path, "r+b")  # noqa: SIM115 - kept open while the track grows
        else:
            self._file = open(path, "wb")  # noqa: SIM115
            self._file.write(wav_header(sample_rate, channels, 0))
            self._file.flush()

    def place(self, timestamp_ms: int, pcm: bytes) -> None:
        if self.origin_ms is None:
            self.origin_ms = timestamp_ms
        offset = (timestamp_ms - self.origin_ms) * self.sample_rate // 1000 * self.frame_bytes
        if offset < self.end:
            self.duplicates += 1
            return
        if offset > self.end:
            gap = offset - self.end
            self._pending.append(bytes(gap))
            self.gaps_filled_bytes += gap
        usable = len(pcm) - len(pcm) % self.frame_bytes
        self._pending.append(pcm[:usable])
        self.end = offset + usable

    @property
    def duration_s(self) -> float:
        return self.end / (self.sample_rate * self.frame_bytes)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        f = self._file
        f.seek(_HEADER_BYTES + self.written)
        f.write(data)
        self.written += len(data)
        f.seek(4)
        f.write(struct.pack("<I", 36 + self.written))
        f.seek(40)
        f.write(struct.pack("<I", self.written))
        f.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()
