"""One RTMS stream: its signaling socket, its media sockets, and their lifetimes.

`RtmsStream.run()` connects, completes every handshake, hands each received message to
the observer, and returns how the connection ended (a `StreamOutcome`) when Zoom
terminates the stream, signaling is lost, or `stop()` is called. A media socket that drops
(or that Zoom reports interrupted) is reconnected here, alone, with the policy's media
backoff inside Zoom's media window; redoing the whole connection (signaling lost, failover
to new URLs) belongs to the caller, the gateway's manager.

Sockets come from a `Transport` and every wait goes through a `Clock` (see `transport`):
picows and the system clock in service, memory and a virtual clock in tests.

TLS only: a signaling or media URL that is not `wss://` is refused (the stream ends
`refused`, with the reason) unless plain WebSockets are explicitly allowed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Protocol, assert_never

from ..protocol.constants import (
    CLIENT_SILENCE_LIMIT_S,
    EventType,
    MediaType,
    StopReason,
    offered_events,
    status_name,
)
from ..protocol.constants import StreamState as ZoomStreamState
from ..protocol.errors import ConnectionLost, InsecureUrl
from ..protocol.messages import (
    AudioData,
    Event,
    EventUpdate,
    MediaParams,
    Message,
    ReceivedMessage,
    SessionStateResp,
    SessionStateUpdate,
    StreamStateUpdate,
    UnknownMessage,
)
from ..protocol.session import (
    FrameRejected,
    HandshakeCompleted,
    HandshakeFailed,
    MediaSession,
    SessionEvent,
    SignalingSession,
    SignalingState,
    StreamIdentity,
)
from ..protocol.signature import signature
from .lifecycle import (
    Connected,
    Connecting,
    Ended,
    Lifecycle,
    LifecycleChange,
    MediaRejected,
    Ready,
    StreamOutcome,
    StreamState,
)
from .policy import Backoff, ReconnectPolicy
from .spec import (
    StreamSpec,
    insecure_refusal,
    is_tls,
    media_key,
    plan_media_sockets,
    signaling_urls,
)
from .transport import SYSTEM_CLOCK, Clock, Session, Socket, Transport, first_of

log = logging.getLogger(__name__)


class StreamObserver(Protocol):
    def on_message(self, stream: RtmsStream, msg: ReceivedMessage) -> None:
        """A typed protocol message: media data, event update, state update."""

    def on_lifecycle(self, stream: RtmsStream, change: LifecycleChange) -> None:
        """Connecting, Connected, Ready, MediaRejected, then Ended (always last)."""


# The handshake future's result when the run was stopped before Zoom answered.
_STOPPED = None
_HandshakeResult = HandshakeCompleted | HandshakeFailed | None


class RtmsStream:
    def __init__(
        self,
        spec: StreamSpec,
        *,
        client_id: str,
        client_secret: str,
        media: MediaType,
        observer: StreamObserver,
        transport: Transport,
        policy: ReconnectPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        media_params: MediaParams | None = None,
        events: Iterable[int] | None = None,  # None: every event the stream's product offers
        buffer_data: bool | None = None,
        connect_timeout: float = 10.0,
        silence_limit: float = CLIENT_SILENCE_LIMIT_S,
        allow_insecure_ws: bool = False,
        reconnection: bool = False,
        session_id: str | None = None,
    ) -> None:
        self.spec = spec
        # Plain attributes, not properties of the spec: read for every media frame.
        self.stream_id: str = spec.rtms_stream_id
        self.meeting_uuid: str = spec.owner_id
        # A connection made again to a stream held before (after a drop, or a restart of the
        # gateway): once ready, it asks Zoom where the stream and the session stand.
        self.reconnection = reconnection
        self.session_id = session_id  # Zoom's rtms_session_id, once a session state named it
        self.media = media
        self.observer = observer
        self.transport = transport
        self.policy = policy or ReconnectPolicy()
        self.clock = clock
        self.media_params = media_params
        self.connect_timeout = connect_timeout
        self.silence_limit = silence_limit
        self.allow_insecure_ws = allow_insecure_ws
        self.identity = StreamIdentity(
            rtms_stream_id=spec.rtms_stream_id,
            owner_id=spec.owner_id,
            signature=signature(client_id, client_secret, spec.owner_id, spec.rtms_stream_id),
            id_key=spec.product.id_key,
        )
        if events is None:
            events = offered_events(spec.product)
        self.signaling = SignalingSession(self.identity, events=events, buffer_data=buffer_data)
        self.media_sessions: dict[MediaType, MediaSession] = {}
        self.lifecycle = Lifecycle()
        self.outcome: StreamOutcome | None = None  # set once, when the connection ends
        self.media_rejected: dict[str, int] = {}  # media key -> Zoom's status code
        self.media_reconnects = 0
        self.frames_rejected = 0
        self.started_at_ms = int(time.time() * 1000)
        self._signaling_socket: Socket | None = None
        self._media_sockets: dict[MediaType, Socket] = {}
        self._media_urls: dict[MediaType, str] = {}
        self._media_retries: dict[MediaType, Backoff] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused = False
        self._resumed_at = float("-inf")
        self._handshake: asyncio.Future[_HandshakeResult] | None = None
        self._done: asyncio.Future[StreamOutcome] | None = None

    @property
    def product(self) -> str:
        return self.spec.product.value

    @property
    def state(self) -> StreamState:
        return self.lifecycle.state

    @property
    def signaling_socket(self) -> Socket | None:
        return self._signaling_socket

    @property
    def media_sockets(self) -> Mapping[MediaType, Socket]:
        """The media sockets held now, by the media they carry (one gone is pruned)."""
        return MappingProxyType(self._media_sockets)

    @property
    def sockets(self) -> list[Socket]:
        held = [] if self._signaling_socket is None else [self._signaling_socket]
        return held + list(self._media_sockets.values())

    def accepted_params(self, kind: MediaType) -> MediaParams | None:
        """The media parameters Zoom accepted on the socket that carries `kind`."""
        for bits, session in self.media_sessions.items():
            if bits & kind:
                return session.accepted_params
        return None

    # ---- running ------------------------------------------------------------------------

    async def run(self) -> StreamOutcome:
        if self.outcome is not None:  # stopped before it began
            return self.outcome
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        handshake = self._handshake = loop.create_future()
        try:
            await self._connect_signaling()
            result = await first_of(self.clock, handshake, self.connect_timeout,
                                    "signaling handshake")
            if (stopped := self._outcome()) is not None:  # meanwhile (the result is _STOPPED)
                return stopped
            if isinstance(result, HandshakeFailed):
                return self._finish(StreamOutcome(StreamState.REJECTED, status_reason=result.reason,
                                                  status_code=result.status_code))
            await self._connect_media()
            self._spawn(self._watch_silence())
            return await asyncio.shield(self._done)
        except InsecureUrl as exc:
            return self._finish(StreamOutcome(StreamState.REFUSED, status_reason=str(exc)))
        except ConnectionLost as exc:
            return self._finish(StreamOutcome(StreamState.LOST, status_reason=str(exc)))
        except asyncio.CancelledError:
            self._finish(StreamOutcome(StreamState.CANCELLED))
            raise
        finally:
            if not handshake.done():  # no one waits for it now: a late close must not set it
                handshake.cancel()
            elif not handshake.cancelled():
                handshake.exception()  # seen: a failure after the run gave up is no error
            await self._close_all()

    async def _connect_signaling(self) -> None:
        urls = signaling_urls(self.spec.server_urls)
        if not urls:
            raise ConnectionLost(f"no ws:// or wss:// URL in server_urls {self.spec.server_urls!r}")
        if not self.allow_insecure_ws:
            secure = [u for u in urls if is_tls(u)]
            if not secure:
                raise insecure_refusal("signaling", urls[0])
            urls = secure
        self.observer.on_lifecycle(self, Connecting(urls[0]))
        last: ConnectionLost | None = None
        for i, url in enumerate(urls):
            try:
                socket = await self.transport.connect(
                    url, self.signaling, self._on_signaling_event, name="signaling",
                    timeout=self.connect_timeout)
            except ConnectionLost as exc:
                last = exc
                if i + 1 < len(urls):  # Zoom's failover: the next URL of `server_urls`
                    log.info("stream %s: %s (%s); trying the next signaling URL",
                             self.stream_id, exc, url)
                continue
            self._signaling_socket = socket  # read even if paused: its handshake has a deadline
            self._spawn(self._watch_signaling(socket))
            if self.outcome is None:
                self.signaling.start()
                socket.flush()
            return
        raise last or ConnectionLost("no signaling URL accepted the connection")

    async def _connect_media(self) -> None:
        plan = plan_media_sockets(self.media, self.signaling.media_urls)
        if not plan:
            raise ConnectionLost(f"Zoom offered no media URL for {self.media!r}")
        if not self.allow_insecure_ws:
            for kind, url in plan:
                if not is_tls(url):
                    raise insecure_refusal(f"{media_key(kind)} media", url)
        self.signaling.expect_media(kind for kind, _ in plan)
        self._media_urls = dict(plan)
        self.observer.on_lifecycle(self, Connected(tuple(media_key(kind) for kind, _ in plan)))
        await asyncio.gather(*(self._open_media(kind, url) for kind, url in plan))

    async def _open_media(self, kind: MediaType, url: str) -> None:
        session = MediaSession(self.identity, kind, self.media_params)
        socket = await self.transport.connect(
            url, session, self._on_media_event, name=f"media:{session.key}",
            timeout=self.connect_timeout)
        if self.outcome is not None:  # ended while connecting
            await socket.close()
            return
        self.media_sessions[kind] = session
        self._media_sockets[kind] = socket
        if self._paused:
            socket.pause_reading()
        self._spawn(self._watch_media(socket, session))
        session.start()
        socket.flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- events from the sockets (synchronous, called per frame) ------------------------

    def _on_signaling_event(self, socket: Socket, event: SessionEvent) -> None:
        match event:
            case HandshakeCompleted() | HandshakeFailed():
                if self._handshake is not None and not self._handshake.done():
                    self._handshake.set_result(event)
            case FrameRejected():
                self._rejected(socket, event)
            case _:
                self._on_signaling_message(event)

    def _on_signaling_message(self, msg: ReceivedMessage) -> None:
        if isinstance(msg, (SessionStateUpdate, SessionStateResp)) and msg.rtms_session_id:
            self.session_id = msg.rtms_session_id
        self.observer.on_message(self, msg)
        if self.signaling.state is SignalingState.CLOSED:
            self._finish(StreamOutcome(StreamState.STOPPED, stop_reason=self.signaling.stop_reason))
        elif _media_interrupted(msg):
            # Zoom lost a media connection. If we saw one drop, that is the one (already
            # reconnecting); if every socket still looks up to us, one is half-open and the
            # notice does not say which: connect them all again.
            up = [s for s in self._media_sockets.values() if s.is_open]
            if len(up) == len(self._media_urls) - len(self.media_rejected):
                log.info("stream %s: Zoom reports a media connection interrupted; "
                         "reconnecting media", self.stream_id)
                for media_socket in up:
                    self._spawn(media_socket.close())

    def _on_media_event(self, socket: Socket, event: SessionEvent) -> None:
        if type(event) is AudioData:  # 50 a second per socket: no pattern matching for it
            self.observer.on_message(self, event)
            return
        match event:
            case Message() | UnknownMessage():
                self.observer.on_message(self, event)
            case FrameRejected():
                self._rejected(socket, event)
            case HandshakeCompleted() | HandshakeFailed():
                self._on_media_handshake(socket, event)
            case _:
                assert_never(event)

    def _on_media_handshake(self, socket: Socket,
                            event: HandshakeCompleted | HandshakeFailed) -> None:
        session = self._session_of(socket)
        if session is None or self.outcome is not None:
            return  # a handshake answered after its socket or the stream ended: nothing to do
        match event:
            case HandshakeCompleted():
                self._media_retries.pop(session.media_type, None)  # back: the next drop starts over
                if self.signaling.media_ready(session.media_type):
                    self._ready()
            case HandshakeFailed(status_code=code, reason=reason):
                self.media_rejected[session.key] = code
                log.warning("stream %s: %s handshake rejected: %s %s: %s", self.stream_id,
                            session.key, code, status_name(code), reason)
                self.observer.on_lifecycle(self, MediaRejected(session.key, code, reason))
                if self.signaling.media_rejected(session.media_type):
                    self._ready()
        self._signaling_flush()

    def _session_of(self, socket: Socket) -> MediaSession | None:
        for kind, held in self._media_sockets.items():
            if held is socket:
                return self.media_sessions[kind]
        return None

    def _ready(self) -> None:
        """CLIENT_READY_ACK went out; the first time, the stream is READY (after a media
        reconnect it already is)."""
        if self.lifecycle.state is StreamState.CONNECTING:
            self.lifecycle.move(StreamState.READY)
            self.observer.on_lifecycle(self, Ready())
            if self.reconnection:  # sent with the ack (the caller flushes)
                self.signaling.request_states(self.session_id)

    def _signaling_flush(self) -> None:
        if self._signaling_socket is not None:
            self._signaling_socket.flush()

    def _rejected(self, socket: Socket, event: FrameRejected) -> None:
        self.frames_rejected += 1
        # A broken peer can send thousands: the first few, then one line per thousand.
        if self.frames_rejected <= 10 or self.frames_rejected % 1000 == 0:
            log.warning("stream %s: %s: skipped a malformed frame (%d bytes, %d so far): %s",
                        self.stream_id, socket.name, event.size, self.frames_rejected, event.error)

    # ---- watching the sockets -----------------------------------------------------------

    async def _watch_signaling(self, socket: Socket) -> None:
        code = await socket.wait_closed()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(
                ConnectionLost(f"signaling closed during handshake ({code})"))
        if self.signaling.stop_reason is not None:
            self._finish(StreamOutcome(StreamState.STOPPED, stop_reason=self.signaling.stop_reason))
        else:
            self._finish(StreamOutcome(StreamState.LOST,
                                       status_reason=f"signaling socket closed ({code})"))

    async def _watch_media(self, socket: Socket, session: MediaSession) -> None:
        await socket.wait_closed()
        kind = session.media_type
        self.signaling.media_lost(kind)
        if self._media_sockets.get(kind) is socket:
            del self._media_sockets[kind]
        if session.key in self.media_rejected:
            return  # refused, recorded: the other sockets go on
        if self.outcome is None and self.signaling.state is not SignalingState.CLOSED:
            await self._reconnect_media(kind)

    async def _reconnect_media(self, kind: MediaType) -> None:
        """Connect `kind` again with backoff; the stream is lost if the window runs out.
        Zoom at times closes media just before signaling says the stream ended: after
        each wait, nothing is done if it has."""
        backoff = self._media_retries.setdefault(kind, self.policy.media_backoff())
        while not self._ending():
            delay = backoff.next_delay(self.clock.now())
            if delay is None:
                self._finish(StreamOutcome(StreamState.LOST, status_reason=(
                    f"{media_key(kind)} media did not come back within {backoff.window:.0f} s")))
                return
            log.info("stream %s: %s media socket closed; reconnecting in %.1f s",
                     self.stream_id, media_key(kind), delay)
            await self.clock.sleep(delay)
            if self._ending():  # it may have, while we waited
                return
            try:
                await self._open_media(kind, self._media_urls[kind])
            except ConnectionLost as exc:
                log.info("stream %s: media reconnect failed: %s", self.stream_id, exc)
                continue
            self.media_reconnects += 1
            return

    def _outcome(self) -> StreamOutcome | None:
        """`self.outcome` read afresh: after an await, another task may have set it (mypy
        would keep a narrowing from before the await)."""
        return self.outcome

    def _ending(self) -> bool:
        """Whether the connection ended or Zoom has ended the stream."""
        return self.outcome is not None or self.signaling.state is SignalingState.CLOSED

    async def _watch_silence(self) -> None:
        step = max(0.05, min(5.0, self.silence_limit / 4))
        while True:
            await self.clock.sleep(step)
            now = self.clock.now()
            # A socket we do not read is silent by our doing: it is not judged until it has
            # been read again for as long as the limit.
            if self._paused or now - self._resumed_at < self.silence_limit:
                continue
            for socket, session in self._watched():
                if socket.is_open and session.silent_for(now) > self.silence_limit:
                    log.warning("stream %s: %s silent for over %.0f s; closing it",
                                self.stream_id, socket.name, self.silence_limit)
                    await socket.close()

    def _watched(self) -> list[tuple[Socket, Session]]:
        held: list[tuple[Socket, Session]] = []
        if self._signaling_socket is not None:
            held.append((self._signaling_socket, self.signaling))
        held.extend((socket, self.media_sessions[kind])
                    for kind, socket in self._media_sockets.items())
        return held

    # ---- ending -------------------------------------------------------------------------

    def _finish(self, outcome: StreamOutcome) -> StreamOutcome:
        """The connection ends as `outcome` says, unless it ended already (the first end
        stands). The move is the lifecycle's: an illegal one is a LocalProtocolError."""
        if self.outcome is not None:
            return self.outcome
        if self.media_rejected:
            outcome = replace(outcome, media_rejected=dict(self.media_rejected))
        self.lifecycle.move(outcome.state)
        self.outcome = outcome
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_result(_STOPPED)
        if self._done is not None:
            self._done.set_result(outcome)
        self.observer.on_lifecycle(self, Ended(outcome))
        return outcome

    def stop(self, reason: int | None = None, *, state: StreamState = StreamState.STOPPED) -> None:
        """End the run; sockets close with 1000. `state` is STOPPED when Zoom ended the
        stream, DETACHED when we let go of a stream Zoom still runs (shutdown),
        INTERRUPTED or MOVED when the manager connects again."""
        self._finish(StreamOutcome(state, stop_reason=reason))

    def newer_than(self, wall_ms: int) -> bool:
        """Whether this connection began after `wall_ms` (ms since the epoch)."""
        return self.started_at_ms >= wall_ms

    def pause_reading(self) -> None:
        """Stop reading every socket (backpressure), media sockets opened later included."""
        self._paused = True
        for socket in self.sockets:
            socket.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._resumed_at = self.clock.now()
        self._paused = False
        for socket in self.sockets:
            socket.resume_reading()

    async def _close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)


def _media_interrupted(msg: ReceivedMessage) -> bool:
    """Zoom's two ways of saying a media connection broke on its side."""
    match msg:
        case EventUpdate(event=Event(event_type=EventType.MEDIA_CONNECTION_INTERRUPTED)):
            return True
        case StreamStateUpdate(state=ZoomStreamState.INTERRUPTED,
                               reason=StopReason.DATA_CONNECTION_INTERRUPTED):
            return True
        case _:
            return False
