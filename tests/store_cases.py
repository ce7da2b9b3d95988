"""Store behaviours, run against SQLite (test_store.py) and PostgreSQL (test_store_postgres.py)."""

from __future__ import annotations

import asyncio

import pytest

from rtms_gateway.protocol.errors import RecordRefused, StoreUnavailable
from rtms_gateway.sinks.records import ChatMessage, MeetingRecord, StreamRecord, TimelineEvent, TranscriptSegment

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
                          user_id=1, user_name="Ann", payload={"event_type": 3})
    assert await store.write_batch(segments=segments, chats=[chat], events=[event]) == 7
    assert await store.write_batch(segments=segments, chats=[chat], events=[event]) == 0  # replayed: stored once
    assert await store.transcript(UUID) == segments
    assert await store.chat(UUID) == [chat]
    assert await store.timeline(UUID) == [event]
    detail = (await store.get_meeting(UUID)).to_dict()
    assert (detail["segment_count"], detail["chat_count"], detail["event_count"], detail["participant_count"]) == (5, 1, 1, 1)
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


def chat_msg(uuid: str = UUID, **fields) -> ChatMessage:
    values = dict(meeting_uuid=uuid, rtms_stream_id="stream-a", message_id="m1", sender_user_id=1,
                  sender_name="Ann", receiver_user_id=None, receiver_name=None, chat_session_type=1,
                  text="hi", operation_type=1, timestamp=5, raw={"data": "hi"})
    values.update(fields)
    return ChatMessage(**values)


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


ALL = [case_round_trip_and_dedup, case_listing_and_states, case_big_batch_and_concurrent_writers,
       case_a_record_it_cannot_hold_is_refused, case_a_closed_store_is_unavailable]
