"""Erasing a revoked stream (stop reason 8) on SQLite and PostgreSQL: its records, feed
items, search rows, pending deliveries, media index and files go; other streams and
meetings stay; a tombstone is kept; a meeting left without streams goes whole."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from rtms_gateway.sinks import schema
from rtms_gateway.sinks.records import (
    ChatMessage,
    MediaFile,
    MeetingRecord,
    StreamRecord,
    TimelineEvent,
    TranscriptSegment,
)
from rtms_gateway.sinks.revoke import Revocations, Tombstone, remove_files

from .stores import DATABASES, a_store

M1, M2 = "m1/+revoked==", "m2/kept=="


def _segment(uuid: str, stream: str, i: int, text: str) -> TranscriptSegment:
    return TranscriptSegment(meeting_uuid=uuid, rtms_stream_id=stream, user_id=16778240,
                             user_name="Ann", text=text, timestamp=1_700_000_000_000 + i,
                             received_at_ms=1)


def _chat(uuid: str, stream: str, text: str) -> ChatMessage:
    return ChatMessage(meeting_uuid=uuid, rtms_stream_id=stream, message_id=f"{stream}-c",
                       sender_user_id=1, sender_name="Ann", receiver_user_id=None,
                       receiver_name=None, chat_session_type=1, text=text, operation_type=1,
                       timestamp=5, raw={"data": text})


def _event(uuid: str, stream: str) -> TimelineEvent:
    return TimelineEvent(meeting_uuid=uuid, rtms_stream_id=stream, event_type=2, timestamp=4,
                         user_id=1, user_name="Ann", payload={"event_type": 2})


async def _meeting(store, uuid: str, *streams: str) -> None:
    await store.upsert_meeting(MeetingRecord(meeting_uuid=uuid, product="meeting",
                                             started_at_ms=1_700_000_000_000))
    for stream in streams:
        await store.upsert_stream(StreamRecord(rtms_stream_id=stream, meeting_uuid=uuid,
                                               server_urls="wss://x", state="ready",
                                               started_at_ms=1_700_000_000_000))
        await store.write_batch(
            segments=[_segment(uuid, stream, i, f"{stream} said zebrafish {i}") for i in range(3)],
            chats=[_chat(uuid, stream, f"{stream} wrote zebrafish")], events=[_event(uuid, stream)])


def _mentions(items, stream: str) -> list[str]:
    return [i.type for i in items if stream.encode() in bytes(i.to_json())]


@pytest.mark.parametrize("database", DATABASES)
async def test_erasing_a_revoked_stream(database, tmp_path):
    async with a_store(database, tmp_path) as opened:
        store = opened.store
        revocations = Revocations(store)
        await _meeting(store, M1, "s1", "s2")
        await _meeting(store, M2, "s3")
        media = tmp_path / "media" / "s1-audio.wav"
        media.parent.mkdir()
        media.write_bytes(b"RIFF....")
        await store.upsert_media_file(MediaFile(
            meeting_uuid=M1, rtms_stream_id="s1", kind="audio", user_id=16778240, user_name="Ann",
            codec="l16", format="wav", path="media/s1-audio.wav", origin_ms=0, complete=True))
        s1_items = [i for i in await store.feed(meeting_uuid=M1) if _mentions([i], "s1")]
        async with store.engine.begin() as conn:  # a pending delivery of an s1 item
            await conn.execute(schema.outbound_deliveries.insert().values(
                subscription_id=1, seq=s1_items[0].seq, type=s1_items[0].type, status="pending",
                attempts=0, created_at_ms=1, next_attempt_at_ms=1))

        erased = await revocations.erase_stream("s1", M1, stop_reason=8, now_ms=42)
        assert erased.records == 5 and erased.deliveries == 1 and not erased.meeting_gone
        assert erased.media_files == ["media/s1-audio.wav"]
        assert remove_files(tmp_path, erased.media_files) == 1 and not media.exists()

        assert {s.rtms_stream_id for s in await store.transcript(M1)} == {"s2"}
        assert {c.rtms_stream_id for c in await store.chat(M1)} == {"s2"}
        assert {e.rtms_stream_id for e in await store.timeline(M1)} == {"s2"}
        assert await store.media_files(M1) == []
        assert _mentions(await store.feed(), "s1") == []
        hits = await store.search("zebrafish")
        assert hits and not any("s1" in h.text for h in hits)
        assert {s["rtms_stream_id"] for s in (await store.get_meeting(M1)).streams} == {"s2"}
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(schema.outbound_deliveries))).all() == []
            if database == "sqlite":  # the search index itself forgot the words
                found = await conn.execute(text("SELECT rowid FROM search_text WHERE search_text MATCH 's1'"))
                assert found.all() == []
        assert await revocations.tombstones(M1) == [Tombstone("s1", 8, 42)]
        assert await revocations.gone(M1) == []  # s2 is still there

        again = await revocations.erase_stream("s1", M1, stop_reason=8, now_ms=43)
        assert again.records == 0 and await revocations.tombstones(M1) == [Tombstone("s1", 8, 42)]

        last = await revocations.erase_stream("s2", None, stop_reason=8, now_ms=44)
        assert last.meeting_gone and last.records == 5
        assert await store.get_meeting(M1) is None
        assert await store.feed(meeting_uuid=M1) == []
        assert [t.rtms_stream_id for t in await revocations.gone(M1)] == ["s1", "s2"]
        assert not any("s2" in h.text for h in await store.search("zebrafish"))

        assert len(await store.transcript(M2)) == 3  # another meeting: untouched
        assert await revocations.gone(M2) == [] and await revocations.tombstones(M2) == []


@pytest.mark.parametrize("database", DATABASES)
async def test_a_stream_never_stored_is_buried_all_the_same(database, tmp_path):
    async with a_store(database, tmp_path) as opened:
        revocations = Revocations(opened.store)
        erased = await revocations.erase_stream("never-seen", "m-unknown", stop_reason=8, now_ms=7)
        assert erased.records == 0
        assert await revocations.gone("m-unknown") == [Tombstone("never-seen", 8, 7)]
