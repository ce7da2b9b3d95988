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
from collections.abc import Iterator
from pathlib import Path

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
    """Blocking file I/O throughout: the pipeline's writer calls it from a worker thread,
    one call at a time (that order is the journal's order)."""

    def __init__(self, path: Path, *, max_bytes: int = 1 << 30) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(JournalBatch).decode
        path.parent.mkdir(parents=True, exist_ok=True)
        self.records = 0  # not yet in the store
        self.bytes = 0  # the file's size
        self._read_at = 0  # where the oldest batch not yet in the store starts
        self._next: tuple[JournalBatch, int] | None = None  # that batch, read, and where it ends
        self._open_existing()

    def _open_existing(self) -> None:
        """Count what an earlier run left; a torn last batch (a crash while appending) is
        cut off, so what is appended next can be read back."""
        end = 0
        for batch, end in self._scan():  # noqa: B007 - where the last whole batch ends is read below
            self.records += len(batch)
        try:
            if self.path.stat().st_size > end:
                with open(self.path, "r+b") as f:
                    f.truncate(end)
        except FileNotFoundError:
            pass
        self.bytes = end

    def _scan(self, at: int = 0) -> Iterator[tuple[JournalBatch, int]]:
        """Each whole batch from offset `at` on, with the offset where it ends."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
        except FileNotFoundError:
            return
        with f:
            f.seek(at)
            while True:
                head = f.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    return
                (size,) = _LENGTH.unpack(head)
                body = f.read(size)
                if len(body) < size:
                    return
                try:
                    batch = self._decode(body)
                except msgspec.DecodeError:
                    return
                at += _LENGTH.size + size
                yield batch, at

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
        self.bytes += _LENGTH.size + len(body)
        self.records += len(batch)

    def oldest(self) -> JournalBatch | None:
        """The oldest batch not yet in the store (read once, from the kept offset, however
        often the store fails to take it), or None if there is none."""
        if self._next is None and self.records:
            self._next = next(self._scan(self._read_at), None)
        return self._next[0] if self._next is not None else None

    def written(self) -> None:
        """The batch `oldest()` gave is in the store: move past it; once every batch is
        in, the file is emptied."""
        if self._next is None:
            return
        batch, self._read_at = self._next
        self._next = None
        self.records -= len(batch)
        if self._read_at >= self.bytes:
            self.clear()

    def batches(self) -> Iterator[JournalBatch]:
        """Every batch not yet in the store, oldest first."""
        for batch, _ in self._scan(self._read_at):
            yield batch

    def clear(self) -> None:
        """Everything in the journal is in the store now."""
        self.path.unlink(missing_ok=True)
        self.records = self.bytes = self._read_at = 0
        self._next = None
