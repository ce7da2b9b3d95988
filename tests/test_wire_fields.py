"""Nothing from the wire is dropped unseen: fields no model declares, sent by the simulator
as a later Zoom may send them, are stored with each transcript segment, chat message and
event, and the API shows them."""

from __future__ import annotations

from urllib.parse import quote

from rtms_gateway.simulator.media import FUTURE_FIELDS, FUTURE_FRAME_FIELDS

from .gateway_harness import GatewayWithSimulator

EXTRAS = {**FUTURE_FIELDS, "_frame": FUTURE_FRAME_FIELDS}


async def test_fields_no_model_declares_are_stored_and_shown(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"future_fields": True}) as run:
        handle = run.simulator.start_meeting(duration=4.0)
        record = await handle.wait(30)
        await run.settle()
        assert record.outcome == "completed", record.summary_line()
        uuid, store = handle.script.owner_id, run.gateway.store

        segments = await store.transcript(uuid)
        assert [s.text for s in segments] == [t.data for t in record.transcripts]
        assert all(s.raw == EXTRAS for s in segments)  # only what the columns do not hold
        chats = await store.chat(uuid)
        assert len(chats) == len(record.chat) > 0
        for chat in chats:  # the content as sent: declared fields and the others
            assert chat.raw is not None and chat.raw["message_id"] == chat.message_id
            assert {k: chat.raw[k] for k in EXTRAS} == EXTRAS
        events = [e for e in await store.timeline(uuid) if e.event_type in record.events]
        assert events and all(e.payload is not None and e.payload["event_type"] == e.event_type
                              and {k: e.payload[k] for k in EXTRAS} == EXTRAS for e in events)

        base = f"/api/meetings/{quote(uuid, safe='')}"
        async with run.http() as http:
            shown = (await http.get(f"{base}/transcript")).json()["segments"]
            assert [s["raw"] for s in shown] == [EXTRAS] * len(segments)
            messages = (await http.get(f"{base}/chat")).json()["messages"]
            assert all(m["raw"]["future_field"] == FUTURE_FIELDS["future_field"] for m in messages)
            timeline = (await http.get(f"{base}/events")).json()["events"]
            assert sum("future_field" in (e["payload"] or {}) for e in timeline) == len(events)


async def test_without_them_segments_carry_no_raw(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=2.0)
        await handle.wait(30)
        await run.settle()
        segments = await run.gateway.store.transcript(handle.script.owner_id)
        assert segments and all(s.raw is None for s in segments)
        async with run.http() as http:
            shown = (await http.get(f"/api/meetings/{quote(handle.script.owner_id, safe='')}/transcript")).json()
        assert all("raw" not in s for s in shown["segments"])
