"""File names from wire values, and the one check every media path passes before it is opened.

Zoom's ids (meeting UUID, stream id, user id) are names we did not choose: a UUID holds `/`,
`+` and `=`, and a forged or broken one can be `..`, an absolute path, control characters or
10 KB long. None becomes a path part as it is. `safe_name` gives a bounded name made of safe
characters: the value itself when it is short, lowercase letters and digits (hex stream ids,
numeric user ids), else a readable prefix and a hash of the whole value. Plain names hold no
`~` and hashed ones always do, so two different ids never share a name (on case-insensitive
file systems too), and an id always gets the same name.

`media_path` resolves a path under the data directory (symlinks included) and refuses one that
ends up outside it; stored paths from earlier versions (percent-encoded folders) pass as long
as they stay inside.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..protocol.errors import RTMSError

PLAIN_MAX = 64  # a plain name (lowercase letters, digits) longer than this is hashed too
PREFIX_MAX = 24  # characters of the readable prefix of a hashed name
HASH_HEX = 16  # 64 bits of SHA-256
_PLAIN = re.compile(r"[a-z0-9]+")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")


class MediaPathError(RTMSError):
    """A media path would lie outside the data directory (or cannot be a path at all)."""


def safe_name(value: object) -> str:
    """A file-name part for `value`: at most PREFIX_MAX + 1 + HASH_HEX characters of
    `[A-Za-z0-9_~-]`, never empty, never `.` or `..`, the same for the same value."""
    text = str(value)
    if len(text) <= PLAIN_MAX and _PLAIN.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    prefix = _UNSAFE_RUN.sub("_", text[:PREFIX_MAX]).lstrip("-")  # no name reads as an option
    return f"{prefix}~{digest}"


def media_path(data_dir: Path, relative: str | os.PathLike[str]) -> Path:
    """`data_dir / relative`, resolved, provided it lies inside `data_dir` (resolved too).
    Raises MediaPathError otherwise: `..` parts, an absolute path, a symlink leading out,
    or a NUL byte."""
    try:
        root = data_dir.resolve()
        path = (root / relative).resolve()
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise MediaPathError(f"not a usable media path: {exc}") from None
    if path == root or not path.is_relative_to(root):
        raise MediaPathError("media path lies outside the data directory")
    return path


def loggable(value: object, limit: int = 40) -> str:
    """A wire value fit for a log line: control characters escaped, cut to `limit`."""
    text = repr(str(value))[1:-1]
    return text if len(text) <= limit else text[:limit] + "…"
