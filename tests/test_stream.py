"""One RTMS stream over the in-memory transport and a virtual clock: Zoom's side scripted
with real protocol messages, time moved on by hand. No socket, no sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from rtms_gateway.client.lifecycle import (
    Connected,
    Connecting,
    Ended,
    MediaRejected,
    Ready,
    StreamOutcome,
    StreamState,
)
from rtms_gateway.client.memory import MemoryTransport, ServerEnd, VirtualClock
from rtms_gateway.client.policy import ReconnectPolicy
from rtms_gateway.client.spec import StreamSpec
from rtms_gateway.client.stream import RtmsStream
from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import (
    EventType,
    MediaType,
    MsgType,
    Product,
    SessionState,
    StatusCode,
    StopReason,
)
from rtms_gateway.protocol.constants import StreamState as ZoomStreamState
from rtms_gateway.protocol.errors import LocalProtocolError

from .memory_zoom import (
    AUDIO_URL,
    SIGNALING_URL,
    TRANSCRIPT_URL,
    Recorder,
    accept_media,
    accept_signaling,
    accept_stream,
    msg_types,
    terminated,
    transcript,
    until,
)

S = StreamState
AUDIO_AND_TRANSCRIPT = MediaType.AUDIO | MediaType.TRANSCRIPT


@dataclass
class Scene:
    clock: VirtualClock
    transport: MemoryTransport
    observer: Recorder
    stream: RtmsStream
    run: asyncio.Future[StreamOutcome]
    signaling: ServerEnd | None = None
    media: dict[str, ServerEnd] | None = None

    @property
    def audio(self) -> ServerEnd:
        assert self.media is not None
        return self.media[AUDIO_URL]

    @property
    def transcripts(self) -> ServerEnd:
        assert self.media is not None
        return self.media[TRANSCRIPT_URL]

    async def ended(self) -> StreamOutcome:
        return await self.run


def new_stream(server_urls: str = SIGNALING_URL, **options: Any) -> Scene:
    clock = VirtualClock(start=0.0)
    transport = MemoryTransport(clock)
    observer = Recorder()
    options.setdefault("silence_limit", 1e9)  # only the silence test watches for silence
    stream = RtmsStream(
        StreamSpec(Product.MEETING, "meeting/uuid+1==", "stream-1", server_urls),
        client_id="client-id", client_secret="client-secret", media=options.pop("media", AUDIO_AND_TRANSCRIPT),
        observer=observer, transport=transport, clock=clock,
        policy=ReconnectPolicy(random=lambda: 0.5),  # each wait at its nominal value
        **options,
    )
    return Scene(clock, transport, observer, stream, asyncio.ensure_future(stream.run()))


@pytest.fixture
async def scenes() -> AsyncIterator[list[Scene]]:
    """Scenes made in a test; any run still going at its end is stopped and awaited."""
    made: list[Scene] = []
    yield made
    for scene in made:
        scene.stream.stop()
        await scene.run


@pytest.fixture
async def ready(scenes: list[Scene]) -> Scene:
    """A stream whose signaling and both media sockets completed their handshakes."""
    scene = new_stream()
    scenes.append(scene)
    scene.signaling, scene.media = await accept_stream(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    return scene


async def test_the_observer_hears_the_lifecycle_and_the_messages_in_the_order_they_happen(ready):
    join = m.EventUpdate(event=m.Event(event_type=int(EventType.PARTICIPANT_JOIN), user_id=7,
                                       user_name="Ada", timestamp=1))
    ready.signaling.send(join)
    ready.transcripts.send(transcript("one"))
    ready.transcripts.send(transcript("two"))
    ready.signaling.send(terminated(int(StopReason.MEETING_ENDED)))
    outcome = await ready.ended()
    assert outcome == StreamOutcome(S.STOPPED, stop_reason=6)
    seen = ready.observer.seen
    assert seen[:3] == [Connecting(SIGNALING_URL), Connected(("audio", "transcript")), Ready()]
    assert seen[3:-1] == [join, transcript("one"), transcript("two"), terminated(6)]
    assert seen[-1] == Ended(outcome)
    assert ready.stream.state is S.STOPPED
    assert all(end.closed for end in ready.transport.opened)


async def test_the_subscription_goes_out_with_signaling_and_client_ready_ack_once_every_media_socket_is_in(scenes):
    scene = new_stream()
    scenes.append(scene)
    signaling = await accept_signaling(scene.transport)
    await accept_media(scene.transport)
    await until(lambda: len(scene.transport.opened) == 3)
    # subscribed as soon as signaling is up (the first joins come before media is ready)
    assert msg_types(signaling.take()) == [MsgType.EVENT_SUBSCRIPTION]  # one media socket still handshaking
    await accept_media(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    assert msg_types(signaling.take()) == [MsgType.CLIENT_READY_ACK]


async def test_a_reconnection_asks_where_the_stream_and_its_session_stand_once_ready(scenes):
    scene = new_stream(reconnection=True, session_id="session-1")
    scenes.append(scene)
    signaling = await accept_signaling(scene.transport)
    await accept_media(scene.transport)
    await accept_media(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    assert msg_types(signaling.take()) == [MsgType.EVENT_SUBSCRIPTION, MsgType.CLIENT_READY_ACK,
                                           MsgType.STREAM_STATE_REQ, MsgType.SESSION_STATE_REQ]
    # a first connection asks nothing, and learns the session's id from its updates
    first = new_stream()
    scenes.append(first)
    signaling = await accept_signaling(first.transport)
    await accept_media(first.transport)
    await accept_media(first.transport)
    await until(lambda: first.stream.state is S.READY)
    signaling.send(m.SessionStateUpdate(state=int(SessionState.STARTED), rtms_session_id="session-2",
                                        timestamp=5))
    assert msg_types(signaling.take()) == [MsgType.EVENT_SUBSCRIPTION, MsgType.CLIENT_READY_ACK]
    assert first.stream.session_id == "session-2"


async def test_a_rejected_signaling_handshake_ends_the_run_with_zoom_status(scenes):
    scene = new_stream()
    await accept_signaling(scene.transport, status=int(StatusCode.INVALID_SIGNATURE))
    outcome = await scene.ended()
    assert outcome == StreamOutcome(S.REJECTED, status_code=3, status_reason="refused")
    assert scene.observer.seen == [Connecting(SIGNALING_URL), Ended(outcome)]
    assert scene.transport.urls == [SIGNALING_URL] and scene.transport.opened[0].closed


async def test_a_duplicate_signal_request_ends_the_run_rejected_with_status_8(scenes):
    # The run reports it; whether to connect again is the policy's (it retries 8).
    scene = new_stream()
    await accept_signaling(scene.transport, status=int(StatusCode.DUPLICATE_SIGNAL_REQUEST))
    outcome = await scene.ended()
    assert outcome == StreamOutcome(S.REJECTED, status_code=8, status_reason="refused")
    assert ReconnectPolicy().transient(outcome.status_code)


async def test_a_signaling_url_that_cannot_be_reached_is_followed_by_the_next(scenes):
    down = "wss://zoom-down.test/signaling"
    scene = new_stream(f"{down}, {SIGNALING_URL}")
    scenes.append(scene)
    scene.transport.refuse(down)
    await accept_stream(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    assert scene.transport.urls[:2] == [down, SIGNALING_URL]


async def test_when_no_signaling_url_can_be_reached_the_run_is_lost_naming_the_last(scenes):
    first, second = "wss://zoom-a.test/signaling", "wss://zoom-b.test/signaling"
    scene = new_stream(f"{first},{second}")
    scene.transport.refuse(first)
    scene.transport.refuse(second)
    outcome = await scene.ended()
    assert outcome.state is S.LOST and second in (outcome.status_reason or "")
    assert scene.transport.urls == [first, second]


async def test_a_plain_ws_signaling_url_is_refused_before_any_socket_opens():
    scene = new_stream("ws://zoom.test/signaling")
    outcome = await scene.ended()
    assert outcome.state is S.REFUSED and "is not wss://" in (outcome.status_reason or "")
    assert scene.transport.urls == [] and scene.observer.seen == [Ended(outcome)]


async def test_a_plain_ws_media_url_is_refused_after_signaling_and_opens_no_media_socket():
    scene = new_stream()
    await accept_signaling(scene.transport, urls={"audio": "ws://zoom.test/audio",
                                                  "transcript": TRANSCRIPT_URL})
    outcome = await scene.ended()
    assert outcome.state is S.REFUSED and "audio media URL" in (outcome.status_reason or "")
    assert scene.transport.urls == [SIGNALING_URL]


async def test_a_signaling_handshake_zoom_never_answers_is_lost_after_the_connect_timeout():
    scene = new_stream(connect_timeout=10.0)
    await scene.transport.accept()
    await until(lambda: 10.0 in scene.clock.deadlines)
    scene.clock.advance(9.9)
    await asyncio.sleep(0)
    assert not scene.run.done()
    scene.clock.advance(0.1)
    outcome = await scene.ended()
    assert outcome == StreamOutcome(S.LOST,
                                    status_reason="signaling handshake: no answer within 10 s")


async def test_a_stop_while_zoom_has_not_answered_ends_the_run_at_once():
    scene = new_stream()
    signaling = await scene.transport.accept()
    scene.stream.stop(state=S.DETACHED)
    assert await scene.ended() == StreamOutcome(S.DETACHED)
    assert signaling.closed and scene.clock.now() == 0.0  # no time had to pass


async def test_stop_ends_the_run_as_asked_and_closes_every_socket_normally(ready):
    ready.stream.stop(None, state=S.INTERRUPTED)
    assert await ready.ended() == StreamOutcome(S.INTERRUPTED)
    assert [end.client.close_code for end in ready.transport.opened] == [1000, 1000, 1000]


async def test_an_end_the_lifecycle_forbids_is_refused(ready):
    with pytest.raises(LocalProtocolError, match="from ready to rejected"):
        ready.stream.stop(state=S.REJECTED)
    assert ready.stream.outcome is None and ready.stream.state is S.READY


async def test_a_lost_signaling_socket_ends_the_run_lost(ready):
    ready.signaling.close(1011)
    assert await ready.ended() == StreamOutcome(S.LOST,
                                                status_reason="signaling socket closed (1011)")


async def test_a_dropped_media_socket_is_reconnected_alone_after_the_backoff(ready):
    signaling_socket = ready.stream.signaling_socket
    ready.signaling.take()
    ready.audio.drop()
    await until(lambda: 3.0 in ready.clock.deadlines)  # the first wait: 3 s
    assert MediaType.AUDIO not in ready.stream.media_sockets  # pruned at once
    ready.clock.advance(3.0)
    again = await accept_media(ready.transport)
    assert again.url == AUDIO_URL
    await until(lambda: ready.stream.media_reconnects == 1)
    await until(lambda: ready.signaling.unread)
    assert msg_types(ready.signaling.take()) == [MsgType.CLIENT_READY_ACK]  # sent again
    assert ready.stream.signaling_socket is signaling_socket and not ready.signaling.closed
    assert len(ready.stream.sockets) == 3 and ready.stream.media_sockets[MediaType.AUDIO].is_open
    assert ready.stream.state is S.READY and ready.observer.seen.count(Ready()) == 1
    again.send(m.AudioData(content=m.MediaContent(data=b"\x00\x00\x00", timestamp=5)))
    assert isinstance(ready.observer.seen[-1], m.AudioData)


async def test_media_that_does_not_come_back_within_zoom_window_ends_the_stream_lost(ready):
    ready.transport.refuse(AUDIO_URL)
    ready.audio.drop()
    # Waits of 3, 6, 12 and 24 s, then the 20 s left of the 65 s window: an attempt as it closes.
    for attempt, at in enumerate([3.0, 9.0, 21.0, 45.0, 65.0], start=1):
        await until(lambda at=at: at in ready.clock.deadlines)
        assert ready.stream.outcome is None, f"gave up before the attempt at {at} s"
        ready.clock.advance(at - ready.clock.now())
        await until(lambda attempt=attempt: ready.transport.urls.count(AUDIO_URL) == 1 + attempt)
    outcome = await ready.ended()
    assert ready.clock.now() == 65.0
    assert outcome == StreamOutcome(S.LOST,
                                    status_reason="audio media did not come back within 65 s")


@pytest.mark.parametrize("notice", [
    m.EventUpdate(event=m.Event(event_type=int(EventType.MEDIA_CONNECTION_INTERRUPTED))),
    m.StreamStateUpdate(state=int(ZoomStreamState.INTERRUPTED),
                        reason=int(StopReason.DATA_CONNECTION_INTERRUPTED)),
], ids=["event", "state update"])
async def test_zoom_reporting_media_interrupted_while_every_socket_looks_up_reconnects_them(
        ready, notice):
    ready.signaling.send(notice)
    await until(lambda: ready.audio.closed and ready.transcripts.closed)
    assert not ready.signaling.closed and ready.observer.seen[-1] == notice
    await until(lambda: ready.clock.deadlines.count(3.0) == 2)
    ready.clock.advance(3.0)
    back = {(await accept_media(ready.transport)).url, (await accept_media(ready.transport)).url}
    assert back == {AUDIO_URL, TRANSCRIPT_URL}
    await until(lambda: ready.stream.media_reconnects == 2)


async def test_a_refused_media_socket_is_reported_and_the_others_stream_on(scenes):
    scene = new_stream()
    scenes.append(scene)
    signaling = await accept_signaling(scene.transport)
    audio = await accept_media(scene.transport, status=int(StatusCode.MEDIA_TYPE_AUDIO_NOT_SUPPORT))
    transcripts = await accept_media(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    assert MediaRejected("audio", 9, "refused") in scene.observer.seen
    audio.close()
    transcripts.send(transcript("still here"))
    await until(lambda: audio.closed)
    assert scene.observer.seen[-1] == transcript("still here")
    assert scene.stream.media_rejected == {"audio": 9}
    assert scene.transport.urls.count(AUDIO_URL) == 1  # a refused socket is not reopened
    signaling.send(terminated(6))
    assert (await scene.ended()).media_rejected == {"audio": 9}


async def test_types_zoom_gives_no_url_of_their_own_share_one_socket_at_the_all_url(scenes):
    # Zoom's per-type keys depend on the app's scopes; `all` serves whatever is left (unified).
    all_url = "wss://zoom.test/all"
    scene = new_stream(media=MediaType.AUDIO | MediaType.TRANSCRIPT | MediaType.CHAT)
    scenes.append(scene)
    signaling = await accept_signaling(scene.transport, urls={"audio": AUDIO_URL, "all": all_url})
    asked = {}
    for _ in range(2):
        end = await scene.transport.accept()
        request = await end.receive()
        assert isinstance(request, m.DataHandshakeReq), request
        asked[end.url] = request.media_type
        end.send(m.DataHandshakeResp(status_code=0, reason="", media_params=request.media_params))
    assert asked == {AUDIO_URL: MediaType.AUDIO, all_url: MediaType.TRANSCRIPT | MediaType.CHAT}
    await until(lambda: scene.stream.state is S.READY)
    assert msg_types(signaling.take())[-1] == MsgType.CLIENT_READY_ACK
    signaling.send(terminated(6))
    assert (await scene.ended()).state is S.STOPPED


async def test_pausing_reaches_every_socket_and_holds_frames_back_until_resumed(ready):
    ready.stream.pause_reading()
    assert [end.paused for end in ready.transport.opened] == [True, True, True]
    ready.transcripts.send(transcript("waits"))
    assert transcript("waits") not in ready.observer.seen
    ready.stream.resume_reading()
    assert [end.paused for end in ready.transport.opened] == [False, False, False]
    assert ready.observer.seen[-1] == transcript("waits")


async def test_a_socket_opened_while_paused_starts_paused(ready):
    ready.stream.pause_reading()
    ready.audio.drop()
    await until(lambda: 3.0 in ready.clock.deadlines)
    ready.clock.advance(3.0)
    again = await accept_media(ready.transport)
    await until(lambda: ready.stream.media_reconnects == 1)
    assert again.paused  # its handshake answer waits too
    ready.signaling.take()
    ready.stream.resume_reading()
    await until(lambda: ready.signaling.unread)
    assert msg_types(ready.signaling.take()) == [MsgType.CLIENT_READY_ACK]


async def test_a_silent_media_socket_is_closed_and_reconnected(scenes):
    scene = new_stream(silence_limit=20.0)  # checked every 5 s
    scenes.append(scene)
    signaling, media = await accept_stream(scene.transport)
    audio, transcripts = media[AUDIO_URL], media[TRANSCRIPT_URL]
    await until(lambda: scene.stream.state is S.READY)
    for look in (5.0, 10.0, 15.0, 20.0, 25.0):
        await until(lambda look=look: look in scene.clock.deadlines)  # the watchdog's next look
        scene.clock.advance(5.0)
        for end in (signaling, transcripts):  # Zoom's keep-alives keep these two alive
            end.send(m.KeepAliveReq(timestamp=int(look)))
        await until(lambda look=look: look + 5.0 in scene.clock.deadlines)  # that look is done
        assert audio.closed == (look == 25.0), f"at {look} s (silent for over 20 s only at 25)"
    assert audio.client.close_code == 1000 and not signaling.closed and not transcripts.closed
    assert MsgType.KEEP_ALIVE_RESP in msg_types(signaling.take())
    await until(lambda: 28.0 in scene.clock.deadlines)  # reconnecting, 3 s on
    scene.clock.advance(3.0)
    assert (await accept_media(scene.transport)).url == AUDIO_URL


async def test_a_malformed_frame_is_counted_and_skipped_and_the_stream_goes_on(ready):
    ready.transcripts.send(b'{"msg_type": 17, "content": ')
    ready.transcripts.send(transcript("after"))
    assert ready.stream.frames_rejected == 1
    assert ready.observer.seen[-1] == transcript("after") and ready.stream.state is S.READY


async def test_a_paused_socket_is_judged_silent_only_once_read_again_for_the_limit(scenes):
    scene = new_stream(silence_limit=20.0)  # checked every 5 s
    scenes.append(scene)
    await accept_stream(scene.transport)
    await until(lambda: scene.stream.state is S.READY)
    scene.stream.pause_reading()  # from 0 s: nothing is read, so nothing comes
    for look in (5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0):
        await until(lambda look=look: look in scene.clock.deadlines)
        scene.clock.advance(look - scene.clock.now())
        if look == 40.0:
            scene.stream.resume_reading()
        await until(lambda look=look: look + 5.0 in scene.clock.deadlines or scene.run.done())
        closed = [end.closed for end in scene.transport.opened]
        assert closed == [look == 60.0] * 3, f"at {look} s (resumed at 40 s, judged from 60 s)"
    assert (await scene.ended()).status_reason == "signaling socket closed (1000)"
