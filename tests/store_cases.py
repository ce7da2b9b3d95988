"""Store behaviours, run against SQLite (test_store.py) and PostgreSQL (test_store_postgres.py)."""

from __future__ import annotations

import asyncio
import base64
import random

import msgspec
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, func, inspect, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from rtms_gateway.protocol.errors import RecordRefused, StoreUnavailable
from rtms_gateway.sinks import delivery_memory, schema
from rtms_gateway.sinks.delivery_memory import DeliveryMemory
from rtms_gateway.sinks.records import (
    ChatMessage,
    MediaFile,
    MeetingRecord,
    StreamRecord,
    TimelineEvent,
    TranscriptSegment,
)
from rtms_gateway.sinks.store import Store
from rtms_gateway.sinks.store_open import MIGRATIONS, async_url

UUID = "Zk/9+abc==QQ"


def seg(i: int, uuid: str = UUID, text: str | None = None) -> TranscriptSegment:
    return TranscriptSegment(meeting_uuid=uuid, rtms_stream_id="stream-a", user_id=16778240 + i % 3,
                             user_name=["Ann", "田中 花子", "Zoë 👍"][i % 3], text=text or f"segment {i} — ünïcode",
                             timestamp=1_700_000_000_000 + 1000 * i, start_time=1_700_000_000_000 + 1000 * i,
                             end_time=1_700_000_000_800 + 1000 * i, language=9, received_at_ms=1)


async def seed(store, uuid: str = UUID, started: int = 1_700_000_000_000) -> None:
    await store.upsert_meeting(MeetingRecord(meeting_uuid=uuid, product="webinar", meeting_id="123",
                                             started_at_ms=started))
    await store.upsert_stream(StreamRecord(rtms_stream_id=f"stream-{uuid}", meeting_uuid=uuid,
                                           server_urls="wss://x", state="ready", started_at_ms=started))


async def case_round_trip_and_dedup(store) -> None:
    await seed(store)
    segments = [seg(i) for i in range(5)]
    chat = ChatMessage(meeting_uuid=UUID, rtms_stream_id="stream-a", message_id="m1", sender_user_id=1,
                       sender_name="Ann", receiver_user_id=None, receiver_name=None, chat_session_type=1,
                       text="hi 👋", operation_type=1, timestamp=5, raw={"data": "hi 👋"})
    event = TimelineEvent(meeting_uuid=UUID, rtms_stream_id="stream-a", event_type=3, timestamp=4,
                          user_id=1, user_name="Ann", payload={"event_type": 3},
                          product="webinar")  # read back with its meeting's product
    assert await store.write_batch(segments=segments, chats=[chat], events=[event]) == 7
    assert await store.write_batch(segments=segments, chats=[chat], events=[event]) == 0  # replayed: stored once
    assert await store.transcript(UUID) == segments
    assert await store.chat(UUID) == [chat]
    assert await store.timeline(UUID) == [event]
    detail = (await store.get_meeting(UUID)).to_dict()
    counts = ("segment_count", "chat_count", "event_count", "participant_count")
    assert [detail[c] for c in counts] == [5, 1, 1, 1]
    assert detail["state"] == "live" and detail["product"] == "webinar" and detail["streams"][0]["state"] == "ready"


async def case_listing_and_states(store) -> None:
    for n in range(3):
        await seed(store, f"m{n}", started=1000 + n)
    await store.mark_stream("stream-m1", state="stopped", stopped_at_ms=5, stop_reason=6)
    await store.mark_meeting_stopped("m1", 5, 6)
    await store.mark_stream("stream-m0", state="rejected", status_code=3, status_reason="bad signature")
    listing = [m.to_dict() for m in await store.list_meetings(limit=10, offset=0)]
    assert [m["meeting_uuid"] for m in listing] == ["m2", "m1", "m0"]
    assert [m["state"] for m in listing] == ["live", "stopped", "failed"]
    assert listing[1]["stop_reason"] == 6
    assert [s.rtms_stream_id for s in await store.open_streams()] == ["stream-m0", "stream-m2"]
    rejected = await store.stream("stream-m0")
    assert (rejected.state, rejected.status_code, rejected.status_reason) == ("rejected", 3, "bad signature")
    assert await store.get_meeting("nope") is None and await store.stream("nope") is None


async def case_big_batch_and_concurrent_writers(store) -> None:
    await seed(store)
    assert await store.write_batch(segments=[seg(i) for i in range(10_000)]) == 10_000
    more = [[seg(i, text=f"writer {w} line {i}") for i in range(200)] for w in range(8)]
    results = await asyncio.gather(*(store.write_batch(segments=batch) for batch in more))
    assert sum(results) == 1600
    assert len(await store.transcript(UUID)) == 11_600


# ---- poison records, long ids, the two kinds of error, delivery memory ---------------------

NUL = "\x00"


def stored(store, text: str) -> str:
    """What the store keeps of `text`: PostgreSQL's text cannot hold NUL (U+FFFD instead)."""
    return text.replace(NUL, "\ufffd") if store.engine.dialect.name == "postgresql" else text


def long_id(size: int, seed: int) -> str:
    """An id of `size` characters, incompressible (PostgreSQL compresses an index entry
    before it checks the entry's size), with Zoom's `/`, `+` and `=` in it."""
    text = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    return ("/+=" + text)[:size]


def chat_msg(uuid: str = UUID, **fields) -> ChatMessage:
    values = dict(meeting_uuid=uuid, rtms_stream_id="stream-a", message_id="m1", sender_user_id=1,
                  sender_name="Ann", receiver_user_id=None, receiver_name=None, chat_session_type=1,
                  text="hi", operation_type=1, timestamp=5, raw={"data": "hi"})
    values.update(fields)
    return ChatMessage(**values)


async def case_nul_text(store) -> None:
    await seed(store)
    pg = store.engine.dialect.name == "postgresql"
    segment = seg(0, text="hi\x00there")
    segment.user_name = "A\x00nn"
    chat = chat_msg(text="a\x00b\x00c", sender_name="x\x00", raw={"data": "a\x00b\x00c"})
    event = TimelineEvent(meeting_uuid=UUID, rtms_stream_id="stream-a", event_type=3, timestamp=4,
                          user_id=1, user_name="E\x00v", payload={"name": "E\x00v"})
    assert await store.write_batch(segments=[segment], chats=[chat], events=[event]) == 3
    assert store.counters["nul_replaced"] == (6 if pg else 0)
    assert await store.write_batch(segments=[segment], chats=[chat], events=[event]) == 0  # stored once
    assert store.counters["nul_replaced"] == (6 if pg else 0)  # and counted once
    (got,) = await store.transcript(UUID)
    assert (got.text, got.user_name) == (stored(store, "hi\x00there"), stored(store, "A\x00nn"))
    (got_chat,) = await store.chat(UUID)
    assert (got_chat.text, got_chat.sender_name) == (stored(store, "a\x00b\x00c"), stored(store, "x\x00"))
    assert got_chat.raw == {"data": "a\x00b\x00c"}  # JSON holds NUL escaped, as it came
    (got_event,) = await store.timeline(UUID)
    assert got_event.user_name == stored(store, "E\x00v") and got_event.payload == {"name": "E\x00v"}
    # an id holding NUL is stored, and found again by the id as Zoom sent it
    await seed(store, "nul\x00meeting")
    found = await store.get_meeting("nul\x00meeting")
    assert found is not None and found.meeting_uuid == stored(store, "nul\x00meeting")
    assert (await store.stream("stream-nul\x00meeting")).rtms_stream_id == stored(store, "stream-nul\x00meeting")
    assert store.counters["nul_replaced"] == (6 + 3 if pg else 0)  # meeting uuid; stream id and its meeting


async def case_long_ids(store) -> None:
    for size in (300, 10_000):
        uuid, stream_id, other = long_id(size, 1), long_id(size, 2), long_id(size, 3)
        user = "u" + long_id(size, 4)  # not all digits (user ids made of digits come back as ints)
        await store.upsert_meeting(MeetingRecord(meeting_uuid=uuid, product="meeting", meeting_id=other,
                                                 account_id=other, operator_id=other, session_key=other,
                                                 started_at_ms=size))
        await store.upsert_meeting(MeetingRecord(meeting_uuid=uuid, product="meeting"))  # again: one row
        await store.upsert_stream(StreamRecord(rtms_stream_id=stream_id, meeting_uuid=uuid, server_urls="wss://x",
                                               state="ready", started_at_ms=size))
        segment = TranscriptSegment(meeting_uuid=uuid, rtms_stream_id=stream_id, user_id=user, user_name=other,
                                    text="long ids", timestamp=1, received_at_ms=1)
        chat = chat_msg(uuid, rtms_stream_id=stream_id, message_id=other, sender_user_id=user, sender_name=other,
                        receiver_user_id=user, receiver_name=other)
        event = TimelineEvent(meeting_uuid=uuid, rtms_stream_id=stream_id, event_type=3, timestamp=2,
                              user_id=user, user_name=other)
        assert await store.write_batch(segments=[segment], chats=[chat], events=[event]) == 3
        await store.upsert_media_file(MediaFile(meeting_uuid=uuid, rtms_stream_id=stream_id, kind="audio",
                                                user_id=user, user_name=other, codec="l16", format="wav",
                                                path=f"{other}/{stream_id}.wav", origin_ms=0))
        await store.touch_streams([stream_id])
        assert [s.rtms_stream_id for s in await store.open_streams()] == [stream_id]
        await store.mark_stream(stream_id, state="stopped", stopped_at_ms=5, stop_reason=6)
        await store.mark_meeting_stopped(uuid, 5, 6)

        detail = (await store.get_meeting(uuid)).to_dict()
        assert (detail["meeting_uuid"], detail["meeting_id"], detail["session_key"]) == (uuid, other, other)
        assert (detail["state"], detail["segment_count"], detail["chat_count"], detail["event_count"]) == \
            ("stopped", 1, 1, 1)
        assert [s["rtms_stream_id"] for s in detail["streams"]] == [stream_id]
        assert (await store.stream(stream_id)).state == "stopped"
        assert await store.transcript(uuid) == [segment]
        assert await store.chat(uuid) == [chat]
        assert await store.timeline(uuid) == [event]
        (media,) = await store.media_files(uuid)
        assert (media.user_id, media.path) == (user, f"{other}/{stream_id}.wav")
        assert uuid in [m.meeting_uuid for m in await store.list_meetings(limit=10, offset=0)]
    assert len(await store.list_meetings(limit=10, offset=0)) == 2


async def case_a_record_it_cannot_hold_is_refused(store) -> None:
    await seed(store)
    too_big = TranscriptSegment(meeting_uuid=UUID, rtms_stream_id="stream-a", user_id=1, user_name="a",
                                text="past 64 bits", timestamp=2**70)
    with pytest.raises(RecordRefused):
        await store.write_batch(segments=[seg(0), too_big])
    with pytest.raises(RecordRefused):  # a constraint: text is required
        await store.write_batch(chats=[chat_msg(text=None)])
    assert await store.transcript(UUID) == []  # a refused batch leaves nothing behind
    assert await store.write_batch(segments=[seg(1)]) == 1  # and the store takes the next one
    assert [s.text for s in await store.transcript(UUID)] == [seg(1).text]


async def case_a_closed_store_is_unavailable(store) -> None:
    await seed(store)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.write_batch(segments=[seg(0)])
    with pytest.raises(StoreUnavailable):
        await store.transcript(UUID)
    with pytest.raises(StoreUnavailable):
        await store.memory.seen_delivery(("StreamStarted", "s", 1), 1)


async def _rows(store, table) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar()


async def case_delivery_memory(store) -> None:
    memory = DeliveryMemory(store, delivery_ttl_s=10, ended_ttl_s=100, max_rows=3, prune_every_s=0)
    delivery = ("StreamStarted", long_id(10_000, 5), 1_700_000_000_123)
    assert not await memory.seen_delivery(delivery, 1_000)
    assert await memory.seen_delivery(delivery, 2_000)  # Zoom's retry, or a replay
    assert not await memory.seen_delivery(delivery, 12_000)  # past the TTL: new again
    await memory.forget_delivery(delivery)
    assert not await memory.seen_delivery(delivery, 13_000)  # forgotten (we failed to act on it)
    for n in range(5):
        assert not await memory.seen_delivery(("StreamStopped", f"s{n}", n), 20_000 + n)
    assert await _rows(store, schema.webhook_deliveries) == 3  # bounded: the oldest went
    assert await memory.seen_delivery(("StreamStopped", "s4", 4), 20_010)
    await memory.seen_delivery(("StreamStopped", "s9", 9), 40_000)
    assert await _rows(store, schema.webhook_deliveries) == 1  # the rest were past the TTL

    stream_id = long_id(10_000, 6)
    assert await memory.ended_state(stream_id) is None
    await memory.remember_ended(stream_id, "stopped", 1_000)
    assert await memory.ended_state(stream_id) == "stopped"
    await memory.remember_ended(stream_id, "lost", 2_000)
    assert await memory.ended_state(stream_id) == "lost"
    await memory.remember_ended("another", "stopped", 200_000)  # the first is past its TTL now
    assert await memory.ended_state(stream_id) is None and await memory.ended_state("another") == "stopped"
    # the store's own memory keeps the defaults
    assert not await store.memory.seen_delivery(delivery, 1_000) and await store.memory.seen_delivery(delivery, 1_001)


async def case_a_burst_of_deliveries_shares_its_transactions(store) -> None:
    memory = DeliveryMemory(store)
    transactions = 0
    real = delivery_memory.transact

    async def counted(engine, write):
        nonlocal transactions
        transactions += 1
        return await real(engine, write)

    delivery_memory.transact = counted
    try:
        burst = [("StreamStarted", f"burst-{n}", n) for n in range(200)] + [("StreamStarted", "burst-7", 7)] * 3
        seen = await asyncio.gather(*(memory.seen_delivery(d, 5_000) for d in burst))
        assert not any(seen[n] for n in range(200) if n != 7)
        assert [seen[7], *seen[200:]].count(False) == 1  # burst-7 new once, three times seen
        assert transactions <= 3  # hundreds of checks, a few commits
        again = await asyncio.gather(*(memory.seen_delivery(d, 6_000) for d in burst[:200]))
        assert all(again)
    finally:
        delivery_memory.transact = real


ALL = [case_round_trip_and_dedup, case_listing_and_states, case_big_batch_and_concurrent_writers, case_nul_text,
       case_long_ids, case_a_record_it_cannot_hold_is_refused, case_a_closed_store_is_unavailable,
       case_delivery_memory, case_a_burst_of_deliveries_shares_its_transactions]


# ---- migrations ---------------------------------------------------------------------------


# chat_messages before migration 0009: a row per message as it came.
OLD_CHAT = table("chat_messages", *(column(name) for name in (
    "dedup_key", "meeting_uuid", "rtms_stream_id", "message_id", "sender_user_id", "sender_name",
    "receiver_user_id", "receiver_name", "chat_session_type", "text", "operation_type", "timestamp")),
    column("raw", JSON))


def old_chat_row(x: ChatMessage) -> dict:
    from rtms_gateway.sinks import store_rows

    row = store_rows.chat_row(x)
    return {c.name: row[c.name] for c in OLD_CHAT.c}


def _migrate(conn, revision: str, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(cfg, revision)


def _differences(conn) -> list:
    opts = {"compare_type": True, "include_name": schema.include_name}
    return compare_metadata(MigrationContext.configure(conn, opts=opts), schema.metadata)


async def case_migration_from_0002(url: str, pg_schema: str | None = None) -> None:
    """A database at 0002 with a meeting in it is brought to 0003 on open: keys backfilled,
    all found again, the schema equal to the model; and 0003 goes down and up again."""
    args = {"server_settings": {"search_path": pg_schema}} if pg_schema else {}
    engine = create_async_engine(async_url(url), connect_args=args)
    old_uuid, old_stream = "Zk/9+old==", "old-stream"
    async with engine.begin() as conn:
        await conn.run_sync(_migrate, "0002")
        await conn.execute(text("INSERT INTO meetings (meeting_uuid, product, started_at_ms, created_at_ms) "
                                "VALUES (:u, 'meeting', 1, 1)"), {"u": old_uuid})
        await conn.execute(text("INSERT INTO streams (rtms_stream_id, meeting_uuid, server_urls, state, "
                                "updated_at_ms) VALUES (:s, :u, 'wss://x', 'ready', 1)"),
                           {"s": old_stream, "u": old_uuid})
        await conn.execute(text("INSERT INTO transcript_segments (dedup_key, meeting_uuid, rtms_stream_id, text, "
                                "timestamp, received_at_ms, speaker_inferred) VALUES ('k1', :u, :s, 'before', 1, 1, "
                                "false)"), {"u": old_uuid, "s": old_stream})
        assert await conn.run_sync(_differences)  # 0002 is not the model
    await engine.dispose()

    store = await Store.open(url, pg_schema=pg_schema)
    try:
        found = await store.get_meeting(old_uuid)
        assert found is not None and [s["rtms_stream_id"] for s in found.to_dict()["streams"]] == [old_stream]
        assert (await store.stream(old_stream)).state == "ready"
        assert [s.text for s in await store.transcript(old_uuid)] == ["before"]
        await store.upsert_meeting(MeetingRecord(meeting_uuid=old_uuid, product="meeting"))  # its key matches
        await store.mark_stream(old_stream, state="stopped", stopped_at_ms=2)
        assert len(await store.list_meetings(limit=10, offset=0)) == 1
        assert (await store.stream(old_stream)).state == "stopped"
        big = long_id(10_000, 7)
        await seed(store, big)
        assert (await store.get_meeting(big)).meeting_uuid == big
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            if pg_schema:
                kinds = dict((await conn.execute(text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s"), {"s": pg_schema})).all())
                assert "USING hash" in kinds["ix_segments_meeting"] and "USING hash" in kinds["ix_streams_meeting_uuid"]
        async with store.engine.begin() as conn:
            await conn.execute(text("DELETE FROM streams WHERE rtms_stream_id = :s"), {"s": f"stream-{big}"})
            await conn.execute(text("DELETE FROM meetings WHERE meeting_uuid = :u"), {"u": big})
            await conn.run_sync(_migrate, "0002", True)  # down: the ids fit their old columns again
            await conn.run_sync(_migrate, "head")
            assert await conn.run_sync(_differences) == []
        assert (await store.stream(old_stream)).state == "stopped"
    finally:
        await store.close()


async def case_migration_from_0004(url: str, pg_schema: str | None = None) -> None:
    """A database at 0004 with two meetings' records is brought to 0005 on open: each record
    has its item, meeting by meeting (the oldest first), each meeting's in time order, with
    the body the store writes today; a replay of them adds nothing; pages and search work on
    them; the schema equals the model; and 0005 goes down and up again."""
    from rtms_gateway.sinks import store_rows
    from rtms_gateway.sinks.exports import chat_json, event_json, segment_json

    args = {"server_settings": {"search_path": pg_schema}} if pg_schema else {}
    engine = create_async_engine(async_url(url), connect_args=args)
    m1, m2, t0 = "Zk/9+m1==", "m2", 1_700_000_000_000
    segments = [seg(3, m1), seg(1, m1), seg(0, m2, text="the budget for <b>next</b> quarter")]
    chats = [chat_msg(m1, message_id="late", timestamp=t0 + 500),
             chat_msg(m2, message_id="first", timestamp=5)]
    events = [TimelineEvent(meeting_uuid=m1, rtms_stream_id="stream-a", event_type=3,
                            timestamp=t0 + 2000, user_id=1, user_name="Ann", payload={"n": 1})]
    async with engine.begin() as conn:
        await conn.run_sync(_migrate, "0004")
        for table, rows in ((schema.transcript_segments, map(store_rows.segment_row, segments)),
                            (OLD_CHAT, map(old_chat_row, chats)),
                            (schema.timeline_events, map(store_rows.event_row, events))):
            # Only the columns the table had at 0004: later migrations add more.
            columns = await conn.run_sync(lambda c, name=table.name: {
                col["name"] for col in inspect(c).get_columns(name)})
            for row in rows:
                await conn.execute(table.insert().values({k: v for k, v in row.items() if k in columns}))
    await engine.dispose()

    store = await Store.open(url, pg_schema=pg_schema)
    try:
        items = await store.feed()
        assert [(i.meeting_uuid, i.type) for i in items] == [
            (m2, "chat.message"), (m2, "transcript.segment"), (m1, "chat.message"),
            (m1, "transcript.segment"), (m1, "participant.joined"), (m1, "transcript.segment")]
        shown = {}
        for uuid in (m1, m2):
            shown.update({r.seq: segment_json(r.record) for r in await store.transcript_page(uuid)})
            shown.update({r.seq: chat_json(r.record) for r in await store.chat_page(uuid)})
            shown.update({r.seq: event_json(r.record) for r in await store.timeline_page(uuid)})
        # every record, as the API shows it today (a chat item as it was made, before 0009
        # gave messages more fields)
        bodies = {i.seq: msgspec.json.decode(i.data) for i in items}
        assert bodies.keys() == shown.keys()
        for seq, body in bodies.items():
            assert body == {name: shown[seq][name] for name in body}
        assert await store.write_batch_items(segments=segments, chats=chats, events=events) == []
        page = await store.transcript_page(m1, limit=5)
        assert [r.record.text for r in page] == [seg(1).text, seg(3).text]
        (hit,) = await store.search("budget quarter")
        assert (hit.meeting_uuid, hit.seq) == (m2, items[1].seq)
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            if pg_schema:
                kinds = dict((await conn.execute(text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s"),
                    {"s": pg_schema})).all())
                assert "USING gin" in kinds["ix_segments_search"]
                assert "USING gin" in kinds["ix_chat_search"]
        async with store.engine.begin() as conn:
            await conn.run_sync(_migrate, "0004", True)
            await conn.run_sync(_migrate, "head")
            assert await conn.run_sync(_differences) == []
        again = await store.feed()
        assert [(i.meeting_uuid, i.type, i.data) for i in again] == \
            [(i.meeting_uuid, i.type, i.data) for i in items]
        (later,) = await store.write_batch_items(segments=[seg(9, m1)])
        assert later.seq > again[-1].seq
        assert [h.seq for h in await store.search("budget")] == [again[1].seq]
    finally:
        await store.close()


async def case_migration_from_0007(url: str, pg_schema: str | None = None) -> None:
    """A database at 0007 holding a chat message, its edit and its deletion as rows of their
    own (and a reply) is brought to 0009 on open: one message each, as it stands, with all
    its versions and their feed items; search finds the current text only; a replay adds
    nothing; the schema equals the model; and 0009 goes down (a row per version again,
    searchable as before) and up again."""
    args = {"server_settings": {"search_path": pg_schema}} if pg_schema else {}
    engine = create_async_engine(async_url(url), connect_args=args)
    t0 = 1_700_000_000_000
    chats = [chat_msg(message_id="a", text="the budget is ready", timestamp=t0),
             chat_msg(message_id="b", text="quarterly numbers", timestamp=t0 + 1,
                      raw={"data": "quarterly numbers", "parent_message_id": "a"}),
             chat_msg(message_id="a", text="the forecast is ready", operation_type=3, timestamp=t0 + 2),
             chat_msg(message_id="c", text="gone soon", timestamp=t0 + 3),
             chat_msg(message_id="c", text="", operation_type=2, timestamp=t0 + 4)]
    async with engine.begin() as conn:
        await conn.run_sync(_migrate, "0007")
        await conn.execute(text("INSERT INTO meetings (meeting_key, meeting_uuid, product, created_at_ms) "
                                "VALUES (:k, :u, 'meeting', 1)"), {"k": schema.key_of(UUID), "u": UUID})
        # The rows and their feed items (and SQLite's search rows) as the store wrote them at 0007.
        for x in chats:
            row = old_chat_row(x)
            await conn.execute(OLD_CHAT.insert().values(row))
            body = msgspec.json.encode({"message_id": x.message_id, "text": x.text}).decode()
            seq = (await conn.execute(text(
                "INSERT INTO feed_items (kind, type, meeting_key, meeting_uuid, item_key, stored_at_ms, body) "
                "VALUES ('chat', 'chat.message', :k, :u, :i, 1, :b) RETURNING id"),
                {"k": schema.key_of(UUID), "u": UUID, "i": "c" + row["dedup_key"], "b": body})).scalar()
            if engine.dialect.name == "sqlite":
                await conn.execute(text("INSERT INTO search_text (rowid, text) VALUES (:s, :t)"),
                                   {"s": seq, "t": x.text})
    await engine.dispose()

    store = await Store.open(url, pg_schema=pg_schema)
    try:
        messages = {m.message_id: m for m in await store.chat(UUID)}
        assert list(messages) == ["a", "b", "c"]
        a, b, c = messages.values()
        assert (a.text, a.edited_at_ms, a.versions, a.replies) == ("the forecast is ready", t0 + 2, 2, ["b"])
        assert (b.parent_message_id, c.text, c.deleted_at_ms) == ("a", "", t0 + 4)
        history = await store.chat_history(UUID, ["a", "c"])
        assert [v.record.operation_type for v in history["a"]] == [1, 3]
        assert [v.record.text for v in history["c"]] == ["gone soon", ""]
        assert [h.text for h in await store.search("ready")] == ["the forecast is ready"]
        assert await store.search("budget") == [] and await store.search("gone") == []
        assert await store.write_batch(chats=chats) == 0
        page = await store.chat_page(UUID, after=None, limit=10)
        assert [r.record.message_id for r in page] == ["b", "a", "c"]  # each at its latest version
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
        async with store.engine.begin() as conn:
            await conn.run_sync(_migrate, "0007", True)
            rows = (await conn.execute(text("SELECT text FROM chat_messages ORDER BY id"))).scalars().all()
            assert rows == [x.text for x in chats]
            await conn.run_sync(_migrate, "head")
            assert await conn.run_sync(_differences) == []
        assert [h.text for h in await store.search("ready")] == ["the forecast is ready"]
        assert (await store.chat(UUID))[0].text == "the forecast is ready"
    finally:
        await store.close()
