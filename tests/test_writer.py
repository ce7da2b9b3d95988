"""The durable writer over a real SQLite store, and the journal it keeps while the store
is away: records wait on disk (or in memory with no journal), are written oldest first
once the store is back, and each journaled batch is read once, from a kept offset."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtms_gateway.gateway.intake import Intake
from rtms_gateway.gateway.writer import Writer
from rtms_gateway.metrics import GatewayMetrics, value_of
from rtms_gateway.sinks.journal import Journal, JournalBatch
from rtms_gateway.sinks.records import TranscriptSegment
from rtms_gateway.sinks.store import Store


class Stream:
    stream_id = "s"

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def seg(i: int) -> TranscriptSegment:
    return TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=1, user_name=None, text=f"t{i}",
                             timestamp=i)


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another process holds SQLite's write lock: every write waits, then fails."""
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


async def open_writer(tmp_path: Path, *, journal: bool = True) -> tuple[Store, Intake, Writer]:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    metrics = GatewayMetrics.create()
    intake = Intake(metrics)
    writer = Writer(store, intake, metrics, journal=Journal(tmp_path / "journal.bin") if journal else None,
                    rejected_path=tmp_path / "rejected.jsonl", retry_interval=0.01)
    return store, intake, writer


async def texts(store: Store) -> list[str]:
    return [s.text for s in await store.transcript("m")]


async def test_records_wait_in_the_journal_while_the_store_is_locked_then_go_in_in_order(tmp_path):
    store, intake, writer = await open_writer(tmp_path)
    try:
        for i in range(3):
            intake.add_segment(Stream(), seg(i))
        with locked(tmp_path / "db.sqlite3"):
            await writer.flush()
            assert intake.pending == 0 and not writer.store_ok
            assert writer.journal is not None and writer.journal.records == 3
            assert value_of(writer.metrics.journaled) == 3 and writer.health()["journal_records"] == 3
        intake.add_segment(Stream(), seg(3))
        await writer.flush()
        assert await texts(store) == ["t0", "t1", "t2", "t3"]
        assert writer.store_ok and writer.journal.records == 0 and not (tmp_path / "journal.bin").exists()
        assert value_of(writer.metrics.replayed) == 3 and value_of(writer.metrics.committed) == 4
    finally:
        await writer.close()
        await store.close()


async def test_without_a_journal_records_wait_in_memory(tmp_path):
    store, intake, writer = await open_writer(tmp_path, journal=False)
    try:
        intake.add_segment(Stream(), seg(0))
        with locked(tmp_path / "db.sqlite3"):
            await writer.flush()
            assert intake.pending == 1 and not writer.store_ok
        await writer.flush()
        assert await texts(store) == ["t0"] and intake.pending == 0 and writer.store_ok
    finally:
        await writer.close()
        await store.close()


async def test_updates_run_after_the_records_taken_before_them(tmp_path):
    store, intake, writer = await open_writer(tmp_path)
    seen: list[list[str]] = []

    async def look() -> None:
        seen.append(await texts(store))

    try:
        intake.add_segment(Stream(), seg(0))
        writer.run_in_order(look)
        await writer.flush()
        assert seen == [["t0"]] and writer.pending_updates == 0
    finally:
        await writer.close()
        await store.close()


def test_the_journal_reads_each_batch_once_from_where_the_last_one_ended(tmp_path):
    path = tmp_path / "journal.bin"
    journal = Journal(path)
    for i in range(3):
        journal.append(JournalBatch(segments=[seg(i)]))
    first = journal.oldest()
    assert first is not None and journal.oldest() is first  # a failed write reads nothing again
    journal.written()
    with open(path, "r+b") as f:  # what is before the offset is never read again
        f.write(b"\xff" * 8)
    assert [b.segments[0].text for b in journal.batches()] == ["t1", "t2"]
    second = journal.oldest()
    assert second is not None and second.segments[0].text == "t1" and journal.records == 2
    journal.written()
    journal.oldest()
    journal.written()
    assert journal.records == 0 and not path.exists() and journal.oldest() is None


def test_a_journal_torn_at_its_end_is_cut_so_what_is_appended_next_is_read(tmp_path):
    path = tmp_path / "journal.bin"
    Journal(path).append(JournalBatch(segments=[seg(0)]))
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # a crash in the middle of an append
    again = Journal(path)
    again.append(JournalBatch(segments=[seg(1)]))
    assert again.records == 2 and [b.segments[0].text for b in Journal(path).batches()] == ["t0", "t1"]
