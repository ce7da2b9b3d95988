"""Media to files: one track per (stream, kind, participant), time-aligned to the stream.

Every track of a stream shares one time zero (`origin_ms`: Zoom's first-packet timestamp,
or the first media timestamp seen), so offset N in any file is the same moment. The tracks
themselves are in `tracks`; this module owns where their files go and which frames reach
them:

- names: `<data dir>/<meeting>/<stream>-<kind>-<participant>...`, each part from
  `paths.safe_name` (no wire value is a path part as it is), each path checked by
  `paths.media_path` before it is opened;
- time: a frame stamped implausibly far ahead of its stream's own clock
  (`media_clock.StreamClock`) is refused and counted before it can open, move or grow
  anything.

A track's `info` (a `MediaFile` record) is what the store indexes and the API lists.

`place` runs on the event loop and only buffers; `take_writes` and `end_stream` hand the
file work over as blocking jobs, which the pipeline runs in its media thread, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..metrics import GatewayMetrics
from ..protocol.constants import Codec, MediaType, SampleRate
from .audio import DUPLICATE
from .audio_codecs import CODEC_NAMES, pcm_decoder
from .media_clock import LEAD_MS, StreamClock
from .paths import MediaPathError, loggable, media_path, safe_name
from .records import MediaFile, UserId
from .tracks import (
    AudioTrack,
    FramesTrack,
    H264Track,
    RawTrack,
    Track,
    index_path,
    mux_h264_to_mp4,
    repair_h264,
)

log = logging.getLogger(__name__)

KIND_NAMES = {MediaType.AUDIO: "audio", MediaType.VIDEO: "video", MediaType.DESKSHARE: "share"}
_FRAME_SUFFIX = {Codec.JPG: "jpg", Codec.PNG: "png"}
# File names of tracks that follow no one participant.
_UNNAMED = {MediaType.AUDIO: "mixed", MediaType.VIDEO: "active", MediaType.DESKSHARE: "screen"}


class MediaFiles:
    """Every media track of the running streams, under `data_dir/<meeting>/`."""

    def __init__(self, data_dir: Path, *, params_of: Callable[[Any, MediaType], Any],
                 on_file: Callable[[MediaFile], None] = lambda f: None,
                 metrics: GatewayMetrics | None = None,
                 clock: Callable[[], StreamClock] = StreamClock) -> None:
        self.data_dir = data_dir.resolve()
        self.params_of = params_of  # (stream, kind) -> the media parameters Zoom accepted
        self.on_file = on_file  # told of each new, and each finished, file
        self.new_clock = clock
        # (track, its stream's clock); the track is None where the kind cannot be written
        self._tracks: dict[tuple[str, MediaType, UserId], tuple[Track | None, StreamClock]] = {}
        self._clocks: dict[str, StreamClock] = {}
        self._origins: dict[str, int] = {}  # fixed once a stream's first track opens
        self._first_packet: dict[str, int] = {}  # what Zoom said, until then
        self._resumed: dict[tuple[str, str, str], MediaFile] = {}
        self.metrics = metrics if metrics is not None else GatewayMetrics.create()
        self.buffered = 0  # bytes placed since the last `take_writes` (the caller bounds it)

    def place(self, stream: object, kind: MediaType, user_id: UserId, user_name: str | None,
              timestamp_ms: int, payload: bytes) -> None:
        """Write one frame (per frame: keep it lean)."""
        key = (stream.stream_id, kind, user_id)  # type: ignore[attr-defined]
        entry = self._tracks.get(key)
        if entry is None:
            clock = self._clocks.get(key[0])
            if clock is None:
                clock = self._clocks[key[0]] = self.new_clock()
            if not clock.admits(timestamp_ms):  # before it may open a file or set time zero
                self._refuse(key[0], clock, timestamp_ms)
                return
            entry = self._tracks[key] = self._open(stream, kind, user_id, user_name, timestamp_ms, clock)
        track, clock = entry
        if track is None:
            self.metrics.media_unwritten.inc()
            return
        if timestamp_ms > clock.limit_ms and not clock.admits(timestamp_ms):
            self._refuse(key[0], clock, timestamp_ms)
            return
        outcome = track.place(timestamp_ms, payload)
        if outcome:
            (self.metrics.media_duplicates if outcome == DUPLICATE else self.metrics.media_unwritten).inc()
        else:
            self.buffered += len(payload)

    def _refuse(self, stream_id: str, clock: StreamClock, timestamp_ms: int) -> None:
        clock.refused += 1
        self.metrics.media_refused.inc()
        if clock.refused == 1 or clock.refused % 1000 == 0:  # a broken sender may send thousands
            log.warning("stream %s: media frame stamped %.0f s ahead of the stream's clock; refused (%d so far)",
                        loggable(stream_id), clock.ahead_s(timestamp_ms), clock.refused)

    def _open(self, stream: object, kind: MediaType, user_id: UserId, user_name: str | None,
              timestamp_ms: int, clock: StreamClock) -> tuple[Track | None, StreamClock]:
        stream_id: str = stream.stream_id  # type: ignore[attr-defined]
        try:
            return self._new_track(stream, kind, user_id, user_name, timestamp_ms), clock
        except (MediaPathError, OSError) as exc:
            log.warning("stream %s: %s track not written: %s", loggable(stream_id), KIND_NAMES[kind], exc)
            return None, clock

    def _origin(self, stream_id: str, timestamp_ms: int) -> int:
        origin = self._origins.get(stream_id)
        if origin is None:
            # Zoom's first-packet time, unless a frame is stamped earlier still (the first
            # audio packet can predate the notice by a few ms): nothing may fall before 0.
            # A notice further back than Zoom's buffer reaches is not believed.
            noticed = self._first_packet.pop(stream_id, timestamp_ms)
            if timestamp_ms - noticed > LEAD_MS:
                noticed = timestamp_ms
            origin = self._origins[stream_id] = min(noticed, timestamp_ms)
        return origin

    def _new_track(self, stream: object, kind: MediaType, user_id: UserId, user_name: str | None,
                   timestamp_ms: int) -> Track | None:
        meeting_uuid: str = stream.meeting_uuid  # type: ignore[attr-defined]
        stream_id: str = stream.stream_id  # type: ignore[attr-defined]
        before = self._resumed.pop((stream_id, KIND_NAMES[kind], str(user_id)), None)
        if before is not None and before.format in ("wav", "raw", "h264", "frames"):
            return self._reopen(before)
        params = self.params_of(stream, kind)
        default = Codec.L16 if kind == MediaType.AUDIO else Codec.JPG
        try:
            codec = Codec(params.codec or default)
        except ValueError:
            log.warning("stream %s: %s in unknown codec %r; not written", loggable(stream_id), KIND_NAMES[kind],
                        params.codec)
            return None
        sample_rate = channels = None
        if kind == MediaType.AUDIO:
            sample_rate = SampleRate(SampleRate.SR_16K if params.sample_rate is None else params.sample_rate).hz
            channels = params.channel or 1
        who = _UNNAMED[kind] if user_id in (0, None) else safe_name(user_id)
        stem = f"{safe_name(stream_id)}-{KIND_NAMES[kind]}-{who}"
        folder = safe_name(meeting_uuid)
        info = MediaFile(
            meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, kind=KIND_NAMES[kind],
            user_id=user_id, user_name=user_name, codec=CODEC_NAMES[codec], format="",
            path="", sample_rate=sample_rate, channels=channels, origin_ms=self._origin(stream_id, timestamp_ms),
        )
        track: Track
        if kind == MediaType.AUDIO:
            decode = pcm_decoder(codec, sample_rate or 16000, channels or 1)
            if decode is not None:
                info.format, info.path = "wav", f"{folder}/{stem}.wav"
                track = AudioTrack(media_path(self.data_dir, info.path), info, decode)
            else:
                info.format, info.path = "raw", f"{folder}/{stem}.{info.codec}.raw"
                track = RawTrack(media_path(self.data_dir, info.path), info)
        elif codec == Codec.H264:
            info.format, info.path = "h264", f"{folder}/{stem}.h264"
            track = H264Track(media_path(self.data_dir, info.path), info)
        elif codec in _FRAME_SUFFIX:
            info.format, info.path = "frames", f"{folder}/{stem}-{info.codec}"
            track = FramesTrack(media_path(self.data_dir, info.path), info, _FRAME_SUFFIX[codec])
        else:
            log.warning("stream %s: %s in codec %s is not a video codec; not written",
                        loggable(stream_id), info.kind, info.codec)
            return None
        self.on_file(info)
        return track

    def _reopen(self, info: MediaFile) -> Track:
        """A file carried on after a restart, where an earlier run put it (inside the data
        directory, or not at all)."""
        path = media_path(self.data_dir, info.path)
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
        return [t.info for t, _ in self._tracks.values() if t is not None and t.info.meeting_uuid == meeting_uuid]

    def take_writes(self) -> list[Callable[[], None]]:
        """On the event loop: what every track buffered, as blocking writes for the
        writer thread (run them in this order)."""
        writes = []
        self.buffered = 0
        for track, _ in self._tracks.values():
            if track is not None:
                write = track.take()
                if write is not None:
                    writes.append(write)
        return writes

    def flush(self) -> None:
        """Blocking: write what every track buffered, here and now."""
        for write in self.take_writes():
            write()

    def end_stream(self, stream_id: str) -> list[tuple[Track, Callable[[], None]]]:
        """Let go of the stream's tracks: each with the blocking job that writes its last
        frames and closes it, for the writer thread, before the track is finished (mux)."""
        closed = []
        for key in [k for k in self._tracks if k[0] == stream_id]:
            track, _ = self._tracks.pop(key)
            if track is not None:
                closed.append((track, track.closing()))
        self._origins.pop(stream_id, None)
        self._first_packet.pop(stream_id, None)
        self._clocks.pop(stream_id, None)
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
    """Blocking: whatever a file needs once its stream has ended (H.264 to MP4). A file
    recorded outside the data directory is not touched."""
    if info.format == "h264":
        try:
            h264 = media_path(data_dir, info.path)
            repair_h264(h264, info)  # after a crash the two files may disagree
            mp4 = h264.with_suffix(".mp4")
            info.frames = mux_h264_to_mp4(h264, mp4, info.origin_ms)
            info.format, info.path = "mp4", str(mp4.relative_to(data_dir.resolve()))
            info.bytes = mp4.stat().st_size
            h264.unlink()
            index_path(h264).unlink()
        except MediaPathError as exc:
            log.warning("media file %s not finished: %s", info.id, exc)
        except Exception:
            log.exception("could not mux %s to MP4; the Annex-B stream is kept", loggable(info.path, 200))
    info.complete = True
    return info
