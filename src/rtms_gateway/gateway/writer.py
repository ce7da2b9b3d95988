"""The durable writer: what intake holds, committed to the store in batches, in order.

One task commits whatever accumulated in one transaction, then waits `commit_interval`
seconds before the next, so a segment is durable (and live) within milliseconds of
arriving and a busy gateway still writes in batches; ordered store operations
(meeting and stream updates, media file rows) run in the same task, after the records
taken before them.

The store fails in one of two ways (`sinks.store_errors`). While it is unavailable,
records wait in a journal on disk (`sinks.journal`) and are written, oldest first, once
it is back; `health()` says so. A batch it refuses for what it holds is written record by
record, and the records it still refuses are set aside in a file, counted. The journal
and that file are written by a thread of their own (`sinks.disk_thread`), one call at a
time, each awaited: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from ..metrics import GatewayMetrics
from ..protocol.errors import RecordRefused, StoreError, StoreUnavailable
from ..sinks.disk_thread import DiskThread
from ..sinks.journal import Journal, JournalBatch, JournalFull
from ..sinks.store import Store
from .intake import Intake

log = logging.getLogger(__name__)

StoreOp = Callable[[], Awaitable[Any]]
_KINDS = ("segments", "chats", "events")  # JournalBatch's fields, in write order


class Writer:
    def __init__(self, store: Store, intake: Intake, metrics: GatewayMetrics, *,
                 journal: Journal | None = None, rejected_path: Path | None = None,
                 commit_interval: float = 0.005, retry_interval: float = 0.5) -> None:
        self.store = store
        self.intake = intake
        self.metrics = metrics
        self.journal = journal
        self.rejected_path = rejected_path  # where refused records are set aside
        self.commit_interval = commit_interval
        self.retry_interval = retry_interval
        self.store_ok = True
        self._disk = DiskThread("journal")
        self._ops: list[StoreOp] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._flush_lock = asyncio.Lock()

    def wake(self) -> None:
        self._wakeup.set()

    def run_in_order(self, op: StoreOp) -> None:
        """Schedule a store operation to run in the writer task, after what is pending."""
        self._ops.append(op)
        self._wakeup.set()

    @property
    def pending_updates(self) -> int:
        return len(self._ops)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pipeline-writer")

    async def _run(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:  # what is pending stays pending: the task must go on
                log.exception("writer: a flush failed; trying again")
                await self._retry_later()
            if not self._stopping:
                await asyncio.sleep(self.commit_interval)

    async def flush(self) -> None:
        """Commit everything pending. While the store fails, records go to the journal on
        disk (or stay in memory if there is none, or it is full) and updates wait; both
        are written, in order, once the store is back."""
        async with self._flush_lock:  # the task's and a caller's flush: one at a time
            await self._flush()

    async def _flush(self) -> None:
        if self.journal is not None and self.journal.records and not await self._replay_journal():
            await self._park(self.intake.take())
            self.intake.settled()
            await self._retry_later()
            return
        while self._ops or self.intake.pending:
            committed = await self._commit(self.intake.take())
            self.intake.settled()
            if not committed or not await self._run_ops():
                await self._retry_later()
                return
        self._store_back()

    async def _commit(self, batch: JournalBatch) -> bool:
        """Write a batch taken from intake; False (what is left parked) if the store is away."""
        if not len(batch):
            return True
        try:
            await self.store.write_batch(segments=batch.segments, chats=batch.chats, events=batch.events)
        except StoreUnavailable as exc:
            await self._park(batch)
            self._store_failed(exc)
            return False
        except RecordRefused:
            return await self._salvage(batch, park_the_rest=True)
        self.metrics.committed.inc(len(batch))
        return True

    async def _run_ops(self) -> bool:
        """The ordered updates; False (the rest kept) if the store is away."""
        while self._ops:
            op = self._ops[0]
            try:
                await op()
            except StoreUnavailable as exc:
                self._store_failed(exc)
                return False
            except RecordRefused as exc:  # the store is there and refuses it: retrying cannot help
                self.metrics.updates_failed.inc()
                log.error("store refused an update (%s); skipped", exc)
            del self._ops[0]
        return True

    async def _salvage(self, batch: JournalBatch, *, park_the_rest: bool) -> bool:
        """A batch the store refused for its data holds a record it cannot take (a poison
        record): write the records one by one and set aside those refused, so one bad
        record never holds back the rest. False if the store went away meanwhile (the
        rest parked if asked; a journaled batch stays in the journal anyway)."""
        log.warning("store refused a batch of %d records for its data; writing them one by one", len(batch))
        records = [(kind, r) for kind in _KINDS for r in getattr(batch, kind)]
        for n, (kind, record) in enumerate(records):
            try:
                await self.store.write_batch(**{kind: [record]})
                self.metrics.committed.inc()
            except RecordRefused as exc:
                await self._set_aside(kind, record, exc)
            except StoreUnavailable as exc:
                if park_the_rest:
                    rest = JournalBatch()
                    for later_kind, later in records[n:]:
                        getattr(rest, later_kind).append(later)
                    await self._park(rest)
                self._store_failed(exc)
                return False
        return True

    async def _set_aside(self, kind: str, record: object, exc: StoreError) -> None:
        """A record the store refuses: counted, logged (the error's code, never the
        record), and kept in a file for a person with the driver's own words."""
        self.metrics.records_rejected.inc()
        reason = f"{type(exc).__name__}: {exc}"
        log.error("store refused a %s record (%s); kept in rejected/records.jsonl", kind, reason)
        path = self.rejected_path
        if path is None:
            return
        entry = msgspec.json.encode({"kind": kind, "error": reason, "detail": exc.detail, "record": record})
        try:
            await self._disk.run(partial(_append_line, path, entry))
        except OSError as error:
            log.error("cannot keep a refused %s record in %s (%s)", kind, path, error)

    async def _park(self, batch: JournalBatch) -> None:
        """Records the store cannot take now: to the journal, else back in memory."""
        if not len(batch):
            return
        if self.journal is not None:
            journal = self.journal
            try:
                await self._disk.run(lambda: journal.append(batch))
                self.metrics.journaled.inc(len(batch))
                return
            except (JournalFull, OSError) as exc:
                self.metrics.journal_full.inc()
                log.error("cannot journal %d records (%s); holding them in memory", len(batch), exc)
        self.intake.put_back(batch)

    async def _replay_journal(self) -> bool:
        """Write the journal's batches, oldest first, each read once from where the last
        one ended; False if the store went away (the batch it was on stays)."""
        journal = self.journal
        assert journal is not None
        replayed = 0
        while True:
            try:
                batch = await self._disk.run(journal.oldest)
            except OSError as exc:
                log.error("cannot read the journal (%s); trying again later", exc)
                return False
            if batch is None:
                break
            try:
                await self.store.write_batch(segments=batch.segments, chats=batch.chats, events=batch.events)
            except StoreUnavailable as exc:
                self._store_failed(exc)
                return False
            except RecordRefused:
                # The batch stays in the journal until all of it is in: what was written
                # of it is written again later, idempotently.
                if not await self._salvage(batch, park_the_rest=False):
                    return False
            try:
                await self._disk.run(journal.written)
            except OSError as exc:  # it is in the store; it may be written again, idempotently
                log.error("cannot empty the journal (%s)", exc)
            replayed += len(batch)
            self.metrics.replayed.inc(len(batch))
            self.metrics.committed.inc(len(batch))
        if replayed:
            log.info("store is back: %d journaled records written", replayed)
        return True

    def _store_failed(self, exc: StoreUnavailable) -> None:
        self.metrics.commit_errors.inc()
        if self.store_ok:
            self.store_ok = False
            log.error("store unavailable (%s); records wait in the %s until it is back",
                      exc, "journal" if self.journal is not None else "memory")

    def _store_back(self) -> None:
        if not self.store_ok:
            self.store_ok = True
            log.info("store writes succeed again")

    async def _retry_later(self) -> None:
        await asyncio.sleep(self.retry_interval)
        self._wakeup.set()

    def health(self) -> dict[str, Any]:
        return {
            "store_ok": self.store_ok,
            "pending_records": self.intake.pending,
            "pending_updates": len(self._ops),
            "journal_records": self.journal.records if self.journal is not None else 0,
            "journal_bytes": self.journal.bytes if self.journal is not None else 0,
        }

    async def stop(self) -> None:
        """Stop the task after its current batch (a cancelled batch would be lost);
        `flush` still commits what is left."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """Stop, commit what is left, and end the journal's thread."""
        await self.stop()
        await self.flush()
        await asyncio.to_thread(self._disk.close)


def _append_line(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line + b"\n")
