"""Media to files: one track per (stream, kind, participant), time-aligned to the stream.

Every track of a stream shares one time zero (`origin_ms`: Zoom's first-packet timestamp,
or the first media timestamp seen), so offset N in any file is the same moment:

- audio: a WAV that is valid while it grows (see `audio.WavTrack`); codecs with no decoder
  here are kept as received (`RawTrack`, with their parameters in the file index);
- H.264: the Annex-B elementary stream as it arrives plus a timestamp index, muxed to MP4
  when the stream ends (`H264Track`), each frame at its own time;
- JPG/PNG: numbered frames whose names carry their offset (`FramesTrack`).

`MediaFiles` owns the tracks; a track's `info` (a `MediaFile` record) is what the store
indexes and the API lists.
"""

from __future__ import annotations

import logging
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import quote

from ..protocol.constants import Codec, MediaType, SampleRate
from .audio import WavTrack
from .audio_codecs import CODEC_NAMES, PcmDecoder, pcm_decoder
from .records import MediaFile, UserId

log = logging.getLogger(__name__)

KIND_NAMES = {MediaType.AUDIO: "audio", MediaType.VIDEO: "video", MediaType.DESKSHARE: "share"}
MS = Fraction(1, 1000)  # timestamps are ms; the muxer picks its own stream time base
_FRAME_SUFFIX = {Codec.JPG: "jpg", Codec.PNG: "png"}
# File names of tracks that follow no one participant.
_UNNAMED = {MediaType.AUDIO: "mixed", MediaType.VIDEO: "active", MediaType.DESKSHARE: "screen"}


class Track(Protocol):
    info: MediaFile
    duplicates: int

    def place(self, timestamp_ms: int, payload: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _note_frame(info: MediaFile, timestamp_ms: int, size: int) -> None:
    if info.first_ms is None:
        info.first_ms = timestamp_ms
    info.last_ms = max(info.last_ms or timestamp_ms, timestamp_ms)
    info.frames += 1
    info.bytes += size


class AudioTrack:
    """Decoded audio in a time-aligned WAV."""

    def __init__(self, path: Path, info: MediaFile, decode: PcmDecoder) -> None:
        self.info = info
        self.decode = decode
        self.wav = WavTrack(path, sample_rate=info.sample_rate or 16000, channels=info.channels or 1,
                            origin_ms=info.origin_ms)
        self.undecodable = 0

    @property
    def duplicates(self) -> int:
        return self.wav.duplicates

    def place(self, timestamp_ms: int, payload: bytes) -> None:
        try:
            pcm = self.decode(payload)
        except Exception:
            self.undecodable += 1
            return
        before = self.wav.end
        self.wav.place(timestamp_ms, pcm)
        if self.wav.end != before:
            _note_frame(self.info, timestamp_ms, len(pcm))
            self.info.bytes = 44 + self.wav.end

    def flush(self) -> None:
        self.wav.flush()

    def close(self) -> None:
        self.wav.close()


class RawTrack:
    """Packets kept as received: per packet, `<timestamp ms: u64><length: u32>` then the
    bytes, little-endian. The codec and its parameters are in the file's index entry."""

    _HEAD = struct.Struct("<QI")

    def __init__(self, path: Path, info: MediaFile) -> None:
        self.info = info
        self.duplicates = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the track grows
        self._pending: list[bytes] = []

    def place(self, timestamp_ms: int, payload: bytes) -> None:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            self.duplicates += 1
            return
        self._pending.append(self._HEAD.pack(timestamp_ms, len(payload)) + payload)
        _note_frame(self.info, timestamp_ms, self._HEAD.size + len(payload))

    def flush(self) -> None:
        if self._pending:
            self._file.write(b"".join(self._pending))
            self._pending.clear()
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


class H264Track:
    """Annex-B access units appended as they arrive, and `<timestamp ms> <bytes>` per unit
    in a side index; `close()` muxes both into an MP4 next to them."""

    def __init__(self, path: Path, info: MediaFile) -> None:
        self.info = info
        self.path = path
        self.duplicates = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open while the track grows
        self._index = open(index_path(path), "a", encoding="ascii")  # noqa: SIM115
        self._pending: list[bytes] = []
        self._pending_index: list[str] = []

    def place(self, timestamp_ms: int, payload: bytes) -> None:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            self.duplicates += 1
            return
        self._pending.append(payload)
        self._pending_index.append(f"{timestamp_ms} {len(payload)}\n")
        _note_frame(self.info, timestamp_ms, len(payload))

    def flush(self) -> None:
        if self._pending:
            self._file.write(b"".join(self._pending))
            self._index.write("".join(self._pending_index))
            self._pending.clear()
            self._pending_index.clear()
            self._file.flush()
            self._index.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()
            self._index.close()


class FramesTrack:
    """One image file per frame: `<number>_<offset ms>.<jpg|png>` in the track's folder."""

    def __init__(self, folder: Path, info: MediaFile, suffix: str) -> None:
        self.info = info
        self.folder = folder
        self.suffix = suffix
        self.duplicates = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._pending: list[tuple[str, bytes]] = []

    def place(self, timestamp_ms: int, payload: bytes) -> None:
        if self.info.last_ms is not None and timestamp_ms <= self.info.last_ms:
            self.duplicates += 1
            return
        offset = timestamp_ms - self.info.origin_ms
        self._pending.append((f"{self.info.frames + 1:06d}_{offset:09d}.{self.suffix}", payload))
        _note_frame(self.info, timestamp_ms, len(payload))

    def flush(self) -> None:
        for name, payload in self._pending:
            (self.folder / name).write_bytes(payload)
        self._pending.clear()

    def close(self) -> None:
        self.flush()


def index_path(h264: Path) -> Path:
    return h264.with_name(h264.name + ".idx")


def mux_h264_to_mp4(h264: Path, mp4: Path, origin_ms: int) -> int:
    """Copy the access units of `h264` into `mp4`, each at its own timestamp (relative to
    `origin_ms`, in ms). Returns the number of frames written. Nothing is re-encoded."""
    import av

    stamps = [int(line.split()[0]) for line in index_path(h264).read_text("ascii").splitlines() if line]
    tmp = mp4.with_name(mp4.name + ".part")
    written = 0
    with av.open(str(h264), format="h264") as source, av.open(str(tmp), "w", format="mp4") as target:
        src = source.streams.video[0]
        out = target.add_stream_from_template(src)
        out.time_base = MS
        last = -1
        for packet in source.demux(src):
            if packet.size == 0:
                continue
            # The parser yields one packet per access unit, in arrival order.
            at = stamps[written] - origin_ms if written < len(stamps) else last + 1
            at = max(at, last + 1)
            packet.pts = packet.dts = at
            packet.time_base = MS
            packet.stream = out
            target.mux(packet)
            last = at
            written += 1
    tmp.replace(mp4)
    return written


class MediaFiles:
    """Every media track of the running streams, under `data_dir/<meeting>/`."""

    def __init__(self, data_dir: Path, *, params_of: Callable[[Any, MediaType], Any],
                 on_file: Callable[[MediaFile], None] = lambda f: None,
                 counters: dict[str, int] | None = None) -> None:
        self.data_dir = data_dir
        self.params_of = params_of  # (stream, kind) -> the media parameters Zoom accepted
        self.on_file = on_file  # told of each new, and each finished, file
        self._tracks: dict[tuple[str, MediaType, UserId], Track | None] = {}
        self._origins: dict[str, int] = {}  # fixed once a stream's first track opens
        self._first_packet: dict[str, int] = {}  # what Zoom said, until then
        self._resumed: dict[tuple[str, str, str], MediaFile] = {}
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("media_unwritten", 0)
        self.counters.setdefault("media_duplicates", 0)

    def place(self, stream: object, kind: MediaType, user_id: UserId, user_name: str | None,
              timestamp_ms: int, payload: bytes) -> None:
        """Write one frame (per frame: keep it lean)."""
        key = (stream.stream_id, kind, user_id)  # type: ignore[attr-defined]
        track = self._tracks.get(key, False)
        if track is False:
            track = self._tracks[key] = self._open(stream, kind, self.params_of(stream, kind), user_id,
                                                   user_name, timestamp_ms)
        if track is None:
            self.counters["media_unwritten"] += 1
            return
        before = track.duplicates
        track.place(timestamp_ms, payload)
        if track.duplicates != before:
            self.counters["media_duplicates"] += 1

    def _open(self, stream: object, kind: MediaType, params: Any, user_id: UserId,
              user_name: str | None, timestamp_ms: int) -> Track | None:
        meeting_uuid: str = stream.meeting_uuid  # type: ignore[attr-defined]
        stream_id: str = stream.stream_id  # type: ignore[attr-defined]
        origin = self._origins.get(stream_id)
        if origin is None:
            # Zoom's first-packet time, unless a frame is stamped earlier still (the first
            # audio packet can predate the notice by a few ms): nothing may fall before 0.
            origin = self._origins[stream_id] = min(self._first_packet.pop(stream_id, timestamp_ms), timestamp_ms)
        default = Codec.L16 if kind == MediaType.AUDIO else Codec.JPG
        try:
            codec = Codec(params.codec or default)
        except ValueError:
            log.warning("stream %s: %s in unknown codec %r; not written", stream_id, KIND_NAMES[kind],
                        params.codec)
            return None
        sample_rate = channels = None
        if kind == MediaType.AUDIO:
            sample_rate = SampleRate(SampleRate.SR_16K if params.sample_rate is None else params.sample_rate).hz
            channels = params.channel or 1
        who = _UNNAMED[kind] if user_id in (0, None) else str(user_id)
        stem = f"{stream_id}-{KIND_NAMES[kind]}-{who}"
        folder = self.data_dir / quote(meeting_uuid, safe="")
        before = self._resumed.pop((stream_id, KIND_NAMES[kind], str(user_id)), None)
        if before is not None and before.format in ("wav", "raw", "h264", "frames"):
            return self._reopen(before)
        info = MediaFile(
            meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, kind=KIND_NAMES[kind],
            user_id=user_id, user_name=user_name, codec=CODEC_NAMES[codec], format="",
            path="", sample_rate=sample_rate, channels=channels, origin_ms=origin,
        )
        track: Track
        if kind == MediaType.AUDIO:
            decode = pcm_decoder(codec, sample_rate or 16000, channels or 1)
            if decode is not None:
                info.format, path = "wav", folder / f"{stem}.wav"
                track = AudioTrack(path, info, decode)
            else:
                info.format, path = "raw", folder / f"{stem}.{info.codec}.raw"
                track = RawTrack(path, info)
        elif codec == Codec.H264:
            info.format, path = "h264", folder / f"{stem}.h264"
            track = H264Track(path, info)
        elif codec in _FRAME_SUFFIX:
            info.format, path = "frames", folder / f"{stem}-{info.codec}"
            track = FramesTrack(path, info, _FRAME_SUFFIX[codec])
        else:
            log.warning("stream %s: %s in codec %s is not a video codec; not written",
                        stream_id, info.kind, info.codec)
            return None
        info.path = str(path.relative_to(self.data_dir))
        self.on_file(info)
        return track

    def _reopen(self, info: MediaFile) -> Track:
        path = self.data_dir / info.path
        info.complete = False
        if info.format == "wav":
            decode = pcm_decoder(Codec[info.codec.upper()], info.sample_rate or 16000, info.channels or 1)
            if decode is not None:
                return AudioTrack(path, info, decode)
        if info.format == "h264":
            return H264Track(path, info)
        if info.format == "frames":
            return FramesTrack(path, info, info.codec)
        return RawTrack(path, info)

    def set_origin(self, stream_id: str, timestamp_ms: int) -> None:
        """The stream's time zero, when Zoom says it (the first-packet timestamp event,
        sent on signaling before any media); otherwise the first frame sets it."""
        if stream_id not in self._origins:
            self._first_packet.setdefault(stream_id, timestamp_ms)

    def live(self, meeting_uuid: str) -> list[MediaFile]:
        return [t.info for t in self._tracks.values() if t is not None and t.info.meeting_uuid == meeting_uuid]

    def flush(self) -> None:
        for track in self._tracks.values():
            if track is not None:
                track.flush()

    def end_stream(self, stream_id: str) -> list[tuple[Track, MediaFile]]:
        """Close the stream's tracks; returns them so the caller can finish them (mux)
        away from the event loop."""
        closed = []
        for key in [k for k in self._tracks if k[0] == stream_id]:
            track = self._tracks.pop(key)
            if track is not None:
                track.close()
                closed.append((track, track.info))
        self._origins.pop(stream_id, None)
        self._first_packet.pop(stream_id, None)
        return closed

    def stream_ids(self) -> set[str]:
        return {k[0] for k in self._tracks}

    def finish(self, track: Track) -> MediaFile:
        """Blocking: mux H.264 to MP4. Returns the file's final record."""
        return finish_file(self.data_dir, track.info)

    def resume(self, stream_id: str, origin_ms: int, files: list[MediaFile]) -> None:
        """Carry on a stream's files after a restart: same time zero, same files (new
        frames are appended; those already there are recognised as duplicates)."""
        self._origins[stream_id] = origin_ms
        for f in files:
            self._resumed[(f.rtms_stream_id, f.kind, str(f.user_id))] = f


def finish_file(data_dir: Path, info: MediaFile) -> MediaFile:
    """Blocking: whatever a file needs once its stream has ended (H.264 to MP4)."""
    if info.format == "h264":
        h264 = data_dir / info.path
        mp4 = h264.with_suffix(".mp4")
        try:
            info.frames = mux_h264_to_mp4(h264, mp4, info.origin_ms)
            info.format, info.path = "mp4", str(mp4.relative_to(data_dir))
            info.bytes = mp4.stat().st_size
            h264.unlink()
            index_path(h264).unlink()
        except Exception:
            log.exception("could not mux %s to MP4; the Annex-B stream is kept", h264)
    info.complete = True
    return info
