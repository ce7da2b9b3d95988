"""The store away in the middle of a meeting (SQLite locked; PostgreSQL cut off by a proxy)
until records that arrived meanwhile wait in the disk journal: /healthz says degraded, a
metric counts them, and all are written afterwards. Records the store refuses hold back
nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3

import pytest

from rtms_gateway.metrics import GatewayMetrics, value_of
from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.scenario import build_meeting
from rtms_gateway.sinks.journal import Journal, JournalBatch
from rtms_gateway.sinks.records import TranscriptSegment

from . import postgres
from .gateway_harness import GatewayWithSimulator, chat_as_it_stands
from .serve_process import eventually
from .store_cases import long_id, stored
from .tcp_proxy import TcpProxy


async def test_a_locked_store_sends_records_to_the_journal_and_loses_none(tmp_path):
    media = MediaType.TRANSCRIPT | MediaType.CHAT
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript,chat") as run:
        handle = run.simulator.start_meeting(duration=40.0, media=media)
        assert await handle.wait_streaming(15)
        assert await eventually(lambda: value_of(run.gateway.metrics.committed) > 0)  # into the meeting
        lock = sqlite3.connect(tmp_path / "rtms.sqlite3", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            async with run.http() as http:
                degraded = await _poll_health(http, lambda b: b["journal_records"] > 0)
                # More records arrive, and are journaled, while the store stays locked.
                await _poll_health(http, lambda b: b["journal_records"] > degraded["journal_records"])
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert degraded["status"] == "degraded" and not degraded["store_ok"]
        record = await handle.wait(60)
        await run.settle()
        async with run.http() as http:
            health = (await http.get("/healthz")).json()
            metrics = (await http.get("/metrics")).text
        stored = await run.gateway.store.transcript(handle.script.owner_id)
        chats = await run.gateway.store.chat(handle.script.owner_id)
    assert health["status"] == "ok" and health["journal_records"] == 0
    counters = _counts(run.gateway.metrics)
    assert counters["journaled"] > 0 and counters["replayed"] == counters["journaled"]
    assert f"rtms_journaled_records_total {float(counters['journaled'])}" in metrics
    assert [s.text for s in stored] == [t.data for t in record.transcripts]
    assert [c.text for c in chats] == chat_as_it_stands(record.chat) and len(chats) > 0


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
        pipeline.intake.put_back(JournalBatch(segments=[seg(0, 1), seg(1, 2**70), seg(2, 3)]))
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["t0", "t2"]
        assert value_of(pipeline.metrics.records_rejected) == 1 and value_of(pipeline.metrics.journaled) == 0
        (line,) = (tmp_path / "rejected" / "records.jsonl").read_bytes().splitlines()
        kept = msgspec.json.decode(line)
        assert kept["kind"] == "segments" and kept["record"]["text"] == "t1" and "Overflow" in kept["error"]
        pipeline.intake.put_back(JournalBatch(segments=[seg(3, 4)]))  # and the pipeline goes on
        await pipeline.flush()
        assert len(await store.transcript("m")) == 3
    finally:
        await pipeline.close()
        await store.close()


def _journaled_for(run, meeting_uuid: str) -> bool:
    """Whether the journal holds a transcript segment or chat message of `meeting_uuid`."""
    return any(r.meeting_uuid == meeting_uuid for batch in run.gateway.pipeline.journal.batches()
               for r in (*batch.segments, *batch.chats))


async def _poll_health(http, predicate, timeout: float = 30.0) -> dict:
    """The first /healthz body `predicate` accepts; fails after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        body = (await http.get("/healthz")).json()
        if predicate(body):
            return body
        assert loop.time() < end, f"/healthz never got there: {body}"
        await asyncio.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.skipif(not postgres.URL, reason="RTMS_TEST_POSTGRES_URL is not set")
async def test_a_postgres_server_cut_off_mid_meeting_loses_nothing(tmp_path, caplog):
    """Between the gateway and PostgreSQL, a proxy the test switches off: open connections
    cut, new ones refused, in the middle of a meeting; a second meeting starts meanwhile
    (its webhook is acted on although the store cannot say whether it was seen), and the
    proxy comes back once records of both wait in the journal."""
    media = MediaType.TRANSCRIPT | MediaType.CHAT
    proxy = TcpProxy(*postgres.target())
    port = await proxy.start()
    caplog.set_level(logging.WARNING, logger="rtms_gateway")
    try:
        async with postgres.own_schema() as schema, GatewayWithSimulator(
                tmp_path, RTMS_MEDIA="transcript,chat", RTMS_DATABASE_URL=postgres.url_via(port),
                RTMS_DATABASE_SCHEMA=schema) as run:
            first = run.simulator.start_meeting(duration=40.0, media=media)
            assert await first.wait_streaming(15)
            assert await eventually(lambda: value_of(run.gateway.metrics.committed) > 0)  # into the meeting
            await proxy.switch_off()
            try:
                async with run.http() as http:
                    degraded = await _poll_health(http, lambda b: b["journal_records"] > 0)
                    second = run.simulator.start_meeting(duration=8.0, media=media)
                    assert await second.wait_streaming(15)  # started while the store is away
                    await _poll_health(http, lambda b: _journaled_for(run, second.script.owner_id), 60.0)
            finally:
                await proxy.switch_on()
            assert degraded["status"] == "degraded" and not degraded["store"] and not degraded["store_ok"]
            records = [await first.wait(60), await second.wait(60)]
            await run.settle()
            async with run.http() as http:
                health = await _poll_health(http, lambda b: b["status"] == "ok")
            store = run.gateway.store
            for handle, record in zip((first, second), records):
                stored = await store.transcript(handle.script.owner_id)
                assert [s.text for s in stored] == [t.data for t in record.transcripts]
                assert [c.text for c in await store.chat(handle.script.owner_id)] == chat_as_it_stands(record.chat)
                assert (await store.get_meeting(handle.script.owner_id)).state == "stopped"
            assert records[1].sent.transcripts > 0 and records[0].sent.chat > 0
    finally:
        await proxy.close()
    assert health["journal_records"] == 0 and health["store"]
    counters = _counts(run.gateway.metrics)
    assert counters["journaled"] > 0 and counters["replayed"] == counters["journaled"]
    assert counters["records_rejected"] == 0
    assert "the store cannot say whether it was taken before" in caplog.text
    assert "the store cannot say whether it ended" in caplog.text


def _poisoned(script, *, nul: bool = False, owner_id: str | None = None):
    """The script with NUL in every transcript and chat line, and/or another meeting id."""
    if nul:
        script = dataclasses.replace(
            script,
            utterances=[dataclasses.replace(u, text=f"{u.text}\x00and on") for u in script.utterances],
            chat=[dataclasses.replace(c, text=f"hi\x00there {n}") for n, c in enumerate(script.chat)])
    if owner_id is not None:
        script = dataclasses.replace(script, owner_id=owner_id)
    return script


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not postgres.URL, reason="RTMS_TEST_POSTGRES_URL is not set")])])
async def test_poison_records_hold_back_no_later_meeting(tmp_path, database):
    """NUL in chat and transcripts, a 300-character and a 10 KB meeting UUID: all stored
    (NUL as U+FFFD on PostgreSQL), nothing journaled, and the next meeting stored whole."""
    media = MediaType.TRANSCRIPT | MediaType.CHAT
    async with contextlib.AsyncExitStack() as stack:
        env = {}
        if database == "postgres":
            schema = await stack.enter_async_context(postgres.own_schema())
            env = {"RTMS_DATABASE_URL": postgres.URL, "RTMS_DATABASE_SCHEMA": schema}
        run = await stack.enter_async_context(GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript,chat", **env))
        scripts = [_poisoned(build_meeting(21, 0, duration_s=4.0, offered=media), nul=True),
                   _poisoned(build_meeting(22, 0, duration_s=4.0, offered=media), owner_id=long_id(300, 1)),
                   _poisoned(build_meeting(23, 0, duration_s=4.0, offered=media), owner_id=long_id(10_000, 2))]
        poisoned = [run.simulator.start_meeting(script) for script in scripts]
        records = [await handle.wait(60) for handle in poisoned]
        await run.settle()
        normal = run.simulator.start_meeting(build_meeting(24, 0, duration_s=4.0, offered=media))
        records.append(await normal.wait(60))
        await run.settle()
        store = run.gateway.store
        for handle, record in zip([*poisoned, normal], records):
            assert record.outcome == "completed" and record.sent.transcripts > 0
            uuid = handle.script.owner_id
            assert [s.text for s in await store.transcript(uuid)] == [stored(store, t.data) for t in record.transcripts]
            texts = chat_as_it_stands(record.chat)
            assert [c.text for c in await store.chat(uuid)] == [stored(store, t) for t in texts]
            meeting = await store.get_meeting(uuid)
            assert meeting.meeting_uuid == uuid and meeting.state == "stopped"
        async with run.http() as http:
            health = (await http.get("/healthz")).json()
            metrics = (await http.get("/metrics")).text
        nuls = sum(t.data.count("\x00") for t in records[0].transcripts) + \
            sum(c.data.count("\x00") for c in records[0].chat)
    assert records[0].sent.chat > 0 and nuls > 0
    assert health["status"] == "ok" and health["journal_records"] == 0
    counters = _counts(run.gateway.metrics)
    assert counters["records_rejected"] == 0 and counters["journaled"] == 0 and counters["updates_failed"] == 0
    replaced = nuls if database == "postgres" else 0
    assert store.counters["nul_replaced"] == replaced
    assert f"rtms_nul_characters_replaced_total {float(replaced)}" in metrics


async def test_a_journaled_batch_stays_in_the_journal_until_all_of_it_is_in(tmp_path):
    """Replaying a journaled batch that holds a refused record, the disk fills up (SQLite's
    max_page_count) half-way through writing it record by record: the journal is kept, and
    once there is room again the rest is written, nothing lost."""
    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine

    from rtms_gateway.gateway.pipeline import Pipeline
    from rtms_gateway.sinks.store import Store
    from rtms_gateway.sinks.store_open import dispose

    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    cap: dict[str, int] = {}

    def _cap_pages(dbapi_conn, _record):  # every new connection gets the cap the test sets
        if cap:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA max_page_count = {cap['pages']}")
            cursor.close()

    # Every engine's: the store's writes on SQLite go through a connection of their own.
    event.listen(Engine, "connect", _cap_pages)

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
        await dispose(store.engine)  # reconnect under the cap
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["first"]
        assert value_of(pipeline.metrics.records_rejected) == 1 and not pipeline.store_ok
        assert pipeline.journal.records == 3  # kept whole: what went in goes in again, idempotently
        cap.clear()
        await dispose(store.engine)  # room again
        await pipeline.flush()
        assert [s.text for s in await store.transcript("m")] == ["first", big]
        assert pipeline.journal.records == 0 and pipeline.store_ok
    finally:
        event.remove(Engine, "connect", _cap_pages)
        await pipeline.close()
        await store.close()


def _counts(metrics: GatewayMetrics) -> dict[str, float]:
    return {name: value_of(getattr(metrics, name))
            for name in ("journaled", "replayed", "records_rejected", "updates_failed")}
