"""Time-aligned WAV files that are valid at every moment.

A track places each PCM packet by its timestamp, so second N of the file is second N after
the track's origin. Senders' timestamps jitter by a few ms, so the rules are:

- a packet stamped within half a packet of where the track ends continues it contiguously:
  no sample is dropped because it came a little early, no silence inserted because it
  came a little late (half, not a whole packet: one missing packet must become silence);
- further ahead, the gap up to its time is silence (mute, reconnects); further behind,
  it is appended all the same (nothing dropped);
- only a replay, stamped at or before the last packet placed, is dropped and counted. A
  track carried on after a restart does not know that packet: there a packet stamped
  more than half a packet behind the end of the file is the replay.

A WAV holds at most 4 GiB of audio (its size fields are 32-bit): packets past that are not
written (about 6 h of 48 kHz stereo, 37 h of 16 kHz mono).

Gaps are never built in memory: the write seeks past them (a hole on file systems that
have them, zeros otherwise). Packets are buffered on the event loop; `take()` hands them
over as a blocking write for the file's writer thread (`flush()` runs it in place), which
then sets the two size fields of the header, so a reader at any moment sees a well-formed
file. The header is mapped into memory: setting its sizes is two stores, not a system
call, so a write job costs one call per track (the page holding it is always the file's
own, so the mapping cannot fault past its end); where the file system cannot map a file,
the sizes are written.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

_HEADER_BYTES = 44
_SIZE = struct.Struct("<I")
MAX_DATA_BYTES = 0xFFFFFFFF - 36  # the RIFF size field counts 36 header bytes besides the audio
# What `place` did with a packet (tracks of every kind answer the same way).
PLACED, DUPLICATE, UNWRITTEN = 0, 1, 2


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
        size: int = f.seek(0, 2) - _HEADER_BYTES
        size -= size % max(block, 2 * channels, 1)
        f.truncate(_HEADER_BYTES + size)
        f.seek(4)
        f.write(struct.pack("<I", 36 + size))
        f.seek(40)
        f.write(struct.pack("<I", size))
    return size


def _pwrite_all(fd: int, data: bytes, at: int) -> int:
    """Write all of `data` at offset `at` (a regular file may take less in one call);
    returns the offset after it."""
    written = os.pwrite(fd, data, at)
    if written < len(data):
        view = memoryview(data)
        while written < len(data):
            written += os.pwrite(fd, view[written:], at + written)
    return at + written


def closing_job(file: BinaryIO, write: Callable[[], None] | None,
                release: Callable[[], None] | None = None) -> Callable[[], None]:
    """The blocking job that ends a track's file: its last write (if any), then what
    else holds the file (`release`: a mapping), then the close."""

    def close() -> None:
        if not file.closed:
            if write is not None:
                write()
            if release is not None:
                release()
            file.close()
    return close


class BlockingFlush:
    """`flush` and `close` for callers with no writer thread (tests, recovery tools)."""

    def take(self) -> Callable[[], None] | None:
        raise NotImplementedError

    def closing(self) -> Callable[[], None]:
        raise NotImplementedError

    def flush(self) -> None:
        """Blocking: write what the track buffered."""
        write = self.take()
        if write is not None:
            write()

    def close(self) -> None:
        """Blocking: write what is left, and close the track's files."""
        self.closing()()


class WavTrack(BlockingFlush):
    def __init__(self, path: Path, *, sample_rate: int, channels: int, origin_ms: int | None = None) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_bytes = 2 * channels
        self.origin_ms = origin_ms
        self.end = 0  # bytes of audio placed so far (written or buffered)
        self.written = 0
        self.first_ms: int | None = None  # timestamps of the first and last packets placed
        self.last_ms: int | None = None
        self.placed = 0  # packets placed
        self.duplicates = 0
        self.gaps_filled_bytes = 0
        self._pending: list[bytes | int] = []  # PCM, and gaps as byte counts
        self._file: BinaryIO
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered, written with positioned writes: one system call per run of audio per
        # write job (a buffered file's seeks cost several more).
        if path.exists() and path.stat().st_size >= _HEADER_BYTES:
            # The same stream after a restart: carry on where the file ends.
            self.end = self.written = repair_wav(path)
            self._file = open(path, "r+b", buffering=0)  # noqa: SIM115 - kept open while the track grows
        else:
            self._file = open(path, "w+b", buffering=0)  # noqa: SIM115
            self._file.write(wav_header(sample_rate, channels, 0))
        self._fd = self._file.fileno()
        try:  # its size fields, set in place
            self._header: mmap.mmap | None = mmap.mmap(self._fd, _HEADER_BYTES)
        except (OSError, ValueError):  # a file system that cannot map files: written instead
            self._header = None

    def place(self, timestamp_ms: int, pcm: bytes) -> int:
        """Place one packet (per frame: keep it lean): PLACED, DUPLICATE or UNWRITTEN."""
        usable = len(pcm) - len(pcm) % self.frame_bytes
        last = self.last_ms
        if last is not None and timestamp_ms <= last:
            self.duplicates += 1
            return DUPLICATE
        if self.origin_ms is None:
            self.origin_ms = timestamp_ms
        drift = (timestamp_ms - self.origin_ms) * self.sample_rate // 1000 * self.frame_bytes - self.end
        half = usable >> 1
        if drift <= half:
            if drift < -half and last is None and self.end:
                self.duplicates += 1  # carried on after a restart: already in the file
                return DUPLICATE
            drift = 0  # close enough, or behind: contiguous
        if not usable or self.end + drift + usable > MAX_DATA_BYTES:
            return UNWRITTEN
        if drift:
            self._pending.append(drift)
            self.gaps_filled_bytes += drift
            self.end += drift
        self._pending.append(pcm if usable == len(pcm) else pcm[:usable])
        self.end += usable
        if last is None:
            self.first_ms = timestamp_ms
        self.last_ms = timestamp_ms
        self.placed += 1
        return PLACED

    @property
    def duration_s(self) -> float:
        return self.end / (self.sample_rate * self.frame_bytes)

    def take(self) -> Callable[[], None] | None:
        """On the event loop: the packets placed since the last take, as a blocking write
        (the file's writer thread runs it; writes run in the order taken)."""
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        start, self.written = self.written, self.end
        return partial(self._write, pending, start, self.end)

    def _write(self, pending: list[bytes | int], start: int, end: int) -> None:
        # A gap is always followed by the packet that made it, so the file reaches `end`.
        fd, at = self._fd, _HEADER_BYTES + start
        run: list[bytes] = []
        for item in pending:
            if isinstance(item, int):  # a gap: skipped over (a hole, or zeros)
                if run:
                    at = _pwrite_all(fd, b"".join(run), at)
                    run.clear()
                at += item
            else:
                run.append(item)
        if run:
            _pwrite_all(fd, run[0] if len(run) == 1 else b"".join(run), at)
        header = self._header  # after the audio: the sizes never count bytes not yet written
        if header is not None:
            _SIZE.pack_into(header, 4, 36 + end)
            _SIZE.pack_into(header, 40, end)
        else:
            _pwrite_all(fd, _SIZE.pack(36 + end), 4)
            _pwrite_all(fd, _SIZE.pack(end), 40)

    def closing(self) -> Callable[[], None]:
        """On the event loop: the last write and the close, as one blocking job."""
        return closing_job(self._file, self.take(), None if self._header is None else self._header.close)
