"""Records the store could not take, kept on disk in arrival order until it can.

When a batch fails to commit (the database is down or locked), the pipeline appends it
here and carries on; every later flush first tries to replay the journal, oldest batch
first. Store writes are idempotent (a row's dedup key), so replaying a batch twice, after
a crash in the middle of a replay, stores it once. The file is bounded: when it is full
the records stay in memory, where the pipeline's watermark stops reading sockets.

Format: per batch, a 4-byte little-endian length, then the batch as JSON (which, unlike
msgpack, takes any integer a record may carry).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterator

import msgspec

from ..protocol.errors import RTMSError
from .records import ChatMessage, TimelineEvent, TranscriptSegment

_LENGTH = struct.Struct("<I")


class JournalBatch(msgspec.Struct, omit_defaults=True):
    segments: list[TranscriptSegment] = []
    chats: list[ChatMessage] = []
    events: list[TimelineEvent] = []

    def __len__(self) -> int:
        return len(self.segments) + len(self.chats) + len(self.events)


class JournalFull(RTMSError):
    """Appending would take the journal past its bound."""


class Journal:
    def __init__(self, path: Path, *, max_bytes: int = 1 << 30) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(JournalBatch).decode
        path.parent.mkdir(parents=True, exist_ok=True)
        self.records = sum(len(b) for b in self.batches())  # left by an earlier run
        self.appended_total = 0

    @property
    def bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def __bool__(self) -> bool:
        return self.records > 0

    def append(self, batch: JournalBatch) -> None:
        """Durably add `batch` (fsync: the store being down is when a crash costs most)."""
        body = self._encode(batch)
        if self.bytes + len(body) + _LENGTH.size > self.max_bytes:
            raise JournalFull(f"journal {self.path} would pass {self.max_bytes} bytes")
        with open(self.path, "ab") as f:
            f.write(_LENGTH.pack(len(body)) + body)
            f.flush()
            os.fsync(f.fileno())
        self.records += len(batch)
        self.appended_total += len(batch)

    def batches(self) -> Iterator[JournalBatch]:
        """Every batch, oldest first; a torn last batch (crash while appending) is skipped."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        at = 0
        while at + _LENGTH.size <= len(data):
            (size,) = _LENGTH.unpack_from(data, at)
            body = data[at + _LENGTH.size: at + _LENGTH.size + size]
            if len(body) < size:
                break
            try:
                yield self._decode(body)
            except msgspec.DecodeError:
                break
            at += _LENGTH.size + size

    def clear(self) -> None:
        """Everything in the journal is in the store now."""
        self.path.unlink(missing_ok=True)
        self.records = 0
