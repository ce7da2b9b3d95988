"""Structured chat in the store, on SQLite and PostgreSQL: an update or a deletion applies to
the message it names; every version is kept; a replay (in order or not) changes nothing;
threads, files and direct messages read back; search follows the current text; the feed
has an item per version; revoking a stream takes its messages whole."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import func, select

from rtms_gateway.protocol.constants import ChatOperation
from rtms_gateway.sinks import schema
from rtms_gateway.sinks.exports import chat_json, chat_version_json
from rtms_gateway.sinks.records import ChatFile, ChatMessage, MeetingRecord, StreamRecord
from rtms_gateway.sinks.revoke import Revocations

from .stores import DATABASES, a_store

UUID = "Zk/9+chat=="
T0 = 1_700_000_000_000
NEW, UPDATE, DELETE = ChatOperation.NEW, ChatOperation.UPDATE, ChatOperation.DELETE


def version(message_id: str, op: int, text: str, at: int, *, stream: str = "s1", sender: int = 1,
            **fields) -> ChatMessage:
    values = {"receiver_user_id": None, "receiver_name": None, "chat_session_type": 1, **fields}
    return ChatMessage(meeting_uuid=UUID, rtms_stream_id=stream, message_id=message_id,
                       sender_user_id=sender, sender_name=f"user {sender}", text=text,
                       operation_type=None if op is None else int(op), timestamp=T0 + at,
                       raw={"data": text, "operation_type": op}, **values)


PDF = ChatFile(file_id="f1", file_name="report.pdf", file_size=48213, file_type="pdf",
               download_url="https://files.example/f1")
PNG = ChatFile(file_id="f2", file_name="chart.png", file_size=1200, file_type="png")
CONVERSATION = [
    version("a", NEW, "the budget is ready", 1000),
    version("b", NEW, "where is the budget", 2000, sender=2),
    version("c", NEW, "here it is", 3000, parent_message_id="a", files=[PDF, PNG]),
    version("d", NEW, "just for you", 4000, sender=2, receiver_user_id=3, receiver_name="Cy",
            chat_session_type=2),
    version("a", UPDATE, "the forecast is ready", 5000),
    version("b", DELETE, "", 6000, sender=2),
    version("c", UPDATE, "here it is, the pdf only", 7000, parent_message_id="a",
            delete_file_ids=["f2"]),
]


@pytest.fixture(params=DATABASES)
async def store(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        st = opened.store
        await st.upsert_meeting(MeetingRecord(meeting_uuid=UUID, product="meeting", started_at_ms=T0))
        for stream in ("s1", "s2"):
            await st.upsert_stream(StreamRecord(rtms_stream_id=stream, meeting_uuid=UUID,
                                                server_urls="wss://x", state="ready", started_at_ms=T0))
        yield st


def by_id(messages: list[ChatMessage]) -> dict[str | None, ChatMessage]:
    return {m.message_id: m for m in messages}


async def test_updates_and_deletes_apply_to_the_message_they_name(store):
    assert await store.write_batch(chats=CONVERSATION[:4]) == 4
    assert await store.write_batch(chats=CONVERSATION[4:]) == 3
    messages = await store.chat(UUID)
    assert [m.message_id for m in messages] == ["a", "b", "c", "d"]  # one each, by when sent
    a, b, c, d = messages
    assert (a.text, a.timestamp, a.edited_at_ms, a.deleted_at_ms, a.versions) == \
        ("the forecast is ready", T0 + 1000, T0 + 5000, None, 2)
    assert (b.text, b.deleted_at_ms, b.sender_user_id, b.files) == ("", T0 + 6000, 2, [])
    assert (c.text, c.parent_message_id, c.files) == ("here it is, the pdf only", "a", [PDF])
    assert a.replies == ["c"] and b.replies == [] and c.replies == []
    assert (d.receiver_user_id, d.receiver_name, d.sender_user_id, d.chat_session_type) == (3, "Cy", 2, 2)
    shown = {m["message_id"]: m for m in map(chat_json, messages)}
    assert shown["a"]["edited"] and not shown["a"]["deleted"] and shown["a"]["edited_at_iso"]
    assert shown["b"]["deleted"] and shown["b"]["text"] == ""
    assert shown["c"]["files"][0] == {"file_id": "f1", "file_name": "report.pdf", "file_size": 48213,
                                      "file_type": "pdf", "download_url": "https://files.example/f1"}
    detail = (await store.get_meeting(UUID)).to_dict()
    assert detail["chat_count"] == 4


async def test_every_version_is_kept_with_its_operation_and_time(store):
    await store.write_batch(chats=CONVERSATION)
    history = await store.chat_history(UUID, ["a", "b", "c", "nobody"])
    assert set(history) == {"a", "b", "c"}
    assert [(v.record.operation_type, v.record.text, v.record.timestamp) for v in history["a"]] == [
        (NEW, "the budget is ready", T0 + 1000), (UPDATE, "the forecast is ready", T0 + 5000)]
    assert [chat_version_json(v.record)["operation"] for v in history["b"]] == ["new", "delete"]
    assert [v.record.files for v in history["c"]] == [[PDF, PNG], []]
    assert history["c"][1].record.delete_file_ids == ["f2"]
    # each version's cursor is its feed item's
    items = {i.seq: msgspec.json.decode(i.data) for i in await store.feed(meeting_uuid=UUID)}
    assert [items[v.seq]["operation"] for v in history["a"]] == ["new", "update"]


async def test_a_replay_in_any_order_changes_nothing(store):
    await store.write_batch(chats=CONVERSATION)
    before = await store.chat(UUID)
    feed_before = await store.feed()
    assert await store.write_batch(chats=CONVERSATION) == 0
    assert await store.write_batch(chats=list(reversed(CONVERSATION))) == 0
    assert await store.chat(UUID) == before
    assert await store.feed() == feed_before
    async with store.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.chat_message_versions))).scalar()
    assert count == len(CONVERSATION)


async def test_versions_out_of_order_give_the_same_state(store):
    """An update that comes before its message (a late join, a reordered replay) is kept
    and applied; the `new` arriving later fills in who sent it but not an older text."""
    shuffled = [CONVERSATION[4], CONVERSATION[6], CONVERSATION[5], *CONVERSATION[:4]]
    for x in shuffled:
        await store.write_batch(chats=[x])
    got = by_id(await store.chat(UUID))
    # The same conversation, in order, in another meeting (a stream of its own)
    in_order = [msgspec.structs.replace(x, meeting_uuid="other", rtms_stream_id="s9") for x in CONVERSATION]
    await store.upsert_meeting(MeetingRecord(meeting_uuid="other", product="meeting"))
    await store.write_batch(chats=in_order)
    expected = by_id(await store.chat("other"))
    assert got.keys() == expected.keys()
    for key, message in got.items():
        assert msgspec.structs.replace(message, meeting_uuid="other", rtms_stream_id="s9") == expected[key]


async def test_pages_list_each_message_at_its_latest_change(store):
    await store.write_batch(chats=CONVERSATION[:4])
    first = await store.chat_page(UUID, after=None, limit=10)
    assert [r.record.message_id for r in first] == ["a", "b", "c", "d"]
    await store.write_batch(chats=[CONVERSATION[4]])  # a is edited
    since = await store.chat_page(UUID, after=first[-1].seq, limit=10)
    assert [(r.record.message_id, r.record.text) for r in since] == [("a", "the forecast is ready")]
    again = await store.chat_page(UUID, after=None, limit=2)
    assert [r.record.message_id for r in again] == ["b", "c"]  # a moved to its edit's place
    rest = await store.chat_page(UUID, after=again[-1].seq, limit=10)
    assert [r.record.message_id for r in rest] == ["d", "a"]


async def test_search_follows_the_current_text(store):
    await store.write_batch(chats=CONVERSATION[:4])
    assert {h.text for h in await store.search("budget")} == {"the budget is ready", "where is the budget"}
    await store.write_batch(chats=CONVERSATION[4:])
    assert await store.search("budget") == []  # a edited away from it, b deleted
    (hit,) = await store.search("forecast")
    current = {r.record.message_id: r.seq for r in await store.chat_page(UUID, after=None, limit=10)}
    assert (hit.text, hit.seq, hit.kind) == ("the forecast is ready", current["a"], "chat")
    assert [h.text for h in await store.search("pdf only")] == ["here it is, the pdf only"]
    assert await store.search("here it is", kinds=["chat"]) != []


async def test_the_feed_has_an_item_per_version_with_its_operation(store):
    items = await store.write_batch_items(chats=CONVERSATION)
    bodies = [msgspec.json.decode(i.data) for i in items]
    assert [i.type for i in items] == ["chat.message"] * len(CONVERSATION)
    assert [(b["message_id"], b["operation"]) for b in bodies] == [
        ("a", "new"), ("b", "new"), ("c", "new"), ("d", "new"), ("a", "update"), ("b", "delete"),
        ("c", "update")]
    assert bodies[0]["text"] == "the budget is ready" and not bodies[0]["edited"]
    assert bodies[4]["text"] == "the forecast is ready" and bodies[4]["edited"] and bodies[4]["replies"] == ["c"]
    assert bodies[5]["deleted"] and bodies[5]["text"] == ""
    # the last item of each message shows it as the REST API does
    latest = {b["message_id"]: b for b in bodies}
    for m in await store.chat(UUID):
        assert latest[m.message_id] == chat_json(m)


async def test_ids_holding_nul_are_found_again_as_zoom_sent_them(store):
    """PostgreSQL stores NUL as U+FFFD; the message is still found by the id as it came."""
    odd = "m\x00id"
    await store.write_batch(chats=[version(odd, NEW, "first", 1), version(odd, UPDATE, "second", 2),
                                   version("r", NEW, "re", 3, parent_message_id=odd)])
    (found, _) = await store.chat(UUID)
    assert (found.text, found.versions, found.replies) == ("second", 2, ["r"])
    assert (await store.chat_message(UUID, odd)).record.text == "second"
    assert [v.record.text for v in (await store.chat_history(UUID, [odd]))[odd]] == ["first", "second"]


async def test_messages_without_an_id_are_each_their_own(store):
    plain = [version(None, None, "hello", 1), version(None, None, "hello again", 2)]  # older servers
    assert await store.write_batch(chats=plain) == 2
    assert [m.text for m in await store.chat(UUID)] == ["hello", "hello again"]
    assert await store.write_batch(chats=plain) == 0


async def test_revoking_a_stream_takes_its_messages_whole(store):
    later = version("a", UPDATE, "edited from the other stream", 8000, stream="s2")
    other = version("z", NEW, "zebrafish on s2", 9000, stream="s2")
    await store.write_batch(chats=[*CONVERSATION, later, other])
    await Revocations(store).erase_stream("s1", UUID, stop_reason=8, now_ms=1)
    assert [m.message_id for m in await store.chat(UUID)] == ["z"]  # a went with all its versions
    assert await store.search("forecast") == [] and await store.search("edited") == []
    assert [h.text for h in await store.search("zebrafish")] == ["zebrafish on s2"]
    assert await store.chat_history(UUID, ["a"]) == {}
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(schema.chat_files))).scalar() == 0


# ---- from the wire ----------------------------------------------------------------------------


def wire(content: dict) -> ChatMessage:
    from rtms_gateway.gateway.convert import chat_record
    from rtms_gateway.protocol.messages import ChatData, decode_server_message

    msg = decode_server_message(msgspec.json.encode({"msg_type": 18, "content": content}))
    assert isinstance(msg, ChatData)
    return chat_record(UUID, "s1", msg)


def test_a_chat_version_keeps_its_thread_files_and_receiver_from_content_or_data():
    fields = {"message_id": "m2", "operation_type": 3, "parent_message_id": "m1",
              "sender": {"user_id": 7, "user_name": "Ann"}, "receiver": {"user_id": 8, "user_name": "Bo"},
              "chat_session": {"type": 2, "id": "dm"}, "timestamp": T0,
              "files": [{"file_id": "f1", "file_name": "a.pdf", "file_size": 10, "file_type": "pdf",
                         "download_url": "https://x/f1", "extra": 1}, "not a file", {"size": "big"}],
              "delete_file_id_list": ["f0"]}
    in_content = wire({**fields, "data": "hello"})
    in_data = wire({"data": msgspec.json.encode({**fields, "text": "hello"}).decode()})
    for got in (in_content, in_data):
        assert (got.message_id, got.operation_type, got.parent_message_id, got.text) == ("m2", 3, "m1", "hello")
        assert (got.sender_user_id, got.receiver_user_id, got.receiver_name, got.chat_session_type) == (7, 8, "Bo", 2)
        assert got.files == [ChatFile(file_id="f1", file_name="a.pdf", file_size=10, file_type="pdf",
                                      download_url="https://x/f1")]
        assert got.delete_file_ids == ["f0"]
    plain = wire({"data": "just text", "user_id": 5, "timestamp": T0})
    assert (plain.text, plain.message_id, plain.files, plain.parent_message_id) == ("just text", None, [], None)


def test_reactions_are_versions_that_change_no_text_and_a_deletion_is_final():
    from rtms_gateway.sinks.chat import fold

    versions = [version("a", NEW, "hi", 1, files=[PDF]), version("a", ChatOperation.ADD_EMOJI_REACTION, "", 2),
                version("a", DELETE, "", 3), version("a", UPDATE, "back?", 4)]
    reacted = fold(list(enumerate(versions[:2])))
    assert (reacted.text, reacted.edited_at_ms, reacted.versions, reacted.files) == ("hi", None, 2, [PDF])
    assert chat_json(reacted)["operation"] == "add_emoji_reaction"
    final = fold(list(enumerate(versions)))
    assert (final.text, final.deleted_at_ms, final.files) == ("", T0 + 3, [])


def test_a_journaled_chat_version_keeps_its_files_and_thread(tmp_path):
    from rtms_gateway.sinks.journal import Journal, JournalBatch

    journal = Journal(tmp_path / "journal")
    journal.append(JournalBatch(chats=[CONVERSATION[2], CONVERSATION[6]]))
    (batch,) = list(journal.batches())
    assert batch.chats == [CONVERSATION[2], CONVERSATION[6]]
