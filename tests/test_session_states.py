"""Session states (SESSION_STATE_UPDATE) and the AI interpreter's audio metadata (msg 23)
reach the timeline: stored, listed by `/events`, and items of the feed. The simulator is
Zoom, over loopback; the store a real SQLite file."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import msgspec

from rtms_gateway.gateway.convert import audio_metadata_record, session_state_record
from rtms_gateway.protocol.constants import MediaType, SessionState, StopReason
from rtms_gateway.protocol.messages import AudioMetadata, SessionStateUpdate
from rtms_gateway.simulator.faults import Fault, FaultKind
from rtms_gateway.sinks.exports import timeline_event_name
from rtms_gateway.sinks.feed import event_item
from rtms_gateway.sinks.records import GatewayEvent

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually

SESSION_EVENTS = ("session_started", "session_paused", "session_resumed", "session_stopped")


def test_each_session_state_has_its_own_event_type_named_and_fed_as_a_meeting_state():
    for state in SessionState:
        msg = SessionStateUpdate(state=int(state), timestamp=5, rtms_session_id="s-1")
        row = session_state_record("m", "st", msg)
        assert timeline_event_name("meeting", row.event_type) == "session_" + state.name.lower()
        assert event_item(row.event_type) == ("meeting", "meeting.session_state")
        assert row.timestamp == 5 and row.payload is not None
        assert row.payload["state"] == state and row.payload["rtms_session_id"] == "s-1"
    # A state Zoom's reference does not list is kept, its number in the payload.
    odd = session_state_record("m", "st", SessionStateUpdate(state=77, timestamp=5))
    assert odd.event_type == GatewayEvent.SESSION_STATE
    assert timeline_event_name("meeting", odd.event_type) == "session_state"
    assert odd.payload is not None and odd.payload["state"] == 77
    # Zoom's own event types are untouched by the gateway's.
    assert max(GatewayEvent) > min(GatewayEvent) > 100


def test_audio_metadata_keeps_its_content_whole_and_takes_the_interpreters_time():
    content = {"interpreter": {"lid": 9, "timestamp": 1234, "target": [{"lid": 40}], "new": "x"}}
    row = audio_metadata_record("m", "st", AudioMetadata(content=content))
    assert row.event_type == GatewayEvent.AUDIO_METADATA and row.timestamp == 1234
    assert row.payload == content and timeline_event_name("meeting", row.event_type) == "audio_metadata"
    assert event_item(row.event_type) == ("meeting", "meeting.audio_metadata")
    # No usable time in it: the time it arrived.
    for odd in ({}, {"interpreter": "no"}, {"interpreter": {"timestamp": "soon"}}):
        assert audio_metadata_record("m", "st", AudioMetadata(content=odd)).timestamp > 1234


async def _events(run: Any, uuid: str) -> list[dict[str, Any]]:
    async with run.http() as http:
        answer = await http.get(f"/api/meetings/{quote(uuid, safe='')}/events")
        return answer.json()["events"] if answer.status_code == 200 else []


async def test_a_pause_and_a_reconnect_are_in_the_timeline_and_the_feed(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rtms_gateway.gateway.manager")
    async with GatewayWithSimulator(tmp_path, simulator={"ai_interpreter": True},
                                    RTMS_MEDIA="audio,transcript", RTMS_RECONNECT_INITIAL_S="0.1") as run:
        # Paused at 0.3 s for 0.6 s, then signaling dropped: the gateway reconnects, and
        # Zoom (the simulator) says RESUMED for the pause's end only.
        faults = [Fault(FaultKind.PAUSE, 0.3, 0.6), Fault(FaultKind.DROP_SIGNALING, 1.5)]
        handle = run.simulator.start_meeting(duration=6.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT,
                                             faults=faults)
        record = await handle.wait(40)
        await run.settle()
        uuid = handle.script.owner_id
        assert record.pauses == 1 and record.audio_metadata >= 1, record.summary_line()
        assert record.ready_acks == 2, record.summary_line()  # connected again before the end
        # once ready again, the gateway asked where the stream and the session stand
        assert record.state_requests == {"stream": 1, "session": 1}, record.state_requests

        async def stopped_stored() -> bool:
            return any(e["event"] == "session_stopped" for e in await _events(run, uuid))

        assert await eventually(stopped_stored, 20)
        events = await _events(run, uuid)
        states = [e["event"] for e in events if e["event"].startswith("session_")]
        # once each, in order: no RESUMED for the reconnect, and the answer "started" to the
        # gateway's question after it (the session was running) is nothing new
        assert states == list(SESSION_EVENTS)
        by_name = {e["event"]: e for e in events}
        assert by_name["session_paused"]["payload"]["state"] == SessionState.PAUSED
        assert by_name["session_stopped"]["payload"]["stop_reason"] == StopReason.MEETING_ENDED
        assert by_name["session_paused"]["timestamp_iso"]
        metadata = [e for e in events if e["event"] == "audio_metadata"]
        assert metadata and metadata[0]["payload"]["interpreter"]["target"][0]["lid"] >= 0

        feed = await run.gateway.store.feed(meeting_uuid=uuid)
        fed = [(i.kind, i.type, msgspec.json.decode(bytes(i.data))["event"]) for i in feed
               if i.type in ("meeting.session_state", "meeting.audio_metadata")]
        assert [f for f in fed if f[1] == "meeting.session_state"] == [
            ("meeting", "meeting.session_state", name) for name in SESSION_EVENTS]
        assert ("meeting", "meeting.audio_metadata", "audio_metadata") in fed
    said = [r.getMessage() for r in caplog.records if r.name == "rtms_gateway.gateway.manager"]
    assert any(m.endswith(": session paused") for m in said)
    assert any(m.endswith(": session stopped (reason 6)") for m in said)
