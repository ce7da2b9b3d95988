"""Zoom's side of a stream as pure state machines: handshake acceptance, phases,
keep-alive timing and faults, with time passed in. No sockets, no event loop, no sleeps."""

import ast
from pathlib import Path

import msgspec
import pytest

from rtms_gateway import simulator
from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import (
    KEEP_ALIVE_MAX_MISSED,
    EventType,
    MediaType,
    SessionState,
    StatusCode,
    StopReason,
    StreamState,
)
from rtms_gateway.protocol.errors import LocalProtocolError
from rtms_gateway.protocol.signature import signature
from rtms_gateway.simulator.faults import (
    FUZZ_PER_TICK,
    MALFORMED_FRAMES,
    Fault,
    FaultInjector,
    FaultKind,
    truncated,
)
from rtms_gateway.simulator.records import MeetingRecord
from rtms_gateway.simulator.session import (
    PHASE_MOVES,
    Close,
    CloseCode,
    Drop,
    HandshakeRules,
    MediaGrant,
    PauseReading,
    Phase,
    Refusal,
    Send,
    SendEvent,
    SendRaw,
    ServerSocket,
    SignalingGrant,
    SocketState,
    StartFeeds,
    StartStreaming,
    StopFeeds,
    StreamSession,
    StreamSettings,
    Undecodable,
    Wake,
    handshake_response,
)

CLIENT_ID, SECRET = "cid", "secret"
OWNER, STREAM = "uuid/a+b==", "stream-1"
SIGNATURE = signature(CLIENT_ID, SECRET, OWNER, STREAM)
SETTINGS = StreamSettings(keepalive_interval=10.0, signaling_reconnect_window=60.0, media_reconnect_window=65.0)
STAMP = 1_700_000_000_000


def new_stream(offered=MediaType.AUDIO | MediaType.TRANSCRIPT, **kw):
    record = MeetingRecord(product="meeting", owner_id=OWNER, rtms_stream_id=STREAM, rtms_session_id="sess-1")
    return StreamSession(record, duration_s=600.0, offered=offered, settings=SETTINGS, **kw)


def signaling_req(**over):
    fields = {"rtms_stream_id": STREAM, "signature": SIGNATURE, "meeting_uuid": OWNER, "sequence": 1}
    return m.SignalingHandshakeReq(**{**fields, **over})


def media_req(media_type=MediaType.AUDIO, **over):
    fields = {"rtms_stream_id": STREAM, "signature": SIGNATURE, "meeting_uuid": OWNER, "sequence": 2,
              "media_type": int(media_type)}
    return m.DataHandshakeReq(**{**fields, **over})


def admit(stream, role, frame, rules=None, now=0.0):
    socket = ServerSocket(role, now)
    if isinstance(frame, bytes):
        frame = socket.receive(frame)
    decision = (rules or HandshakeRules(CLIENT_ID, SECRET)).admit(
        socket, frame, lambda sid: stream if sid == STREAM else None, now)
    return socket, decision


def connected(stream, now=0.0, rules=None):
    """A signaling socket whose handshake was accepted; the effects so far are taken."""
    socket, grant = admit(stream, "signaling", signaling_req(), rules, now)
    assert isinstance(grant, SignalingGrant)
    stream.attach_signaling(socket, grant.request)
    stream.effects()
    return socket


def media(stream, media_type=MediaType.AUDIO, now=0.0):
    socket, grant = admit(stream, "media", media_req(media_type), now=now)
    assert isinstance(grant, MediaGrant), grant
    stream.attach_media(socket, grant)
    stream.effects()
    return socket


def streaming(stream, now=0.0):
    sig = connected(stream, now)
    audio = media(stream, now=now)
    stream.receive(sig, m.ClientReadyAck(rtms_stream_id=STREAM), now, STAMP)
    stream.effects()
    return sig, audio


def sent(effects, socket=None):
    return [e.message for e in effects if isinstance(e, Send) and (socket is None or e.socket is socket)]


def closed(effects):
    return {(e.socket, e.code, e.reason) for e in effects if isinstance(e, Close)}


# ---- handshake acceptance -------------------------------------------------------------


def test_a_signed_signaling_handshake_for_a_known_stream_is_granted():
    stream = new_stream()
    socket, decision = admit(stream, "signaling", signaling_req())
    assert decision == SignalingGrant(stream, signaling_req())
    stream.attach_signaling(socket, decision.request)
    assert socket.state is SocketState.OPEN
    assert stream.phase is Phase.CONNECTED
    assert SendEvent(EventType.FIRST_PACKET_TIMESTAMP) in stream.effects()
    assert [h.status_code for h in stream.record.handshakes] == [StatusCode.OK]


@pytest.mark.parametrize(("role", "status"), [
    ("signaling", StatusCode.INVALID_PAYLOAD),
    ("media", StatusCode.INVALID_PAYLOAD),
])
def test_a_first_frame_that_does_not_decode_is_refused_as_a_bad_payload(role, status):
    _, decision = admit(new_stream(), role, b"\x00 not json")
    assert isinstance(decision, Refusal)
    assert decision.status == status and decision.sequence is None and decision.stream is None
    assert decision.reason.startswith("invalid handshake:")


def test_a_bad_media_params_block_is_refused_with_that_blocks_status():
    frame = msgspec.json.encode({"msg_type": 3, "rtms_stream_id": STREAM, "signature": SIGNATURE,
                                 "meeting_uuid": OWNER, "media_type": 1, "media_params": {"audio": 5}})
    _, decision = admit(new_stream(), "media", frame)
    assert isinstance(decision, Refusal) and decision.status == StatusCode.INVALID_MEDIA_AUDIO_PARAMS


def test_a_media_handshake_on_the_signaling_path_is_the_wrong_message_type():
    _, decision = admit(new_stream(), "signaling", media_req())
    assert isinstance(decision, Refusal) and decision.status == StatusCode.INVALID_MESSAGE_TYPE


def test_an_unknown_or_stopped_stream_is_refused_without_a_stream_to_record_it():
    stream = new_stream()
    _, unknown = admit(stream, "signaling", signaling_req(rtms_stream_id="other"))
    stream.stop(StopReason.MEETING_ENDED)
    _, stopped = admit(stream, "signaling", signaling_req())
    for decision in (unknown, stopped):
        assert isinstance(decision, Refusal)
        assert decision.status == StatusCode.INVALID_RTMS_STREAM_ID and decision.stream is None


def test_a_handshake_without_any_meeting_id_is_a_bad_payload():
    _, decision = admit(new_stream(), "signaling", signaling_req(meeting_uuid=None))
    assert isinstance(decision, Refusal) and decision.status == StatusCode.INVALID_PAYLOAD
    assert "meeting_uuid" in decision.reason


def test_a_wrong_signature_is_refused_and_recorded_on_the_stream():
    stream = new_stream()
    socket, decision = admit(stream, "signaling", signaling_req(signature="0" * 64))
    assert isinstance(decision, Refusal) and decision.status == StatusCode.INVALID_SIGNATURE
    stream.refused(socket, decision)
    assert socket.state is SocketState.REFUSED
    handshakes = [(h.socket, h.status_code) for h in stream.record.handshakes]
    assert handshakes == [("signaling", StatusCode.INVALID_SIGNATURE)]


def test_a_valid_signature_over_another_meeting_is_refused():
    other = "another-meeting"
    req = signaling_req(meeting_uuid=other, signature=signature(CLIENT_ID, SECRET, other, STREAM))
    _, decision = admit(new_stream(), "signaling", req)
    assert isinstance(decision, Refusal) and decision.status == StatusCode.INVALID_SIGNATURE
    assert "meeting_uuid" in decision.reason


def test_a_second_signaling_socket_is_refused_while_the_first_is_live():
    stream = new_stream()
    connected(stream)
    _, decision = admit(stream, "signaling", signaling_req())
    assert isinstance(decision, Refusal) and decision.status == StatusCode.DUPLICATE_SIGNAL_REQUEST


def test_a_second_signaling_socket_is_welcome_once_the_first_is_closing():
    stream = new_stream()
    first = connected(stream)
    first.closing()
    _, decision = admit(stream, "signaling", signaling_req())
    assert isinstance(decision, SignalingGrant)


def test_under_the_evict_policy_a_newcomer_replaces_signaling_and_its_media():
    stream = new_stream()
    sig, audio = streaming(stream)
    rules = HandshakeRules(CLIENT_ID, SECRET, duplicate_signaling="evict")
    newcomer, decision = admit(stream, "signaling", signaling_req(), rules)
    assert isinstance(decision, SignalingGrant)
    stream.attach_signaling(newcomer, decision.request)
    effects = stream.effects()
    reason = "replaced by a new signaling connection"
    assert closed(effects) == {(sig, CloseCode.POLICY_VIOLATION, reason), (audio, CloseCode.POLICY_VIOLATION, reason)}
    assert StopFeeds(None) in effects
    assert stream.signaling is newcomer and stream.media == []
    assert stream.phase is Phase.CONNECTED  # streaming resumes on the newcomer's ready


def test_a_media_type_already_served_is_a_duplicate_and_all_excludes_the_rest():
    stream = new_stream()
    connected(stream)
    media(stream, MediaType.AUDIO)
    _, again = admit(stream, "media", media_req(MediaType.AUDIO))
    _, everything = admit(stream, "media", media_req(MediaType.ALL))
    assert isinstance(again, Refusal) and again.status == StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION
    assert isinstance(everything, Refusal) and everything.status == StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION

    unified = new_stream()
    connected(unified)
    media(unified, MediaType.ALL)
    _, after_all = admit(unified, "media", media_req(MediaType.TRANSCRIPT))
    assert isinstance(after_all, Refusal) and after_all.status == StatusCode.MEDIA_DATA_ALL_CONNECTION_EXIST


def test_a_media_grant_carries_what_the_socket_serves_with_defaults_filled_in():
    stream = new_stream()
    connected(stream)
    socket, grant = admit(stream, "media", media_req(MediaType.ALL))
    assert isinstance(grant, MediaGrant)
    assert grant.media == MediaType.AUDIO | MediaType.TRANSCRIPT and grant.unified
    assert grant.params.audio is not None and grant.params.audio.sample_rate is not None
    assert socket.label == "all"


def test_a_type_the_stream_does_not_offer_is_refused():
    stream = new_stream(offered=MediaType.TRANSCRIPT)
    _, decision = admit(stream, "media", media_req(MediaType.AUDIO))
    assert isinstance(decision, Refusal) and decision.status == StatusCode.MEDIA_TYPE_AUDIO_NOT_SUPPORT


def test_a_handshake_response_says_the_role_and_status():
    sig = handshake_response("signaling", StatusCode.OK, "", 4,
                             media_server=m.MediaServer(server_urls={"all": "wss://h/all"}))
    refused = handshake_response("media", StatusCode.INVALID_SIGNATURE, "no", None)
    assert isinstance(sig, m.SignalingHandshakeResp) and sig.sequence == 4 and sig.protocol_version == 1
    assert isinstance(refused, m.DataHandshakeResp) and refused.sequence == 0
    assert refused.payload_encrypted is None and refused.status_code == StatusCode.INVALID_SIGNATURE


# ---- phases -----------------------------------------------------------------------------


def test_every_phase_can_stop_and_stopped_is_final():
    assert PHASE_MOVES[Phase.STOPPED] == frozenset()
    for phase, moves in PHASE_MOVES.items():
        assert phase is Phase.STOPPED or Phase.STOPPED in moves


def test_a_stopped_stream_stays_stopped_when_its_sockets_go():
    stream = new_stream()
    sig, audio = streaming(stream)
    stream.stop(StopReason.MEETING_ENDED)
    stream.disconnected(sig, 1.0)
    stream.disconnected(audio, 1.0)
    assert stream.phase is Phase.STOPPED and stream.take_interruptions() == 0
    assert stream.effects() == [StopFeeds(None), StopFeeds(sig), StopFeeds(audio)]


def test_a_closed_socket_cannot_open():
    socket = ServerSocket("media", 0.0)
    socket.closed()
    with pytest.raises(LocalProtocolError):
        socket.opened()


def test_client_ready_starts_streaming_with_the_state_updates_first():
    stream = new_stream()
    sig = connected(stream)
    media(stream)
    stream.receive(sig, m.ClientReadyAck(rtms_stream_id=STREAM), 5.0, STAMP)
    effects = stream.effects()
    updates = sent(effects, sig)
    assert [type(u) for u in updates] == [m.StreamStateUpdate, m.SessionStateUpdate]
    assert updates[0].state == StreamState.ACTIVE and updates[1].state == SessionState.STARTED
    assert effects.index(StartStreaming(resumed=False)) > max(i for i, e in enumerate(effects) if isinstance(e, Send))
    assert stream.phase is Phase.STREAMING and stream.end_at == 605.0
    assert stream.record.ready_acks == 1


def test_a_media_socket_joining_a_streaming_stream_gets_feeds():
    stream = new_stream()
    streaming(stream)
    socket, grant = admit(stream, "media", media_req(MediaType.TRANSCRIPT))
    stream.attach_media(socket, grant)
    assert StartFeeds(socket) in stream.effects()


def test_losing_signaling_before_streaming_just_waits_for_the_client_again():
    stream = new_stream()
    sig = connected(stream)
    stream.disconnected(sig, 3.0)
    assert stream.phase is Phase.WAITING and stream.take_interruptions() == 0
    assert stream.poll(1000.0, STAMP) is None  # no reconnection window runs


def test_losing_signaling_after_streaming_interrupts_and_drops_every_socket():
    stream = new_stream()
    sig, audio = streaming(stream)
    stream.disconnected(sig, 10.0)
    effects = stream.effects()
    assert stream.phase is Phase.INTERRUPTED
    assert closed(effects) == {(audio, CloseCode.GOING_AWAY, "")}
    assert stream.take_interruptions() == 1 and stream.take_interruptions() == 0
    assert stream.record.interruptions == 1


def test_a_client_back_within_the_window_resumes_and_one_too_late_ends_the_stream():
    back = new_stream()
    sig, _ = streaming(back)
    back.disconnected(sig, 10.0)
    assert back.poll(69.9, STAMP) is None
    sig = connected(back, 69.9)
    media(back, now=69.9)
    back.receive(sig, m.ClientReadyAck(), 70.0, STAMP)
    assert StartStreaming(resumed=True) in back.effects()
    assert sent([*back.effects()]) == []
    assert back.poll(1000.0, STAMP) is None or back.phase is Phase.STREAMING

    late = new_stream()
    sig, _ = streaming(late)
    late.disconnected(sig, 10.0)
    assert late.poll(70.0, STAMP) == StopReason.AWAIT_RECONNECTION_TIMEOUT


def test_a_lost_media_socket_is_reported_on_signaling_and_has_its_own_window():
    stream = new_stream()
    _, audio = streaming(stream)
    stream.disconnected(audio, 20.0)
    effects = stream.effects()
    assert SendEvent(EventType.MEDIA_CONNECTION_INTERRUPTED) in effects
    assert StopFeeds(audio) in effects
    assert stream.phase is Phase.STREAMING and stream.served == {}
    assert stream.poll(84.9, STAMP) is None
    assert stream.poll(85.0, STAMP) == StopReason.AWAIT_RECONNECTION_TIMEOUT


def test_a_media_socket_back_in_time_closes_the_media_window():
    stream = new_stream()
    streaming(stream)
    stream.disconnected(stream.media[0], 20.0)
    again = media(stream, now=30.0)
    assert stream.served[MediaType.AUDIO] is again
    assert stream.poll(100.0, STAMP) is None


def test_stream_close_request_is_answered_and_asks_the_supervisor_to_stop():
    stream = new_stream()
    sig, _ = streaming(stream)
    stream.receive(sig, m.StreamCloseReq(rtms_stream_id=STREAM), 7.0, STAMP)
    (resp,) = sent(stream.effects(), sig)
    assert isinstance(resp, m.StreamCloseResp) and resp.status_code == StatusCode.OK
    assert stream.poll(7.0, STAMP) == StopReason.RECEIVER_REQUEST_CLOSE


def test_state_requests_are_answered_by_phase():
    stream = new_stream()
    sig = connected(stream)
    stream.receive(sig, m.StreamStateReq(rtms_stream_id=STREAM), 1.0, STAMP)
    (before,) = sent(stream.effects())
    stream.receive(sig, m.ClientReadyAck(), 1.0, STAMP)
    stream.effects()
    stream.receive(sig, m.SessionStateReq(rtms_session_id="sess-1"), 1.0, STAMP)
    (after,) = sent(stream.effects())
    assert before.state == StreamState.INACTIVE and after.state == SessionState.STARTED


def test_a_handshake_again_on_an_open_socket_is_answered_as_a_duplicate():
    stream = new_stream()
    sig, audio = streaming(stream)
    stream.receive(sig, signaling_req(sequence=9), 1.0, STAMP)
    stream.receive(audio, media_req(sequence=10), 1.0, STAMP)
    effects = stream.effects()
    (sig_resp,), (media_resp,) = sent(effects, sig), sent(effects, audio)
    assert sig_resp.status_code == StatusCode.DUPLICATE_SIGNAL_REQUEST and sig_resp.sequence == 9
    assert media_resp.status_code == StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION
    assert stream.record.unexpected == {"signaling:SignalingHandshakeReq": 1, "audio:DataHandshakeReq": 1}


def test_with_replay_a_join_sent_before_the_subscription_is_caught_up_once_subscribed():
    # Zoom replays nothing (the default); `replay_joins` is for clients that subscribe late.
    record = MeetingRecord(product="meeting", owner_id=OWNER, rtms_stream_id=STREAM, rtms_session_id="sess-1")
    stream = StreamSession(record, duration_s=600.0, offered=MediaType.AUDIO | MediaType.TRANSCRIPT,
                           settings=StreamSettings(replay_joins=True))
    sig, _ = streaming(stream)
    stream.scripted_event(EventType.PARTICIPANT_JOIN)
    assert not stream.wants_event(EventType.PARTICIPANT_JOIN)
    sub = m.EventSubscription(events=[m.EventSubscriptionItem(event_type=int(EventType.PARTICIPANT_JOIN),
                                                              subscribe=True)])
    stream.receive(sig, sub, 1.0, STAMP)
    assert SendEvent(EventType.PARTICIPANT_JOIN, present=True) in stream.effects()
    assert stream.wants_event(EventType.PARTICIPANT_JOIN)
    stream.receive(sig, sub, 2.0, STAMP)
    assert stream.effects() == []  # caught up once


def test_an_undecodable_frame_on_an_open_socket_is_counted_not_fatal():
    stream = new_stream()
    sig = connected(stream)
    stream.receive(sig, sig.receive(b"{broken"), 1.0, STAMP)
    assert isinstance(sig.receive(b"{broken"), Undecodable)
    assert stream.record.frames_rejected == 1 and stream.phase is Phase.CONNECTED


# ---- keep-alive -------------------------------------------------------------------------


def keepalives(effects):
    return [(e.socket, e.message) for e in effects if isinstance(e, Send) and isinstance(e.message, m.KeepAliveReq)]


def test_a_keep_alive_is_due_after_an_interval_of_sending_nothing():
    stream = new_stream()
    sig = connected(stream, now=0.0)
    stream.poll(9.9, STAMP)
    assert keepalives(stream.effects()) == []
    stream.poll(10.0, STAMP)
    ((socket, req),) = keepalives(stream.effects())
    assert socket is sig and req.timestamp == STAMP and req.sequence == 1


def test_any_frame_sent_postpones_the_keep_alive():
    stream = new_stream()
    sig = connected(stream, now=0.0)
    sig.sent(b"{}", 8.0)
    stream.poll(10.0, STAMP)
    assert keepalives(stream.effects()) == []
    assert sig.last_payload == b"{}"


def test_an_answer_echoing_a_pending_timestamp_clears_the_count_and_a_stray_echo_is_noted():
    stream = new_stream()
    sig = connected(stream, now=0.0)
    stream.poll(10.0, STAMP)
    stream.effects()
    stream.receive(sig, m.KeepAliveResp(timestamp=STAMP + 1), 10.5, STAMP)
    assert stream.record.keepalive_bad_echoes == 1 and sig.keepalive.pending == [STAMP]
    stream.receive(sig, m.KeepAliveResp(timestamp=STAMP), 10.5, STAMP)
    assert sig.keepalive.pending == [] and stream.record.keepalives_answered == {"signaling": 1}


def test_signaling_that_misses_every_keep_alive_interrupts_the_stream():
    stream = new_stream()
    sig, audio = streaming(stream)
    now = 0.0
    for i in range(KEEP_ALIVE_MAX_MISSED):
        now += 10.0
        audio.sent(b"media", now)  # media flows; only signaling goes unanswered
        assert stream.poll(now, STAMP + i) is None
        sig.sent(b"ka", now)  # what the transport reports once the request is written
    assert len(sig.keepalive.pending) == KEEP_ALIVE_MAX_MISSED
    assert stream.poll(now + 10.0, STAMP) is None
    effects = stream.effects()
    assert closed(effects) == {(sig, CloseCode.GOING_AWAY, "keep-alive timeout"),
                               (audio, CloseCode.GOING_AWAY, "keep-alive timeout")}
    assert stream.phase is Phase.INTERRUPTED
    assert stream.poll(now + 70.0, STAMP) == StopReason.KEEP_ALIVE_TIMEOUT


def test_a_media_socket_that_misses_every_keep_alive_is_lost_alone():
    stream = new_stream()
    sig, audio = streaming(stream)
    for i in range(KEEP_ALIVE_MAX_MISSED + 1):
        sig.sent(b"answered", 10.0 * (i + 1))  # signaling keeps busy, never due
        stream.poll(10.0 * (i + 1), STAMP)
    effects = stream.effects()
    assert closed(effects) == {(audio, CloseCode.GOING_AWAY, "")}
    assert SendEvent(EventType.MEDIA_CONNECTION_INTERRUPTED) in effects
    assert stream.phase is Phase.STREAMING and stream.media == []
    assert stream.poll(40.0 + 65.0, STAMP) == StopReason.KEEP_ALIVE_TIMEOUT


# ---- faults -----------------------------------------------------------------------------


def test_a_silent_fault_holds_keep_alives_until_it_ends():
    stream = new_stream()
    faults = FaultInjector(stream)
    streaming(stream)
    faults.inject(Fault(FaultKind.SILENT, 2.0, 30.0), now=5.0)
    assert stream.silent(34.9) and not stream.silent(35.0)
    stream.poll(20.0, STAMP)
    assert keepalives(stream.effects()) == []
    stream.poll(35.0, STAMP)
    assert len(keepalives(stream.effects())) == 2
    assert stream.record.faults == ["silent@2=30"]


def test_a_reject_fault_drops_signaling_and_refuses_the_next_handshake_once():
    stream = new_stream()
    faults = FaultInjector(stream)
    sig, _ = streaming(stream)
    faults.inject(Fault(FaultKind.REJECT, argument=float(StatusCode.INVALID_RTMS_STREAM_ID)), now=3.0)
    assert stream.effects() == [Drop(sig)]
    stream.disconnected(sig, 3.1)
    stream.effects()
    _, first = admit(stream, "signaling", signaling_req())
    _, second = admit(stream, "signaling", signaling_req())
    assert isinstance(first, Refusal) and first.status == StatusCode.INVALID_RTMS_STREAM_ID
    assert "fault injection" in first.reason
    assert isinstance(second, SignalingGrant)


def test_drop_faults_kill_a_connection_without_a_close():
    stream = new_stream()
    faults = FaultInjector(stream)
    sig, audio = streaming(stream)
    faults.inject(Fault(FaultKind.DROP_MEDIA), now=1.0)
    faults.inject(Fault(FaultKind.DROP_SIGNALING), now=1.0)
    assert stream.effects() == [Drop(audio), Drop(sig)]


def test_frame_faults_send_their_frames_on_the_sockets_they_name():
    stream = new_stream()
    faults = FaultInjector(stream)
    sig, audio = streaming(stream)
    for frame in (b"one", b"two"):
        audio.sent(frame, 1.0)
    sig.sent(b"signal-frame", 1.0)
    faults.inject(Fault(FaultKind.MALFORMED), now=2.0)
    assert stream.effects() == [SendRaw(sig, MALFORMED_FRAMES), SendRaw(audio, MALFORMED_FRAMES)]
    faults.inject(Fault(FaultKind.TRUNCATED), now=2.0)
    assert stream.effects() == [SendRaw(sig, (b"signal",)), SendRaw(audio, (b"t",))]
    faults.inject(Fault(FaultKind.DUPLICATE), now=2.0)
    assert stream.effects() == [SendRaw(audio, (b"one", b"two"))]
    faults.inject(Fault(FaultKind.SLOW_READER, argument=1.5), now=2.0)
    assert stream.effects() == [PauseReading(sig, 1.5), PauseReading(audio, 1.5)]


def test_truncating_before_anything_was_sent_still_cuts_a_frame():
    assert 0 < len(truncated(None)) < len(b'{"msg_type":12,"timestamp":1}')


def test_fuzz_spends_its_count_a_tick_at_a_time_the_same_for_the_same_seed():
    def run():
        stream = new_stream()
        streaming(stream)
        injector = FaultInjector(stream)
        injector.inject(Fault(FaultKind.FUZZ, argument=FUZZ_PER_TICK + 5), now=1.0)
        batches = []
        while injector.fuzzing:
            injector.fuzz()
            batches.append([e.frames for e in stream.effects()])
        return stream, batches

    stream, batches = run()
    assert [len(b) for b in batches] == [FUZZ_PER_TICK, 5]
    assert stream.record.garbage_sent == FUZZ_PER_TICK + 5
    assert run()[1] == batches


def test_a_fault_with_nothing_to_act_on_changes_nothing():
    stream = new_stream()
    faults = FaultInjector(stream)
    faults.inject(Fault(FaultKind.DROP_SIGNALING), now=1.0)
    faults.inject(Fault(FaultKind.DUPLICATE), now=1.0)
    assert stream.effects() == [] and stream.record.faults == ["drop-signaling@2", "duplicate@2"]


# ---- stop -------------------------------------------------------------------------------


def test_stopping_a_streaming_stream_says_goodbye_on_signaling():
    stream = new_stream()
    sig, _ = streaming(stream)
    assert stream.stop(StopReason.MEETING_ENDED) is True
    assert stream.effects() == [StopFeeds(None)]
    stream.farewell(StopReason.MEETING_ENDED, STAMP, streamed=True)
    terminated, stopped = sent(stream.effects(), sig)
    assert terminated.state == StreamState.TERMINATED and terminated.reason == StopReason.MEETING_ENDED
    assert stopped.state == SessionState.STOPPED
    assert stream.record.stop_reason == StopReason.MEETING_ENDED


def test_a_stream_stopped_while_interrupted_did_not_stream_to_the_end():
    stream = new_stream()
    sig, _ = streaming(stream)
    stream.disconnected(sig, 1.0)
    assert stream.stop(StopReason.AWAIT_RECONNECTION_TIMEOUT) is False
    stream.farewell(StopReason.AWAIT_RECONNECTION_TIMEOUT, STAMP, streamed=False)
    assert [e for e in stream.effects() if isinstance(e, Send)] == []


def test_the_supervisor_is_woken_when_something_it_waits_on_changes():
    stream = new_stream()
    stream.request_stop(StopReason.HOST_TRIGGERED)
    stream.request_stop(StopReason.MEETING_ENDED)
    assert stream.effects() == [Wake()]
    assert stream.poll(0.0, STAMP) == StopReason.HOST_TRIGGERED


# ---- where the rules live ---------------------------------------------------------------

IO_MODULES = {"asyncio", "socket", "ssl", "time", "datetime", "picows", "websockets", "httpx", "selectors",
              "threading"}


def _imports(name):
    """(level, module) of every import in simulator/<name>.py."""
    tree = ast.parse((Path(simulator.__file__).parent / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((0, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_the_session_and_the_rules_it_uses_touch_no_io_and_no_clock():
    for name in ("session", "faults", "params", "records"):
        for level, module in _imports(name):
            assert level or module.split(".")[0] not in IO_MODULES, f"{name}.py imports {module}"


def test_the_server_and_the_streams_do_not_import_each_other_and_the_session_imports_neither():
    assert (1, "stream") not in set(_imports("servers"))
    assert (1, "servers") not in set(_imports("stream"))
    assert not {(1, "servers"), (1, "stream"), (1, "faults"), (1, "wire")} & set(_imports("session"))


def test_the_simulator_imports_only_the_protocol_and_logging_from_the_gateway():
    for path in Path(simulator.__file__).parent.glob("*.py"):
        for level, module in _imports(path.stem):
            if level == 2:
                assert module.split(".")[0] in {"protocol", "logs"}, f"{path.name} imports ..{module}"
            assert not module.startswith("rtms_gateway"), f"{path.name} imports {module}"
