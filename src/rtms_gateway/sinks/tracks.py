"""The media tracks: one file (or folder) per stream, kind and participant.

- `AudioTrack`: decoded audio in a time-aligned WAV (placement rules in `audio.WavTrack`);
- `RawTrack`: packets of a codec with no decoder here, kept as received;
- `H264Track`: the Annex-B stream as it arrives plus a timestamp index, muxed to MP4 by
  `mux_h264_to_mp4` when the stream ends, each frame at its own time;
- `FramesTrack`: JPG/PNG frames, one numbered file each, named with their offset.

Frames other than audio keep their order by timestamp: one stamped at or before the last
frame the track holds is a replay, dropped and counted. A track carried on after a restart
first reads what its files hold (the store's copy of that lags behind), so the same rule
holds across the restart. `place` answers PLACED, DUPLICATE or UNWRITTEN.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Protocol

from .audio import DUPLICATE, PLACED, UNWRITTEN, BlockingFlush, WavTrack, closing_job
from .audio_codecs import PcmDecoder, UndecodableAudio
from .records import MediaFile

MS = Fraction(1, 1000)  # timestamps are ms; the muxer picks its own stream time base
DEFAULT_FRAME_MS = 40  # one frame at 25 fps: the length of a lone frame whose rate is unknown
# A numbered frame's file name: `<number>_<offset ms>.<suffix>` (FramesTrack).
FRAME_NAME = re.compile(r"(\d+)_(-?\d+)\.\w+")


class Track(Protocol):
    """`place` runs on the event loop and only buffers; `take` and `closing` hand what is
    buffered over as one blocking job for the file's writer thread (jobs of a track run in
    the order they were taken). `flush` and `close` run those jobs in place."""

    info: MediaFile

    def place(self, timestamp_ms: int, payload: bytes) -> int: ...
    def take(self) -> Callable[[], None] | None: ...
    def closing(self) -> Callable[[], None]: ...


def _note_frame(info: MediaFile, timestamp_ms: int, size: int) -> None:
    """Per frame: a comparison instead of `max()` (20 ns against 90 ns)."""
    if info.first_ms is None:
        info.first_ms = timestamp_ms
    last = info.last_ms
    if not last or timestamp_ms > last:
        info.last_ms = timestamp_ms
    info.frames += 1
    info.bytes += size


class AudioTrack(BlockingFlush):
    """Decoded audio in a time-aligned WAV. Its `info` is brought up to date from the WAV
    with each write job handed over (`take`, `closing`), not with each of 50 frames a second."""

    def __init__(self, path: Path, info: MediaFile, decode: PcmDecoder) -> None:
        self.info = info
        self.decode = decode
        self.wav = WavTrack(path, sample_rate=info.sample_rate or 16000, channels=info.channels or 1,
                            origin_ms=info.origin_ms)
        self._frames_before = info.frames  # a file carried on after a restart counts on
        self._note_frames()

    def place(self, timestamp_ms: int, payload: bytes) -> int:
        try:
            pcm = self.decode(payload)
        except UndecodableAudio:  # counted by the caller as unwritten; the next frame may decode
            return UNWRITTEN
        return self.wav.place(timestamp_ms, pcm)

    def _note_frames(self) -> None:
        info, wav = self.info, self.wav
        info.frames = self._frames_before + wav.placed
        info.bytes = 44 + wav.end
        if info.first_ms is None:
            info.first_ms = wav.first_ms
        if wav.last_ms is not None:
            info.last_ms = wav.last_ms

    def take(self) -> Callable[[], None] | None:
        self._note_frames()
        return self.wav.take()

    def closing(self) -> Callable[[], None]:
        self._note_frames()
        return self.wav.closing()


class RawTrack(BlockingFlush):
    """Packets kept as received: per packet, `<timestamp ms: u64><length: u32>` then the
    bytes, little-endian. The codec and its parameters are in the file's index entry."""

    _HEAD = struct.Struct("<QI")

    def __init__(self, path: Path, info: MediaFile) -> None:
        self.info = info
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            _resume_raw(path, info, self._HEAD)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the track grows
        self._pending: list[bytes] = []

    def place(self, timestamp_ms: int, payload: bytes) -> int:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            return DUPLICATE
        if timestamp_ms < 0:
            return UNWRITTEN  # the header holds an unsigned time
        self._pending.append(self._HEAD.pack(timestamp_ms, len(payload)) + payload)
        _note_frame(self.info, timestamp_ms, self._HEAD.size + len(payload))
        return PLACED

    def take(self) -> Callable[[], None] | None:
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        return partial(self._write, b"".join(pending))

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    def closing(self) -> Callable[[], None]:
        return closing_job(self._file, self.take())


def _resume_raw(path: Path, info: MediaFile, head: struct.Struct) -> None:
    """What a raw file holds: its count, size and last timestamp; a packet cut short by a
    crash is cut off."""
    info.frames, info.bytes, info.first_ms, info.last_ms = 0, 0, None, None
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        at = 0
        while at + head.size <= size:
            f.seek(at)
            timestamp_ms, length = head.unpack(f.read(head.size))
            if at + head.size + length > size:
                break
            _note_frame(info, timestamp_ms, head.size + length)
            at += head.size + length
        f.truncate(at)


class H264Track(BlockingFlush):
    """Annex-B access units appended as they arrive, and `<timestamp ms> <bytes>` per unit
    in a side index; `close()` leaves both for `mux_h264_to_mp4`."""

    def __init__(self, path: Path, info: MediaFile) -> None:
        self.info = info
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or index_path(path).exists():
            repair_h264(path, info)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the track grows
        self._index = open(index_path(path), "a", encoding="ascii")  # noqa: SIM115
        self._pending: list[bytes] = []
        self._pending_index: list[str] = []

    def place(self, timestamp_ms: int, payload: bytes) -> int:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            return DUPLICATE
        self._pending.append(payload)
        self._pending_index.append(f"{timestamp_ms} {len(payload)}\n")
        _note_frame(self.info, timestamp_ms, len(payload))
        return PLACED

    def take(self) -> Callable[[], None] | None:
        if not self._pending:
            return None
        units, lines = b"".join(self._pending), "".join(self._pending_index)
        self._pending, self._pending_index = [], []
        return partial(self._write, units, lines)

    def _write(self, units: bytes, lines: str) -> None:
        self._file.write(units)
        self._index.write(lines)
        self._file.flush()
        self._index.flush()

    def closing(self) -> Callable[[], None]:
        write = self.take()

        def close() -> None:
            if not self._file.closed:
                if write is not None:
                    write()
                self._file.close()
                self._index.close()
        return close


def index_path(h264: Path) -> Path:
    return h264.with_name(h264.name + ".idx")


def repair_h264(h264: Path, info: MediaFile) -> None:
    """Make an H.264 stream and its index agree after a crash (either may have been cut
    short): both keep the longest run of units the index and the stream both hold whole.
    `info` is brought up to date with what they hold."""
    info.frames, info.bytes, info.first_ms, info.last_ms = 0, 0, None, None
    idx = index_path(h264)
    lines = idx.read_bytes().split(b"\n") if idx.exists() else []
    size = h264.stat().st_size if h264.exists() else 0
    kept = 0  # bytes of the index kept
    for line in lines[:-1]:  # the last piece has no newline: cut short, or empty
        fields = line.split()
        if len(fields) != 2 or not fields[0].lstrip(b"-").isdigit() or not fields[1].isdigit():
            break
        timestamp_ms, length = int(fields[0]), int(fields[1])
        if info.bytes + length > size:
            break
        _note_frame(info, timestamp_ms, length)
        kept += len(line) + 1
    with open(idx, "ab") as f:
        f.truncate(kept)
    with open(h264, "ab") as f:
        f.truncate(info.bytes)


def mux_h264_to_mp4(h264: Path, mp4: Path, origin_ms: int) -> int:
    """Copy the access units of `h264` into `mp4`, each at its own timestamp (relative to
    `origin_ms`, in ms), each lasting until the next; the last lasts one frame (the median
    spacing), so the file's duration is the last frame's time plus one frame. Returns the
    number of frames written. Nothing is re-encoded."""
    import av

    at, last = [], -1
    for line in index_path(h264).read_text("ascii").splitlines():
        if line:
            last = max(int(line.split()[0]) - origin_ms, last + 1)
            at.append(last)
    spacings = sorted(b - a for a, b in pairwise(at))
    tmp = mp4.with_name(mp4.name + ".part")
    written = 0
    with av.open(str(h264), format="h264") as source, av.open(str(tmp), "w", format="mp4") as target:
        src = source.streams.video[0]
        out = target.add_stream_from_template(src)
        out.time_base = MS
        if spacings:
            one_frame = spacings[len(spacings) // 2]
        else:
            rate = src.guessed_rate
            one_frame = round(1000 / rate) if rate else DEFAULT_FRAME_MS
        for packet in source.demux(src):
            if packet.size == 0:
                continue
            # The parser yields one packet per access unit, in arrival order.
            if written >= len(at):  # a unit the index does not know: one frame after the last
                at.append(at[-1] + one_frame if at else 0)
            pts = at[written]
            packet.pts = packet.dts = pts
            # The demuxer's duration is in its own time base: set ours, or the last
            # packet's would be read in ms (a minute too long).
            packet.duration = at[written + 1] - pts if written + 1 < len(at) else one_frame
            packet.time_base = MS
            packet.stream = out
            target.mux(packet)
            written += 1
    tmp.replace(mp4)
    return written


class FramesTrack(BlockingFlush):
    """One image file per frame: `<number>_<offset ms>.<jpg|png>` in the track's folder."""

    def __init__(self, folder: Path, info: MediaFile, suffix: str) -> None:
        self.info = info
        self.folder = folder
        self.suffix = suffix
        folder.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[str, bytes]] = []
        self._resume()

    def _resume(self) -> None:
        """Carry on numbering after the frames already in the folder."""
        numbers, offsets = [], []
        for entry in os.scandir(self.folder):
            m = FRAME_NAME.fullmatch(entry.name)
            if m:
                numbers.append(int(m[1]))
                offsets.append(int(m[2]))
        if numbers:
            info = self.info
            info.frames = max(numbers)
            info.first_ms = info.origin_ms + min(offsets)
            info.last_ms = info.origin_ms + max(offsets)
            info.bytes = sum(p.stat().st_size for p in self.folder.iterdir())

    def place(self, timestamp_ms: int, payload: bytes) -> int:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            return DUPLICATE
        offset = timestamp_ms - self.info.origin_ms
        self._pending.append((f"{self.info.frames + 1:06d}_{offset:09d}.{self.suffix}", payload))
        _note_frame(self.info, timestamp_ms, len(payload))
        return PLACED

    def take(self) -> Callable[[], None] | None:
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        return partial(self._write, pending)

    def _write(self, frames: list[tuple[str, bytes]]) -> None:
        for name, payload in frames:
            (self.folder / name).write_bytes(payload)

    def closing(self) -> Callable[[], None]:
        write = self.take()
        return write if write is not None else _nothing


def _nothing() -> None:
    pass
