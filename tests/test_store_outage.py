"""The store locked for 30 s in the middle of a meeting: records wait in the disk journal,
/healthz says degraded, a metric counts them, and all are written afterwards."""

from __future__ import annotations

import asyncio
import sqlite3

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.sinks.journal import Journal, JournalBatch
from rtms_gateway.sinks.records import TranscriptSegment

from .gateway_harness import GatewayWithSimulator


async def test_a_locked_store_sends_records_to_the_journal_and_loses_none(tmp_path):
    media = MediaType.TRANSCRIPT | MediaType.CHAT
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript,chat") as run:
        handle = run.simulator.start_meeting(duration=40.0, media=media)
        assert await handle.wait_streaming(15)
        await asyncio.sleep(1.0)
        lock = sqlite3.connect(tmp_path / "rtms.sqlite3", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        degraded = None
        try:
            async with run.http() as http:
                for _ in range(200):
                    body = (await http.get("/healthz")).json()
                    if body["journal_records"] > 0:
                        degraded = body
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(28.0)  # 30 s in all: more records arrive while the store stays locked
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert degraded is not None and degraded["status"] == "degraded" and not degraded["store_ok"]
        record = await handle.wait(60)
        await run.settle()
        async with run.http() as http:
            health = (await http.get("/healthz")).json()
            metrics = (await http.get("/metrics")).text
        stored = await run.gateway.store.transcript(handle.script.owner_id)
        chats = await run.gateway.store.chat(handle.script.owner_id)
    assert health["status"] == "ok" and health["journal_records"] == 0
    counters = run.gateway.pipeline.counters
    assert counters["journaled"] > 0 and counters["replayed"] == counters["journaled"]
    assert f"rtms_journaled_records_total {float(counters['journaled'])}" in metrics
    assert [s.text for s in stored] == [t.data for t in record.transcripts]
    assert len(chats) == record.sent.chat and len(chats) > 0


def test_the_journal_survives_a_torn_last_write(tmp_path):
    journal = Journal(tmp_path / "j.bin")
    seg = TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=1, user_name="a", text="hi", timestamp=1)
    journal.append(JournalBatch(segments=[seg]))
    journal.append(JournalBatch(segments=[seg, seg]))
    with open(tmp_path / "j.bin", "ab") as f:
        f.write(b"\x40\x00\x00\x00partial")  # a crash in the middle of an append
    again = Journal(tmp_path / "j.bin")
    assert again.records == 3 and [len(b) for b in again.batches()] == [1, 2]
    again.clear()
    assert not again and list(again.batches()) == []


def test_a_full_journal_refuses_instead_of_growing(tmp_path):
    import pytest

    from rtms_gateway.sinks.journal import JournalFull

    seg = TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=1, user_name="a", text="x" * 80,
                            timestamp=1)
    probe = Journal(tmp_path / "probe.bin")
    probe.append(JournalBatch(segments=[seg]))
    limit = probe.bytes * 3 // 2
    journal = Journal(tmp_path / "j.bin", max_bytes=limit)
    journal.append(JournalBatch(segments=[seg]))
    with pytest.raises(JournalFull):
        journal.append(JournalBatch(segments=[seg]))
    assert journal.records == 1 and journal.bytes <= limit


async def test_a_record_the_store_refuses_is_set_aside_and_holds_back_nothing(tmp_path):
    import msgspec

    from rtms_gateway.gateway.pipeline import Pipeline
    from rtms_gateway.sinks.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    pipeline = Pipeline(store, data_dir=tmp_path)

    def seg(i, ts):
        return TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=1, user_name="a",
                                 text=f"t{i}", timestamp=ts)

    try:
        # SQLite cannot hold an integer past 2**63: one such record in a batch of good ones
        pipeline._segments.extend([seg(0, 1), seg(1, 2**70), seg(2, 3)])
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["t0", "t2"]
        assert pipeline.counters["records_rejected"] == 1 and pipeline.counters["journaled"] == 0
        (line,) = (tmp_path / "rejected" / "records.jsonl").read_bytes().splitlines()
        kept = msgspec.json.decode(line)
        assert kept["kind"] == "segments" and kept["record"]["text"] == "t1" and "Overflow" in kept["error"]
        pipeline._segments.append(seg(3, 4))  # and the pipeline goes on
        await pipeline.flush()
        assert len(await store.transcript("m")) == 3
    finally:
        await pipeline.close()
        await store.close()


async def test_a_journaled_batch_stays_in_the_journal_until_all_of_it_is_in(tmp_path):
    """Replaying a journaled batch that holds a refused record, the disk fills up (SQLite's
    max_page_count) half-way through writing it record by record: the journal is kept, and
    once there is room again the rest is written, nothing lost."""
    from sqlalchemy import event, text

    from rtms_gateway.gateway.pipeline import Pipeline
    from rtms_gateway.sinks.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    cap: dict[str, int] = {}

    @event.listens_for(store.engine.sync_engine, "connect")
    def _cap_pages(dbapi_conn, _record):  # every new connection gets the cap the test sets
        if cap:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA max_page_count = {cap['pages']}")
            cursor.close()

    def seg(text_, ts):
        return TranscriptSegment(meeting_uuid="m", rtms_stream_id="s", user_id=1, user_name="a", text=text_,
                                 timestamp=ts)

    big = "x" * 200_000  # needs ~50 more pages than the cap leaves
    pipeline = Pipeline(store, data_dir=tmp_path, retry_interval=0.05)
    try:
        pipeline.journal.append(JournalBatch(segments=[seg("first", 1), seg("too big an integer", 2**70),
                                                       seg(big, 3)]))
        async with store.engine.connect() as conn:
            pages = (await conn.execute(text("PRAGMA page_count"))).scalar()
        cap["pages"] = pages + 4
        await store.engine.dispose()  # reconnect under the cap
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["first"]
        assert pipeline.counters["records_rejected"] == 1 and not pipeline.store_ok
        assert pipeline.journal.records == 3  # kept whole: what went in goes in again, idempotently
        cap.clear()
        await store.engine.dispose()  # room again
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["first", big]
        assert pipeline.journal.records == 0 and pipeline.store_ok
    finally:
        await pipeline.close()
        await store.close()
