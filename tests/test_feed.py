"""The feed: an item with a cursor for everything the store keeps, in commit order, on
SQLite and PostgreSQL; and the mapping of timeline events to item kinds."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import delete

from rtms_gateway.protocol.constants import EventType
from rtms_gateway.sinks import schema
from rtms_gateway.sinks.cursors import format_cursor
from rtms_gateway.sinks.exports import chat_json, event_json, segment_json
from rtms_gateway.sinks.feed import EVENT_ITEMS, FeedItem, FeedKind, event_item
from rtms_gateway.sinks.records import GatewayEvent, MediaFile, StreamRecord, TimelineEvent

from .store_cases import chat_msg, seed, seg
from .stores import DATABASES, a_store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=DATABASES)
async def opened(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        yield opened


def event(uuid: str, event_type: int, ts: int, user_id: int = 1) -> TimelineEvent:
    return TimelineEvent(meeting_uuid=uuid, rtms_stream_id=f"stream-{uuid}",
                         event_type=event_type, timestamp=ts, user_id=user_id, user_name="Ann",
                         payload={"event_type": event_type})


def media(uuid: str, *, complete: bool = False, frames: int = 0) -> MediaFile:
    return MediaFile(meeting_uuid=uuid, rtms_stream_id=f"stream-{uuid}", kind="audio", user_id=0,
                     user_name=None, codec="l16", format="wav", path=f"{uuid}/a.wav",
                     sample_rate=16000, channels=1, origin_ms=1_700_000_000_000, frames=frames,
                     complete=complete)


def body(item: FeedItem) -> dict:
    return msgspec.json.decode(item.data)


async def test_every_write_adds_its_items_and_cursors_increase_in_write_order(opened):
    store = opened.store
    heard: list[list[FeedItem]] = []
    store.on_items(heard.append)
    await seed(store, "m1")  # the meeting started, its stream in state "ready"
    first = await store.write_batch_items(
        segments=[seg(0, "m1")], chats=[chat_msg("m1")],
        events=[event("m1", EventType.PARTICIPANT_JOIN, 3)])
    await store.mark_stream("stream-m1", state="reconnecting", status_reason="a socket dropped")
    await store.mark_stream("stream-m1", state="ready")
    second = await store.write_batch_items(segments=[seg(1, "m1")])
    await store.upsert_media_file(media("m1"))
    await store.upsert_media_file(media("m1", frames=50, complete=True))
    await store.mark_stream("stream-m1", state="stopped", stopped_at_ms=9, stop_reason=6)
    await store.mark_meeting_stopped("m1", 9, 6)

    items = await store.feed()
    assert [(i.kind, i.type) for i in items] == [
        ("meeting", "meeting.started"), ("meeting", "meeting.state"),
        ("transcript", "transcript.segment"), ("chat", "chat.message"),
        ("participant", "participant.joined"), ("meeting", "meeting.interrupted"),
        ("meeting", "meeting.state"), ("transcript", "transcript.segment"),
        ("media", "media.new"), ("media", "media.ready"), ("meeting", "meeting.state"),
        ("meeting", "meeting.ended")]
    seqs = [i.seq for i in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert sorted(i.cursor for i in items) == [i.cursor for i in items]  # as strings too
    assert all(i.meeting_uuid == "m1" for i in items)
    assert first == items[2:5] and second == [items[7]]  # what the writer is handed, as stored
    assert [i for batch in heard for i in batch] == items  # listeners: once committed, in order

    # Bodies: what the REST API shows for the record (its row without the cursor).
    (transcript,) = await store.transcript_page("m1", after=None, limit=1)
    assert transcript.seq == items[2].seq and body(items[2]) == segment_json(transcript.record)
    assert body(items[3]) == chat_json((await store.chat("m1"))[0])
    assert body(items[4]) == event_json((await store.timeline("m1"))[0])
    assert body(items[4])["event"] == "participant_join"
    assert (body(items[5])["state"], body(items[5])["status_reason"]) == \
        ("reconnecting", "a socket dropped")
    assert (body(items[9])["frames"], body(items[9])["complete"]) == (50, True)
    assert body(items[9])["id"] == (await store.media_files("m1"))[0].id
    ended = body(items[11])
    assert (ended["stopped_at_ms"], ended["stopped_at_iso"]) == (9, "1970-01-01T00:00:00.009Z")


async def test_a_record_stored_again_makes_no_item(opened):
    store = opened.store
    await seed(store, "m1")
    batch = {"segments": [seg(i, "m1") for i in range(3)], "chats": [chat_msg("m1")],
             "events": [event("m1", EventType.ACTIVE_SPEAKER_CHANGE, 5)]}
    assert len(await store.write_batch_items(**batch)) == 5
    before = await store.feed()
    assert await store.write_batch_items(**batch) == []  # a replay after a reconnect
    assert await store.write_batch(**batch) == 0
    assert await store.feed() == before
    twice = await store.write_batch_items(segments=[seg(7, "m1"), seg(7, "m1"), seg(1, "m1")])
    assert [i.type for i in twice] == ["transcript.segment"]  # one record once; the known one not
    assert [s.text for s in await store.transcript("m1")] == [seg(i).text for i in (0, 1, 2, 7)]
    assert len(await store.feed()) == len(before) + 1


async def test_the_feed_after_a_cursor_is_what_followed_it_for_one_meeting_or_all_by_kind(opened):
    store = opened.store
    for uuid in ("m1", "m2"):
        await seed(store, uuid)
    for i in range(6):
        uuid = ("m1", "m2")[i % 2]
        await store.write_batch_items(
            segments=[seg(i, uuid)], chats=[chat_msg(uuid, message_id=f"c{i}")],
            events=[event(uuid, EventType.SHARING_START + i % 2, 10 + i)])
    items = await store.feed()
    assert len(items) == 2 * 2 + 6 * 3
    for k in (-1, 0, 3, 11, len(items) - 2, len(items) - 1):
        after = items[k].seq if k >= 0 else None
        rest = items[k + 1:]
        assert await store.feed(after=after) == rest
        assert await store.feed(after=after, meeting_uuid="m2") == \
            [i for i in rest if i.meeting_uuid == "m2"]
        kinds = {FeedKind.TRANSCRIPT, FeedKind.SHARING}
        assert await store.feed(after=after, kinds=kinds) == [i for i in rest if i.kind in kinds]
        assert await store.feed(after=after, meeting_uuid="m1", kinds={FeedKind.CHAT}) == \
            [i for i in rest if i.meeting_uuid == "m1" and i.kind == FeedKind.CHAT]
        assert await store.feed(after=after, limit=2) == rest[:2]
    assert await store.feed(meeting_uuid="nobody") == []
    assert await store.feed_head() == items[-1].seq


async def test_cursors_survive_reopening_and_are_never_handed_out_again(opened):
    store = opened.store
    await seed(store, "m1")
    await store.write_batch_items(segments=[seg(i, "m1") for i in range(3)])
    items = await store.feed()
    store = await opened.reopen()
    assert await store.feed() == items
    assert [r.seq for r in await store.transcript_page("m1")] == [i.seq for i in items[2:]]
    async with store.engine.begin() as conn:  # even if the newest items were pruned away
        await conn.execute(delete(schema.feed_items))
    store = await opened.reopen()
    (later,) = await store.write_batch_items(segments=[seg(9, "m1")])
    assert later.seq > items[-1].seq


async def test_changes_are_items_once_each(opened):
    store = opened.store
    await seed(store, "m1")
    ready = StreamRecord(rtms_stream_id="stream-m1", meeting_uuid="m1", state="ready")
    await store.upsert_stream(ready)  # the same state: nothing new
    await store.mark_stream("stream-m1", state="ready")
    await store.mark_stream("stream-m1", server_urls="wss://elsewhere")  # no state: nothing to tell
    await store.mark_stream("nobody", state="stopped")  # no such stream: nothing
    await store.upsert_stream(StreamRecord(rtms_stream_id="stream-b", meeting_uuid="m1",
                                           state="connecting"))
    await store.upsert_media_file(media("m1"))
    await store.upsert_media_file(media("m1", frames=10))  # grown: the file is not new
    await store.upsert_media_file(media("m1", frames=20, complete=True))
    await store.upsert_media_file(media("m1", frames=20, complete=True))  # ready once
    await store.mark_meeting_stopped("m1", 50, 6)
    await store.mark_meeting_stopped("m1", 51, 6)  # its second stream ending: ended once
    await store.mark_meeting_stopped("nobody", 51, 6)
    await seed(store, "m1")  # a new stream starts the meeting again
    assert [i.type for i in await store.feed()] == [
        "meeting.started", "meeting.state", "meeting.state", "media.new", "media.ready",
        "meeting.ended", "meeting.started"]


async def test_pages_follow_the_feed_and_whole_listings_keep_their_time_order(opened):
    store = opened.store
    await seed(store, "m1")
    arrivals = [3, 0, 4, 1, 2]  # stored out of time order (a replay after a reconnect, say)
    for i in arrivals:
        await store.write_batch_items(segments=[seg(i, "m1")],
                                      chats=[chat_msg("m1", message_id=f"c{i}", timestamp=10 - i)])
    whole = await store.transcript_page("m1")
    assert [r.record.text for r in whole] == [seg(i).text for i in range(5)]  # by time, as always
    pages, after = [], None
    while page := await store.transcript_page("m1", after=after, limit=2):
        pages += page
        after = page[-1].seq
    assert [r.record.text for r in pages] == [seg(i).text for i in arrivals]  # as stored
    assert sorted(whole) == pages  # the same rows, each with the same cursor
    chat_pages = await store.chat_page("m1", after=pages[1].seq, limit=100)
    assert [m.record.message_id for m in chat_pages] == [f"c{i}" for i in arrivals[1:]]
    assert await store.timeline_page("m1", limit=10) == []


def test_every_timeline_event_type_is_an_item_of_one_kind():
    for event_type in EventType:
        kind, type_ = event_item(event_type)
        assert isinstance(kind, FeedKind) and type_.startswith(kind.value + ".")
    # Zoom's types, and the gateway's own for what Zoom reports outside EVENT_UPDATE.
    assert set(EVENT_ITEMS) == set(EventType) - {EventType.UNDEFINED} | set(GatewayEvent)
    assert event_item(EventType.UNDEFINED) == event_item(99) == (FeedKind.MEETING, "meeting.event")
    assert event_item(EventType.PARTICIPANT_JOIN) == (FeedKind.PARTICIPANT, "participant.joined")
    assert event_item(EventType.PARTICIPANT_LEAVE) == (FeedKind.PARTICIPANT, "participant.left")


def test_an_item_reaches_a_consumer_with_its_cursor_and_the_record_as_the_api_shows_it():
    item = FeedItem(5, FeedKind.CHAT, "chat.message", "m/1", 1_700_000_000_000,
                    msgspec.Raw(b'{"text":"hi"}'))
    assert msgspec.json.decode(item.to_json()) == {
        "cursor": format_cursor(5), "kind": "chat", "type": "chat.message", "meeting_uuid": "m/1",
        "stored_at_ms": 1_700_000_000_000, "stored_at_iso": "2023-11-14T22:13:20.000Z",
        "data": {"text": "hi"}}
