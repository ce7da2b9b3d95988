"""Zoom's protocol features beyond the common path, on the pure session: a signaling
socket still closing (status 8), pause and resume, RESUMED only for a resume, video
subscription only with data_opt 4, revoked and ended streams, joins not replayed."""

import dataclasses

import pytest

from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import (
    DataOption,
    EventType,
    MediaType,
    SessionState,
    StatusCode,
    StopReason,
    StreamState,
)
from rtms_gateway.simulator.faults import RANDOM_KINDS, Fault, FaultInjector, FaultKind, parse_fault
from rtms_gateway.simulator.records import MeetingRecord
from rtms_gateway.simulator.session import (
    Drop,
    HandshakeRules,
    MediaGrant,
    Phase,
    Refusal,
    SendEvent,
    SignalingGrant,
    StartFeeds,
    StartStreaming,
    StopFeeds,
    StreamSession,
)
from tests.test_simulator_session import (
    CLIENT_ID,
    OWNER,
    SECRET,
    SETTINGS,
    STAMP,
    STREAM,
    admit,
    connected,
    media,
    media_req,
    sent,
    signaling_req,
    streaming,
)


def new_stream(offered=MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.VIDEO, **settings):
    record = MeetingRecord(product="meeting", owner_id=OWNER, rtms_stream_id=STREAM, rtms_session_id="sess-1")
    return StreamSession(record, duration_s=600.0, offered=offered,
                         settings=dataclasses.replace(SETTINGS, **settings))


def admit_at(stream, now, rules=None):
    return admit(stream, "signaling", signaling_req(), rules, now)[1]


# ---- status 8: the old signaling socket still closing -------------------------------------


def test_a_lost_signaling_socket_that_lingers_refuses_a_reconnection_with_8_until_it_is_gone():
    stream = new_stream(signaling_linger_s=5.0)
    sig, _ = streaming(stream)
    stream.disconnected(sig, 10.0)
    early = admit_at(stream, 14.9)
    assert isinstance(early, Refusal) and early.status == StatusCode.DUPLICATE_SIGNAL_REQUEST
    assert "still closing" in early.reason
    assert isinstance(admit_at(stream, 15.0), SignalingGrant)  # a client that retries gets in


@pytest.mark.parametrize("policy", ["reject", "evict"])
def test_the_linger_fault_drops_signaling_and_holds_it_closing_whatever_the_duplicate_policy(policy):
    stream = new_stream()
    sig, _ = streaming(stream)
    FaultInjector(stream).inject(Fault(FaultKind.LINGER, argument=3.0), 20.0, STAMP)
    assert Drop(sig) in stream.effects()
    stream.disconnected(sig, 20.1)
    rules = HandshakeRules(CLIENT_ID, SECRET, duplicate_signaling=policy)
    refused = admit_at(stream, 22.9, rules)
    assert isinstance(refused, Refusal) and refused.status == StatusCode.DUPLICATE_SIGNAL_REQUEST
    assert isinstance(admit_at(stream, 23.0, rules), SignalingGrant)


def test_without_lingering_a_reconnection_right_after_the_loss_is_welcome():
    stream = new_stream()
    sig, _ = streaming(stream)
    stream.disconnected(sig, 10.0)
    assert isinstance(admit_at(stream, 10.0), SignalingGrant)


# ---- session states -----------------------------------------------------------------------


def states(effects):
    return [(type(msg).__name__, msg.state) for msg in sent(effects)
            if isinstance(msg, (m.SessionStateUpdate, m.StreamStateUpdate))]


def test_a_reconnection_makes_the_stream_active_again_without_a_session_resume():
    stream = new_stream()
    sig, _ = streaming(stream)
    stream.disconnected(sig, 10.0)
    sig = connected(stream, 11.0)
    media(stream, now=11.0)
    stream.receive(sig, m.ClientReadyAck(), 11.0, STAMP)
    effects = stream.effects()
    assert StartStreaming(resumed=True) in effects
    assert states(effects) == [("StreamStateUpdate", StreamState.ACTIVE)]


def test_a_pause_stops_media_and_its_end_resumes_the_session_and_the_stream():
    stream = new_stream()
    sig, _audio = streaming(stream)
    stream.pause(5.0, STAMP, 3.0)
    effects = stream.effects()
    assert states(effects) == [("SessionStateUpdate", SessionState.PAUSED), ("StreamStateUpdate", StreamState.PAUSED)]
    assert StopFeeds(None) in effects and stream.record.pauses == 1
    stream.receive(sig, m.SessionStateReq(rtms_session_id="sess-1"), 6.0, STAMP)
    stream.receive(sig, m.StreamStateReq(rtms_stream_id=STREAM), 6.0, STAMP)
    assert [msg.state for msg in sent(stream.effects())] == [SessionState.PAUSED, StreamState.PAUSED]
    video = media(stream, MediaType.VIDEO, now=6.5)  # joins while paused: no feeds yet
    assert stream.poll(7.9, STAMP) is None
    assert not [e for e in stream.effects() if isinstance(e, (StartFeeds, StartStreaming))]
    stream.poll(8.0, STAMP)
    effects = stream.effects()
    assert states(effects) == [("SessionStateUpdate", SessionState.RESUMED),
                               ("StreamStateUpdate", StreamState.RESUMED)]
    assert StartStreaming(resumed=True) in effects
    assert stream.paused_until is None and video.live


def test_the_pause_fault_pauses_and_a_lost_signaling_socket_ends_the_pause():
    stream = new_stream()
    sig, _ = streaming(stream)
    FaultInjector(stream).inject(Fault(FaultKind.PAUSE, argument=10.0), 5.0, STAMP)
    assert stream.paused_until == 15.0
    stream.disconnected(sig, 6.0)
    assert stream.paused_until is None and stream.phase is Phase.INTERRUPTED


def test_a_stream_that_is_not_streaming_cannot_pause():
    stream = new_stream()
    connected(stream)
    stream.pause(1.0, STAMP, 3.0)
    assert stream.paused_until is None and stream.effects() == []


# ---- stream ends ------------------------------------------------------------------------


def test_the_revoke_fault_ends_the_stream_with_stream_revoked():
    stream = new_stream()
    streaming(stream)
    FaultInjector(stream).inject(Fault(FaultKind.REVOKE), 3.0, STAMP)
    assert stream.poll(3.0, STAMP) == StopReason.STREAM_REVOKED


def test_the_end_fault_ends_the_stream_with_the_reason_it_names():
    stream = new_stream()
    streaming(stream)
    FaultInjector(stream).inject(parse_fault("end@1=5"), 3.0, STAMP)
    assert stream.poll(3.0, STAMP) == StopReason.HOST_DISABLED_APP


def test_an_end_fault_with_a_reason_that_does_not_exist_is_refused_when_parsed():
    with pytest.raises(ValueError, match="stop reason"):
        parse_fault("end@1=99")


def test_random_faults_never_end_a_stream_or_refuse_its_handshakes():
    assert not {FaultKind.REJECT, FaultKind.LINGER, FaultKind.PAUSE, FaultKind.REVOKE, FaultKind.END} \
        & set(RANDOM_KINDS)


def test_stream_close_is_answered_with_22_and_ends_with_receiver_request_close():
    stream = new_stream()
    sig, _ = streaming(stream)
    stream.receive(sig, m.StreamCloseReq(rtms_stream_id=STREAM), 2.0, STAMP)
    (resp,) = sent(stream.effects())
    assert isinstance(resp, m.StreamCloseResp) and resp.status_code == StatusCode.OK
    assert stream.poll(2.0, STAMP) == StopReason.RECEIVER_REQUEST_CLOSE


# ---- video subscription ---------------------------------------------------------------------


def video_socket(stream, data_opt):
    req = media_req(MediaType.VIDEO, media_params=m.MediaParams(video=m.VideoParams(data_opt=int(data_opt))))
    socket, grant = admit(stream, "media", req)
    assert isinstance(grant, MediaGrant), grant
    stream.attach_media(socket, grant)
    stream.effects()
    return socket


@pytest.mark.parametrize("data_opt", [None, DataOption.VIDEO_SINGLE_ACTIVE_STREAM])
def test_a_video_subscription_without_an_individual_video_socket_is_refused(data_opt):
    stream = new_stream()
    sig, _ = streaming(stream)
    if data_opt is not None:
        video_socket(stream, data_opt)
    stream.receive(sig, m.VideoSubscriptionReq(user_id=7, subscribe=True), 1.0, STAMP)
    (resp,) = sent(stream.effects())
    assert isinstance(resp, m.VideoSubscriptionResp) and resp.user_id == 7
    assert resp.status_code == StatusCode.INVALID_MEDIA_VIDEO_DATA_OPT and "data_opt 4" in resp.reason
    assert stream.video_user is None


def test_with_data_opt_4_one_participant_at_a_time_a_new_subscribe_replaces_the_old():
    stream = new_stream()
    sig, _ = streaming(stream)
    video_socket(stream, DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM)
    for user in (7, 7, 8):
        stream.receive(sig, m.VideoSubscriptionReq(user_id=user, subscribe=True), 1.0, STAMP)
    first, again, other = sent(stream.effects())
    assert first.status_code == StatusCode.OK and other.status_code == StatusCode.OK
    assert again.status_code == StatusCode.DUPLICATE_VIDEO_SUBSCRIPTION
    assert stream.video_user == 8
    stream.receive(sig, m.VideoSubscriptionReq(user_id=8, subscribe=False), 2.0, STAMP)
    assert sent(stream.effects())[0].status_code == StatusCode.OK and stream.video_user is None


# ---- events -----------------------------------------------------------------------------


def subscribe(stream, sig, *events, on=True):
    items = [m.EventSubscriptionItem(event_type=int(e), subscribe=on) for e in events]
    stream.receive(sig, m.EventSubscription(events=items), 1.0, STAMP)
    return stream.effects()


def test_events_go_out_only_when_subscribed_except_the_automatic_ones():
    stream = new_stream()
    sig, _ = streaming(stream)
    assert stream.wants_event(EventType.FIRST_PACKET_TIMESTAMP)
    assert stream.wants_event(EventType.MEDIA_CONNECTION_INTERRUPTED)
    assert not stream.wants_event(EventType.SHARING_START)
    subscribe(stream, sig, EventType.SHARING_START, EventType.PARTICIPANT_VIDEO_OFF, 14, 29,
              EventType.FIRST_PACKET_TIMESTAMP)
    assert stream.subscribed == {EventType.SHARING_START, EventType.PARTICIPANT_VIDEO_OFF, 14, 29}
    subscribe(stream, sig, EventType.SHARING_START, on=False)
    assert not stream.wants_event(EventType.SHARING_START) and stream.wants_event(29)


def test_a_late_subscriber_is_not_sent_the_joins_it_missed_when_replay_is_off():
    stream = new_stream(replay_joins=False)
    sig, _ = streaming(stream)
    stream.scripted_event(EventType.PARTICIPANT_JOIN)
    effects = subscribe(stream, sig, EventType.PARTICIPANT_JOIN)
    assert not [e for e in effects if isinstance(e, SendEvent)]
    assert stream.wants_event(EventType.PARTICIPANT_JOIN)
