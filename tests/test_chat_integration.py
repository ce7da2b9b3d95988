"""Structured chat end to end: the simulator sends new messages, a reply in a thread, a
direct message, a file, an edit and a deletion; the gateway stores the messages as they
stand, with their history, and the API, search and feed show them so."""

from __future__ import annotations

import html
from urllib.parse import quote

import msgspec

from rtms_gateway.protocol.constants import ChatOperation, MediaType
from rtms_gateway.simulator import build_meeting
from rtms_gateway.simulator.scenario import CHAT_KINDS
from rtms_gateway.sinks.feed import FeedKind

from .gateway_harness import API_KEY, GatewayWithSimulator


async def test_structured_chat_from_the_simulator(tmp_path):
    script = build_meeting(5, duration_s=4.0, offered=MediaType.TRANSCRIPT | MediaType.CHAT,
                           chat_lines=len(CHAT_KINDS))
    first, _, reply, direct, shared, update, delete = script.chat
    assert (update.operation, delete.operation) == (ChatOperation.UPDATE, ChatOperation.DELETE)
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(script)
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        uuid = script.owner_id
        chat = f"/api/meetings/{quote(uuid, safe='')}/chat"
        async with run.http() as http:
            body = (await http.get(chat)).json()
            messages = {m["message_id"]: m for m in body["messages"]}
            # the update and the deletion applied to the messages they name: no rows of their own
            assert list(messages) == [c.message_id for c in script.chat[:5]]
            edited = messages[update.message_id]
            assert (edited["text"], edited["edited"], edited["deleted"]) == (update.text, True, False)
            assert edited["edited_at_ms"] - edited["timestamp"] == update.at_ms - reply.at_ms
            gone = messages[delete.message_id]
            assert (gone["text"], gone["deleted"], gone["versions"]) == ("", True, 2)
            # a thread: the reply names its parent (deleted since), the parent lists it
            assert messages[reply.message_id]["parent_message_id"] == first.message_id
            assert messages[first.message_id]["replies"] == [reply.message_id]
            dm = messages[direct.message_id]
            if direct.receiver is not None:
                assert (dm["receiver_user_id"], dm["receiver_name"]) == (direct.receiver.user_id,
                                                                         direct.receiver.user_name)
                assert (dm["sender_user_id"], dm["sender_name"]) == (direct.sender.user_id,
                                                                     direct.sender.user_name)
                assert dm["chat_session_type"] == 2
            assert messages[shared.message_id]["files"] == [
                {"file_id": shared.files[0]["file_id"], "file_name": "report.pdf", "file_size": 48213,
                 "file_type": "pdf"}]

            history = (await http.get(f"{chat}/{update.message_id}/history")).json()
            assert [(v["operation"], v["text"]) for v in history["versions"]] == [
                ("new", reply.text), ("update", update.text)]
            assert history["message"]["text"] == update.text
            assert (await http.get(f"{chat}/no-such-message/history")).status_code == 404
            with_history = (await http.get(chat, params={"history": "true"})).json()["messages"]
            deleted = next(m for m in with_history if m["message_id"] == delete.message_id)
            assert [v["operation"] for v in deleted["history"]] == ["new", "delete"]
            assert deleted["history"][0]["text"] == first.text

            pages, after = [], None
            while True:
                page = (await http.get(chat, params={"limit": 2, "after": after})).json()
                pages += page["messages"]
                if (after := page["next"]) is None:
                    break
            assert sorted(m["message_id"] for m in pages) == sorted(messages)

            found = (await http.get("/api/search", params={"q": f'"{update.text}"', "kinds": "chat",
                                                           "meeting": uuid})).json()["results"]
            assert [r["text"] for r in found] == [update.text]
            found = (await http.get("/api/search", params={"q": f'"{first.text}"', "kinds": "chat",
                                                           "meeting": uuid})).json()["results"]
            assert first.text not in [r["text"] for r in found]  # deleted: never found

            # the dashboard's chat panel: edited and deleted marked, the reply, the file
            assert (await http.post("/login", data={"key": API_KEY})).status_code == 303
            panel = (await http.get(f"/meetings/{quote(uuid, safe='')}")).text
            panel = panel[panel.index('id="chat"'):panel.index('id="people-h"')]
            assert "(edited)" in panel and "message deleted" in panel and "📎 report.pdf" in panel
            assert 'class=" reply"' in panel and "1 reply" in panel
            assert html.escape(first.text) not in panel  # deleted: only its history holds the text

        items = await run.gateway.store.feed(meeting_uuid=uuid, kinds=[FeedKind.CHAT])
        said = [msgspec.json.decode(i.data) for i in items if i.type == "chat.message"]
        assert [(b["message_id"], b["operation"]) for b in said] == [
            (c.message_id, c.operation.name.lower()) for c in script.chat]
        assert said[-1]["deleted"] and said[-2]["edited"]
