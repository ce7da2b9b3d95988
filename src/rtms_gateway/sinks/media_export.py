"""Media files as the API and the CLI hand them out: descriptions, choice, where they
are, ZIPs of frames. `locate` and `frames_zip` touch the disk: the API runs them in
threads (`frames_zip` as a sync iterator, which Starlette reads in its thread pool)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .paths import MediaPathError, media_path
from .records import MediaFile, is_nobody
from .tracks import FRAME_NAME

MEDIA_TYPES = {"wav": "audio/wav", "mp4": "video/mp4", "h264": "video/h264",
               "raw": "application/octet-stream", "frames": "application/zip"}
EXPORT_FORMATS = {"wav": "audio", "mp4": "video"}  # export format -> kinds it covers


def duration_s(f: MediaFile) -> float:
    """Seconds from the stream's time zero to the end of the file's media."""
    if f.format == "wav" and f.sample_rate and f.channels:
        return round(max(0, f.bytes - 44) / (f.sample_rate * f.channels * 2), 3)
    return round(f.duration_s, 3)


def media_json(f: MediaFile, url: str) -> dict[str, Any]:
    return {
        "id": f.id, "rtms_stream_id": f.rtms_stream_id, "kind": f.kind, "user_id": f.user_id,
        "user_name": f.user_name, "codec": f.codec, "format": f.format, "path": f.path,
        "sample_rate": f.sample_rate, "channels": f.channels, "frames": f.frames, "bytes": f.bytes,
        "duration_s": duration_s(f),
        "starts_at_s": round((f.first_ms - f.origin_ms) / 1000, 3) if f.first_ms is not None else None,
        "origin_ms": f.origin_ms, "complete": f.complete, "url": url,
    }


def pick_files(files: list[MediaFile], fmt: str, *, kind: str | None = None,
               participant: str | None = None) -> list[MediaFile]:
    """The files an export in `fmt` covers: audio for wav, video (or `kind`) for mp4;
    the mixed audio unless a participant is named."""
    wanted_kind = kind or ("audio" if fmt == "wav" else "video")
    chosen = [f for f in files if f.format == fmt and f.kind == wanted_kind]
    if participant is not None:
        return [f for f in chosen if str(f.user_id) == participant or f.user_name == participant]
    if fmt == "wav":
        mixed = [f for f in chosen if is_nobody(f.user_id)]
        return mixed or chosen
    return chosen


class _Chunks(io.RawIOBase):
    """A write-only stream that hands its bytes on in pieces (ZIP streamed as it is built)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> list[bytes]:
        parts, self.parts = self.parts, []
        return parts


def locate(data_dir: Path, relative: str) -> tuple[Path, bool] | None:
    """Blocking (it resolves links and looks at the disk): where a file recorded at
    `relative` is, and whether it is a folder of frames; None if it is not inside the data
    directory or not there at all."""
    try:
        path = media_path(data_dir, relative)
    except MediaPathError:
        return None
    if not path.exists():
        return None
    return path, path.is_dir()


IMAGE_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


def frame_files(folder: Path) -> list[tuple[int, int, Path]]:
    """Blocking: the images of a folder of numbered frames as (number, offset ms from the
    stream's time zero, path), in order."""
    found = []
    for path in folder.iterdir():
        m = FRAME_NAME.fullmatch(path.name)
        if m and path.suffix in IMAGE_TYPES:
            found.append((int(m[1]), int(m[2]), path))
    return sorted(found)


def frames_zip(folder: Path) -> Iterator[bytes]:
    """The numbered frames of `folder` as one ZIP (stored: images are compressed already)."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, arcname=f"{folder.name}/{path.name}")
            yield from sink.take()
    yield from sink.take()
