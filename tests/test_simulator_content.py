"""What Zoom's streams carry beyond the common path: transcript languages and attributes,
structured chat, every product's events (sharing, video on/off, chat groups, Contact
Center) gated by subscription, and AI-interpreter audio metadata. Pure checks on the
scripts and messages first, then a bare client on loopback TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import (
    ChatOperation,
    ChatSessionType,
    EventType,
    MediaType,
    Product,
    TranscriptLanguage,
    ZccEventType,
)
from rtms_gateway.simulator.media import (
    FUTURE_FIELDS,
    FUTURE_FRAME_FIELDS,
    chat_message,
    interpreter_metadata,
    transcript_language,
    transcript_message,
)
from rtms_gateway.simulator.scenario import CHAT_KINDS, ScriptEvent, Utterance, build_meeting
from tests.peers.minimal_client import MediaRequest

TIMEOUT = 20
EN, JA, DE = int(TranscriptLanguage.ENGLISH), int(TranscriptLanguage.JAPANESE), int(TranscriptLanguage.GERMAN)


# ---- transcripts ------------------------------------------------------------------------------


def _said(start_ms: int, language: int = JA) -> Utterance:
    speaker = build_meeting(1).participants[0]
    return Utterance(speaker, "text", start_ms, start_ms + 500, language)


@pytest.mark.parametrize(("params", "start_ms", "expected"), [
    (None, 29_999, EN),  # English for the first 30 s
    (None, 30_000, JA),  # then the language detected
    (m.TranscriptParams(src_language=DE), 1_000, DE),  # the source language instead of English
    (m.TranscriptParams(src_language=DE), 31_000, JA),
    (m.TranscriptParams(src_language=DE, enable_lid=False), 31_000, DE),  # pinned: no detection
    (m.TranscriptParams(src_language=int(TranscriptLanguage.NONE)), 0, JA),  # -1: detection from the start
])
def test_transcript_language_is_the_source_for_30_s_then_detected_unless_pinned(params, start_ms, expected):
    assert transcript_language(_said(start_ms), params, 30_000) == expected


def test_some_transcripts_carry_an_attribute_and_the_message_says_it_only_then():
    script = build_meeting(3, duration_s=12.0)
    with_attr = [u for u in script.utterances if u.attribute is not None]
    assert with_attr and len(with_attr) < len(script.utterances)
    for u in script.utterances:
        content = msgspec_dict(transcript_message(u, 0, None, zcc=False, lid_warmup_ms=0))["content"]
        assert content.get("attribute") == u.attribute and content["language"] == u.language


def msgspec_dict(msg: m.Message) -> dict:
    return json.loads(m.encode(msg))


# ---- structured chat --------------------------------------------------------------------------


def test_chat_scripts_cycle_through_new_reply_direct_file_update_and_delete():
    script = build_meeting(5, duration_s=10.0, chat_lines=len(CHAT_KINDS))
    new, _, reply, direct, file, update, delete = script.chat
    assert [c.operation for c in script.chat] == [ChatOperation.NEW] * 5 + [ChatOperation.UPDATE,
                                                                            ChatOperation.DELETE]
    assert reply.parent_message_id == new.message_id
    assert direct.receiver is not None and direct.receiver != direct.sender
    assert direct.session_type is ChatSessionType.INDIVIDUAL and new.session_type is ChatSessionType.EVERYONE
    assert file.files and file.files[0]["file_name"] == "report.pdf"
    edited = next(c for c in script.chat if c.message_id == update.message_id and c is not update)
    assert update.text == edited.text + " (edited)" and update.sender == edited.sender
    assert delete.message_id == new.message_id and delete.text == ""


def test_short_meetings_carry_plain_chat_messages_only():
    script = build_meeting(5, duration_s=6.0, offered=MediaType.CHAT)
    assert len(script.chat) == 2 and {c.operation for c in script.chat} == {ChatOperation.NEW}


def test_a_chat_message_carries_the_fields_the_reference_names():
    script = build_meeting(5, duration_s=10.0, chat_lines=len(CHAT_KINDS))
    _, _, reply, direct, file, update, _ = (msgspec_dict(chat_message(c, 1000))["content"] for c in script.chat)
    assert reply["parent_message_id"] == script.chat[0].message_id
    assert direct["receiver"]["user_id"] == script.chat[3].receiver.user_id
    assert direct["chat_session"]["type"] == ChatSessionType.INDIVIDUAL
    assert direct["sender"] == {"user_id": script.chat[3].sender.user_id, "user_name": script.chat[3].sender.user_name}
    assert file["files"][0]["file_id"] and update["operation_type"] == ChatOperation.UPDATE
    assert "receiver" not in reply and "files" not in reply


# ---- events -----------------------------------------------------------------------------------


def _kinds(script) -> list[int]:
    return [e.event.event_type for e in script.events]


def test_a_meeting_with_chat_has_a_chat_groups_life_and_video_goes_off_with_the_leaver():
    with_leaver = (build_meeting(seed, duration_s=20.0) for seed in range(50))
    script = next(s for s in with_leaver if EventType.PARTICIPANT_LEAVE in _kinds(s))
    kinds = _kinds(script)
    for kind in range(EventType.CHAT_GROUP_CREATE, EventType.CHAT_GROUP_MEMBER_STATUS_UPDATE + 1):
        assert kind in kinds
    assert {EventType.SHARING_START, EventType.SHARING_STOP, EventType.PARTICIPANT_VIDEO_ON,
            EventType.PARTICIPANT_VIDEO_OFF} <= set(kinds)
    off = next(e for e in script.events if e.event.event_type == EventType.PARTICIPANT_VIDEO_OFF)
    leave = next(e for e in script.events if e.event.event_type == EventType.PARTICIPANT_LEAVE)
    assert off.at_ms == leave.at_ms and off.event.participants == leave.event.participants
    gone = off.event.participants[0].user_id
    assert gone in script.video_on_at(off.at_ms - 1) and gone not in script.video_on_at(off.at_ms)


def test_video_flows_only_while_someone_has_video_on():
    base = build_meeting(2, duration_s=20.0, offered=MediaType.VIDEO)
    everyone = [m.Participant(user_id=p.user_id) for p in base.participants]
    events = [ScriptEvent(0, m.Event(event_type=int(EventType.PARTICIPANT_VIDEO_ON), participants=everyone[:1])),
              ScriptEvent(5000, m.Event(event_type=int(EventType.PARTICIPANT_VIDEO_OFF), participants=everyone[:1])),
              ScriptEvent(9000, m.Event(event_type=int(EventType.PARTICIPANT_VIDEO_ON), participants=everyone[1:2]))]
    script = dataclasses.replace(base, events=events)
    assert script.video_subject_at(100) == base.participants[0]  # the only camera on
    assert script.video_subject_at(6000) is None  # nobody's: no video
    assert script.video_subject_at(9000) == base.participants[1]


def test_contact_center_calls_carry_every_event_8_to_29_with_participant_info():
    script = build_meeting(4, product=Product.CONTACT_CENTER, duration_s=20.0)
    assert set(_kinds(script)) == {int(k) for k in ZccEventType}
    for item in script.events:
        info = item.event.participant_info
        assert info is not None and info["participant_mode"] in ("caller", "callee")
        assert {"channel_id", "queue_id", "queue_name", "account_id", "division_id", "phone_number",
                "user_id", "display_name"} <= set(info)


def test_interpreter_metadata_names_the_language_pairs():
    script = build_meeting(1)
    meta = msgspec_dict(interpreter_metadata(script, m.AudioParams(sample_rate=3, channel=2), 5))
    assert meta["msg_type"] == 23
    interp = meta["content"]["interpreter"]
    assert (interp["sample_rate"], interp["channel"], interp["timestamp"]) == (48000, 2, 5)
    assert interp["target"][0]["lid"] == TranscriptLanguage.SPANISH
    assert {s["user_id"] for s in interp["speaker"]} == {p.user_id for p in script.participants}


# ---- on the wire ---------------------------------------------------------------------------


async def _run(sim_and_client, script=None, *, sim=None, **client):
    simulator, peer = await sim_and_client(sim=sim, **client)
    handle = simulator.start_meeting(script) if script is not None else simulator.start_meeting(duration=2.0)
    record = await handle.wait(TIMEOUT)
    log = peer.streams[handle.script.rtms_stream_id]
    await asyncio.wait_for(log.done.wait(), TIMEOUT)
    return handle, record, log


async def test_transcripts_in_the_detected_language_once_detection_runs(sim_and_client):
    script = build_meeting(9, duration_s=3.0, offered=MediaType.TRANSCRIPT)
    _handle, record, log = await _run(sim_and_client, script, sim={"lid_warmup_s": 0.0})
    got = [msg["content"]["language"] for msg in log.of_type(17, "transcript")]
    assert got == [u.language for u in script.utterances] and record.sent.transcripts == len(got)


async def test_structured_chat_on_the_wire(sim_and_client):
    script = build_meeting(5, duration_s=3.0, offered=MediaType.CHAT, chat_lines=len(CHAT_KINDS))
    _, _record, log = await _run(sim_and_client, script, media=[MediaRequest("chat", 16)])
    got = [msg["content"] for msg in log.of_type(18, "chat")]
    assert [c["operation_type"] for c in got] == [int(c.operation) for c in script.chat]
    assert [c["message_id"] for c in got] == [c.message_id for c in script.chat]
    assert got[2]["parent_message_id"] == got[0]["message_id"] and "receiver" in got[3] and got[4]["files"]


async def test_events_reach_a_client_only_as_subscribed(sim_and_client):
    script = build_meeting(2, duration_s=3.0, offered=MediaType.TRANSCRIPT | MediaType.CHAT | MediaType.DESKSHARE)
    _, _record, log = await _run(sim_and_client, script, events=(EventType.SHARING_START, EventType.CHAT_GROUP_CREATE))
    got = {msg["event"]["event_type"] for msg in log.of_type(6)}
    # the two subscribed, and the one that needs no subscription; no joins, no speakers
    assert got == {EventType.FIRST_PACKET_TIMESTAMP, EventType.SHARING_START, EventType.CHAT_GROUP_CREATE}
    group = next(msg["event"] for msg in log.of_type(6) if msg["event"]["event_type"] == EventType.CHAT_GROUP_CREATE)
    assert group["chat_group"]["id"] and isinstance(group["timestamp"], int)


async def test_contact_center_events_carry_event_ts_and_participant_info(sim_and_client):
    script = build_meeting(4, product=Product.CONTACT_CENTER, duration_s=3.0, offered=MediaType.TRANSCRIPT)
    _, _, log = await _run(sim_and_client, script, events=tuple(range(8, 30)))
    events = [msg["event"] for msg in log.of_type(6) if msg["event"]["event_type"] != EventType.FIRST_PACKET_TIMESTAMP]
    assert {e["event_type"] for e in events} == {int(k) for k in ZccEventType}
    assert all(isinstance(e["event_ts"], int) and "timestamp" not in e and e["participant_info"]["channel_id"]
               for e in events)


async def test_ai_interpreter_metadata_precedes_the_audio(sim_and_client):
    script = build_meeting(6, duration_s=1.0, offered=MediaType.AUDIO)
    _, record, log = await _run(sim_and_client, script, sim={"ai_interpreter": True},
                                media=[MediaRequest("audio", 1)])
    kinds = [msg["msg_type"] for msg in log.media["audio"] if msg["msg_type"] in (14, 23)]
    assert kinds[0] == 23 and kinds.count(23) == record.audio_metadata == 1 and 14 in kinds


async def test_future_fields_ride_on_transcripts_chat_and_events_when_asked(sim_and_client):
    script = build_meeting(3, duration_s=3.0, offered=MediaType.TRANSCRIPT | MediaType.CHAT)
    _, record, log = await _run(sim_and_client, script, sim={"future_fields": True},
                                media=[MediaRequest("transcript", 8), MediaRequest("chat", 16)])
    frames = [*log.of_type(17, "transcript"), *log.of_type(18, "chat"), *log.of_type(6)]
    assert len(frames) == record.sent.transcripts + record.sent.chat + record.sent.events > 0
    for frame in frames:
        payload = frame["event" if frame["msg_type"] == 6 else "content"]
        assert {k: payload[k] for k in FUTURE_FIELDS} == FUTURE_FIELDS
        assert {k: frame[k] for k in FUTURE_FRAME_FIELDS} == FUTURE_FRAME_FIELDS
    # typed, they are what the simulator would send without them
    assert [m.decode_server_message(json.dumps(f)).content for f in log.of_type(17, "transcript")] == \
        record.transcripts
