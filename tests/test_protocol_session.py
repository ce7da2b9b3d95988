import typing

import msgspec
import pytest

from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import EventType, MediaType, StatusCode, StreamState
from rtms_gateway.protocol.errors import LocalProtocolError, RemoteProtocolError
from rtms_gateway.protocol.session import (
    FrameRejected,
    HandshakeCompleted,
    HandshakeFailed,
    MediaSession,
    MediaState,
    ReadyAcknowledged,
    SessionEvent,
    SignalingSession,
    SignalingState,
    StreamIdentity,
)
from rtms_gateway.protocol.signature import signature

IDENT = StreamIdentity("stream-1", "uuid/a+b==", signature("cid", "secret", "uuid/a+b==", "stream-1"))
URLS = {"audio": "wss://h/a", "transcript": "wss://h/t", "all": "wss://h/all"}


def sent(session):
    return [msgspec.json.decode(f) for f in session.data_to_send()]


def wire(obj):
    return msgspec.json.encode(obj)


def connected_signaling(**kw):
    s = SignalingSession(IDENT, **kw)
    s.start()
    s.data_to_send()
    ev = s.receive(wire({"msg_type": 2, "status_code": 0, "reason": "",
                         "media_server": {"server_urls": URLS}}), 1.0)
    assert ev == HandshakeCompleted("signaling", URLS)
    s.data_to_send()  # the event subscription
    return s


def test_signaling_handshake_request_fields():
    s = SignalingSession(IDENT, buffer_data=False)
    s.start()
    (req,) = sent(s)
    assert req == {"msg_type": 1, "protocol_version": 1, "sequence": 1, "meeting_uuid": "uuid/a+b==",
                   "rtms_stream_id": "stream-1", "signature": IDENT.signature, "buffer_data": False}


def test_product_id_key_is_sent_besides_meeting_uuid():
    ident = StreamIdentity("s", "sess-1", "sig", id_key="session_id")
    s = SignalingSession(ident)
    s.start()
    (req,) = sent(s)
    assert req["meeting_uuid"] == req["session_id"] == "sess-1"


def test_rejection_surfaces_status_code_and_reason():
    s = SignalingSession(IDENT)
    s.start()
    ev = s.receive(wire({"msg_type": 2, "status_code": 3, "reason": "bad signature"}), 1.0)
    assert ev == HandshakeFailed("signaling", StatusCode.INVALID_SIGNATURE, "bad signature")
    assert s.state is SignalingState.REJECTED
    err = ev.error()
    assert err.status_code == 3 and "INVALID_SIGNATURE" in str(err) and "bad signature" in str(err)


def test_keep_alive_answer_echoes_timestamp_and_sequence():
    s = connected_signaling()
    assert s.receive(wire({"msg_type": 12, "timestamp": 1700000000123, "sequence": 9}), 2.0) is None
    assert sent(s) == [{"msg_type": 13, "timestamp": 1700000000123, "sequence": 9}]
    assert s.receive(wire({"msg_type": 12, "timestamp": 5}), 3.0) is None
    assert sent(s) == [{"msg_type": 13, "timestamp": 5}]
    assert s.keep_alives_answered == 2 and s.silent_for(13.0) == 10.0


def test_events_are_subscribed_right_after_the_signaling_handshake_before_any_media():
    s = SignalingSession(IDENT, events=[EventType.ACTIVE_SPEAKER_CHANGE, EventType.PARTICIPANT_JOIN])
    s.start()
    s.data_to_send()
    s.receive(wire({"msg_type": 2, "status_code": 0, "reason": "", "media_server": {"server_urls": URLS}}), 1.0)
    assert sent(s) == [
        {"msg_type": 5, "events": [{"event_type": 2, "subscribe": True}, {"event_type": 3, "subscribe": True}]},
    ]


def test_a_session_told_no_events_subscribes_to_everything_a_meeting_offers():
    s = SignalingSession(IDENT)
    s.start()
    s.data_to_send()
    s.receive(wire({"msg_type": 2, "status_code": 0, "reason": ""}), 1.0)
    (subscription,) = sent(s)
    assert [e["event_type"] for e in subscription["events"]] == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]


def test_ready_ack_waits_for_every_media_handshake():
    s = connected_signaling(events=[EventType.ACTIVE_SPEAKER_CHANGE, EventType.PARTICIPANT_JOIN])
    s.expect_media([MediaType.AUDIO, MediaType.TRANSCRIPT])
    assert s.media_ready(MediaType.AUDIO) is None and sent(s) == []
    assert s.media_ready(MediaType.TRANSCRIPT) == ReadyAcknowledged(frozenset({MediaType.AUDIO, MediaType.TRANSCRIPT}))
    assert sent(s) == [{"msg_type": 7, "rtms_stream_id": "stream-1"}]
    assert s.state is SignalingState.READY
    # a media socket that reconnects later re-sends the ACK, without subscribing again
    s.media_lost(MediaType.AUDIO)
    s.media_ready(MediaType.AUDIO)
    assert sent(s) == [{"msg_type": 7, "rtms_stream_id": "stream-1"}]


def test_rejected_media_is_not_waited_for():
    s = connected_signaling()
    s.expect_media([MediaType.AUDIO, MediaType.TRANSCRIPT])
    s.media_ready(MediaType.TRANSCRIPT)
    assert s.media_rejected(MediaType.AUDIO) is not None
    assert [f["msg_type"] for f in sent(s)] == [7]


def test_illegal_moves_are_local_protocol_errors():
    s = SignalingSession(IDENT)
    with pytest.raises(LocalProtocolError):
        s.media_ready(MediaType.AUDIO)
    with pytest.raises(LocalProtocolError):
        s.request_close()
    with pytest.raises(LocalProtocolError):
        SignalingSession(IDENT, events=[EventType.FIRST_PACKET_TIMESTAMP])
    with pytest.raises(LocalProtocolError):
        MediaSession(IDENT, MediaType(0))


def test_terminated_update_closes_with_stop_reason():
    s = connected_signaling()
    ev = s.receive(wire({"msg_type": 8, "state": StreamState.TERMINATED, "reason": 6, "timestamp": 1}), 2.0)
    assert isinstance(ev, m.StreamStateUpdate)
    assert s.state is SignalingState.CLOSED and s.stop_reason == 6


@pytest.mark.parametrize("state", [s for s in StreamState if s is not StreamState.TERMINATED])
def test_a_stream_state_other_than_terminated_ends_nothing(state):
    # TERMINATING included: the stream goes on until Zoom says TERMINATED.
    s = connected_signaling()
    s.expect_media([MediaType.AUDIO])
    s.media_ready(MediaType.AUDIO)
    ev = s.receive(wire({"msg_type": 8, "state": state, "reason": 0, "timestamp": 1}), 2.0)
    assert isinstance(ev, m.StreamStateUpdate) and ev.state == state
    assert s.state is SignalingState.READY and s.stop_reason is None


def test_state_requests_ask_for_the_stream_and_a_known_session_once_ready():
    s = connected_signaling()
    with pytest.raises(LocalProtocolError):  # nothing to ask before the stream is ready
        s.request_states("session-1")
    s.expect_media([MediaType.AUDIO])
    s.media_ready(MediaType.AUDIO)
    sent(s)
    s.request_states("session-1")
    assert sent(s) == [{"msg_type": 19, "rtms_stream_id": "stream-1"},
                       {"msg_type": 10, "rtms_session_id": "session-1"}]
    s.request_states(None)  # no session id heard yet: the stream only
    assert sent(s) == [{"msg_type": 19, "rtms_stream_id": "stream-1"}]
    answer = s.receive(wire({"msg_type": 20, "state": StreamState.ACTIVE, "rtms_stream_id": "stream-1",
                             "timestamp": 3}), 2.0)
    assert isinstance(answer, m.StreamStateResp) and s.state is SignalingState.READY


def test_a_stream_state_answer_of_terminated_ends_the_stream():
    # It ended while no socket was up: no update came, the answer says so.
    s = connected_signaling()
    s.receive(wire({"msg_type": 20, "state": StreamState.TERMINATED, "rtms_stream_id": "stream-1",
                    "timestamp": 3}), 2.0)
    assert s.state is SignalingState.CLOSED and s.stop_reason is None


def test_close_request_and_response():
    s = connected_signaling()
    s.request_close()
    assert sent(s) == [{"msg_type": 21, "rtms_stream_id": "stream-1"}]
    s.receive(wire({"msg_type": 22, "rtms_stream_id": "stream-1", "status_code": 0, "reason": "OK"}), 2.0)
    assert s.state is SignalingState.CLOSED


def test_malformed_and_unknown_frames_never_raise():
    s = connected_signaling()
    ev = s.receive(b"{not json", 2.0)
    assert isinstance(ev, FrameRejected) and s.frames_rejected == 1
    assert isinstance(ev.error, RemoteProtocolError)  # the peer's fault, not ours
    assert isinstance(s.receive(b'{"msg_type":77}', 2.0), m.UnknownMessage)
    assert s.state is SignalingState.CONNECTED


def test_media_session_handshake_and_data():
    params = m.MediaParams(audio=m.AudioParams(content_type=2, sample_rate=1, channel=1, codec=1,
                                               data_opt=1, send_rate=20))
    ms = MediaSession(IDENT, MediaType.AUDIO, params)
    ms.start()
    (req,) = sent(ms)
    assert req["msg_type"] == 3 and req["media_type"] == 1 and req["payload_encryption"] is False
    assert req["media_params"]["audio"]["send_rate"] == 20 and req["signature"] == IDENT.signature
    ev = ms.receive(wire({"msg_type": 4, "status_code": 0, "reason": "", "payload_encrypted": False,
                          "media_params": {"audio": {"sample_rate": 1}}}), 1.0)
    assert isinstance(ev, HandshakeCompleted) and ev.socket == "audio"
    assert ms.state is MediaState.STREAMING
    frame = ms.receive(b'{"msg_type":14,"content":{"user_id":0,"data":"AAA=","timestamp":10,"length":2}}', 1.02)
    assert isinstance(frame, m.AudioData) and frame.content.data == b"\x00\x00"
    assert ms.media_frames == 1


def test_media_session_rejection():
    ms = MediaSession(IDENT, MediaType.TRANSCRIPT)
    ms.start()
    ev = ms.receive(wire({"msg_type": 4, "status_code": 16, "reason": "duplicate"}), 1.0)
    assert ev == HandshakeFailed("transcript", 16, "duplicate")
    assert ms.state is MediaState.REJECTED


def test_every_value_a_session_returns_is_one_of_its_typed_events():
    kinds = typing.get_args(SessionEvent)
    s = connected_signaling()
    ms = MediaSession(IDENT, MediaType.AUDIO)
    ms.start()
    frames = [
        b"{not json",
        b'{"msg_type":77}',
        wire({"msg_type": 6, "event": {"event_type": EventType.PARTICIPANT_JOIN, "timestamp": 1}}),
        wire({"msg_type": 8, "state": StreamState.INTERRUPTED, "reason": 9}),
        wire({"msg_type": 4, "status_code": 0}),
        b'{"msg_type":14,"content":{"data":"AAA=","timestamp":10}}',
        b'{"msg_type":17,"content":{"data":"hi","timestamp":10}}',
    ]
    for session in (s, ms):
        for frame in frames:
            event = session.receive(frame, 2.0)
            assert event is not None and isinstance(event, kinds), (frame, event)


# ---- fields no model declares ----------------------------------------------------------------

FUTURE = {"future_field": {"since": "tomorrow", "values": [1, 2]}}


def _streaming(kind: MediaType) -> MediaSession:
    ms = MediaSession(IDENT, kind)
    ms.start()
    ms.receive(wire({"msg_type": 4, "status_code": 0}), 1.0)
    return ms


@pytest.mark.parametrize("frame, declared", [
    ({"msg_type": 17, "content": {"data": "hi", "timestamp": 10, "language": 9, **FUTURE}},
     {"data": "hi", "timestamp": 10, "language": 9}),
    ({"msg_type": 18, "content": {"data": "yo", "timestamp": 10, "message_id": "m1", **FUTURE}},
     {"data": "yo", "timestamp": 10, "message_id": "m1"}),
    ({"msg_type": 6, "event": {"event_type": 3, "timestamp": 10,
                               "participants": [{"user_id": 1, "email": "kept@example.com"}], **FUTURE}},
     {"event_type": 3, "timestamp": 10, "participants": [{"user_id": 1, "email": "kept@example.com"}]}),
])
def test_transcripts_chat_and_events_keep_what_their_models_do_not_declare(frame, declared):
    session = connected_signaling() if frame["msg_type"] == 6 else _streaming(MediaType.ALL)
    msg = session.receive(wire({**frame, "rtms_session_id": "sess-9"}), 2.0)
    assert isinstance(msg, m.KeepsReceived)
    # the whole object as Zoom sent it (nested fields no model declares too), and what
    # the frame carried beside it
    assert msg.received == {**declared, **FUTURE, "_frame": {"rtms_session_id": "sess-9"}}
    assert msg.undeclared == {**FUTURE, "_frame": {"rtms_session_id": "sess-9"}}


def test_a_message_without_undeclared_fields_or_built_here_keeps_nothing_extra():
    msg = _streaming(MediaType.TRANSCRIPT).receive(b'{"msg_type":17,"content":{"data":"hi","timestamp":10}}', 2.0)
    assert isinstance(msg, m.TranscriptData)
    assert msg.received == {"data": "hi", "timestamp": 10} and msg.undeclared == {}
    built = m.TranscriptData(content=m.TranscriptContent(data="hi", timestamp=10))
    assert built.received is None and built.undeclared == {}
    assert m.encode(msg) == m.encode(built)  # keeping the frame changes nothing sent or compared
    assert msg == built


def test_audio_video_and_share_frames_are_decoded_once_and_keep_nothing():
    ms = _streaming(MediaType.AUDIO)
    frame = ms.receive(b'{"msg_type":14,"content":{"data":"AAA=","timestamp":10,"future_field":1}}', 2.0)
    assert isinstance(frame, m.AudioData) and not isinstance(frame, m.KeepsReceived)
    assert not hasattr(frame, "__dict__")  # no room to keep anything: the hot path is untouched
