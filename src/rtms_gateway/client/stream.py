"""One RTMS stream: its signaling socket, its media sockets, and their lifetimes.

`RtmsStream.run()` connects, completes every handshake, hands each received message to
the observer, and returns when Zoom terminates the stream, signaling is lost, or `stop()`
is called. A media socket that drops (or that Zoom reports interrupted) is reconnected
here, alone, with backoff inside Zoom's media window; redoing the whole connection
(signaling lost, failover to new URLs) belongs to the caller, the gateway's manager.

TLS only: a signaling or media URL that is not `wss://` is refused (the stream ends
`refused`, with the reason) unless plain WebSockets are explicitly allowed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from ..protocol.constants import (
    CLIENT_SILENCE_LIMIT_S,
    MEDIA_KEY,
    SINGLE_MEDIA_TYPES,
    EventType,
    MediaType,
    Product,
    StopReason,
    StreamState,
    status_name,
)
from ..protocol.errors import ConnectionLost, InsecureUrl
from ..protocol.messages import EventUpdate, MediaParams, StreamStateUpdate
from ..protocol.session import (
    DEFAULT_EVENTS,
    FrameRejected,
    HandshakeCompleted,
    HandshakeFailed,
    MediaSession,
    SignalingSession,
    SignalingState,
    StreamIdentity,
)
from ..protocol.signature import signature
from .backoff import Backoff
from .connection import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What a `*.rtms_started` webhook tells us about a stream."""

    product: Product
    owner_id: str
    rtms_stream_id: str
    server_urls: str


@dataclass(slots=True)
class StreamOutcome:
    """How a run ended: `state` is stopped | detached | rejected | refused | lost | cancelled, or
    interrupted | moved when the manager ended it to connect again."""

    state: str
    stop_reason: int | None = None
    status_code: int | None = None
    status_reason: str | None = None
    media_rejected: dict[str, int] = field(default_factory=dict)


class StreamObserver(Protocol):
    def on_message(self, stream: RtmsStream, msg: object) -> None:
        """A typed protocol message: media data, event update, state update."""

    def on_lifecycle(self, stream: RtmsStream, state: str, detail: dict[str, object]) -> None:
        """connecting | connected | ready | rejected | refused | media_rejected | stopped | lost."""


def signaling_urls(server_urls: str) -> list[str]:
    """Zoom's `server_urls` is one string, comma-separated when there are several."""
    urls = [u.strip() for u in server_urls.split(",")]
    return [u for u in urls if u[:6].lower() == "wss://" or u[:5].lower() == "ws://"]


def is_tls(url: str) -> bool:
    return url[:6].lower() == "wss://"


def insecure_refusal(what: str, url: str) -> InsecureUrl:
    shown = url if len(url) <= 120 else url[:120] + "…"
    return InsecureUrl(f"{what} URL {shown} is not wss:// (TLS); refused "
                       "(RTMS_ALLOW_INSECURE_WS=true allows plain WebSockets)")


def plan_media_sockets(media: MediaType, urls: dict[str, str]) -> list[tuple[MediaType, str]]:
    """One socket per requested type at its own URL; types with no own URL share one
    socket at the `all` URL (unified mode)."""
    plan: list[tuple[MediaType, str]] = []
    unified = MediaType.UNDEFINED
    for kind in SINGLE_MEDIA_TYPES:
        if not kind & media:
            continue
        url = urls.get(MEDIA_KEY[kind])
        if url:
            plan.append((kind, url))
        else:
            unified |= kind
    if unified and urls.get("all"):
        plan.append((unified, urls["all"]))
    return plan


class RtmsStream:
    def __init__(
        self,
        spec: StreamSpec,
        *,
        client_id: str,
        client_secret: str,
        media: MediaType,
        observer: StreamObserver,
        ssl_context: ssl.SSLContext | None,
        media_params: MediaParams | None = None,
        events: Iterable[int] = DEFAULT_EVENTS,
        buffer_data: bool | None = None,
        connect_timeout: float = 10.0,
        silence_limit: float = CLIENT_SILENCE_LIMIT_S,
        media_backoff: Callable[[], Backoff] = lambda: Backoff(window=30.0),
        allow_insecure_ws: bool = False,
    ) -> None:
        self.spec = spec
        self.allow_insecure_ws = allow_insecure_ws
        self.media = media
        self.observer = observer
        self.ssl_context = ssl_context
        self.media_params = media_params
        self.connect_timeout = connect_timeout
        self.silence_limit = silence_limit
        self.media_backoff = media_backoff
        self._media_urls: dict[MediaType, str] = {}
        self._media_conns: dict[MediaType, Connection] = {}
        self._media_retries: dict[MediaType, Backoff] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.media_reconnects = 0
        self.started_at_ms = int(time.time() * 1000)
        self.identity = StreamIdentity(
            rtms_stream_id=spec.rtms_stream_id,
            owner_id=spec.owner_id,
            signature=signature(client_id, client_secret, spec.owner_id, spec.rtms_stream_id),
            id_key=spec.product.id_key,
        )
        self.signaling = SignalingSession(self.identity, events=events, buffer_data=buffer_data)
        self.media_sessions: dict[MediaType, MediaSession] = {}
        self._connections: list[Connection] = []
        self._signaling_conn: Connection | None = None
        self._handshake: asyncio.Future[object] | None = None
        self._done: asyncio.Future[StreamOutcome] | None = None
        self.outcome = StreamOutcome(state="running")
        self.frames_rejected = 0

    @property
    def stream_id(self) -> str:
        return self.spec.rtms_stream_id

    @property
    def meeting_uuid(self) -> str:
        return self.spec.owner_id

    def accepted_params(self, kind: MediaType) -> MediaParams | None:
        """The media parameters Zoom accepted on the socket that carries `kind`."""
        for bits, session in self.media_sessions.items():
            if bits & kind:
                return session.accepted_params
        return None

    # ---- running ------------------------------------------------------------------------

    async def run(self) -> StreamOutcome:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._handshake = loop.create_future()
        try:
            await self._connect_signaling()
            result = await asyncio.wait_for(asyncio.shield(self._handshake), self.connect_timeout)
            if isinstance(result, HandshakeFailed):
                return self._finish(
                    StreamOutcome("rejected", status_code=result.status_code, status_reason=result.reason)
                )
            await self._connect_media()
            watchdog = asyncio.create_task(self._watch_silence())
            try:
                return await asyncio.shield(self._done)
            finally:
                watchdog.cancel()
        except InsecureUrl as exc:
            return self._finish(StreamOutcome("refused", status_reason=str(exc)))
        except (ConnectionLost, asyncio.TimeoutError) as exc:
            return self._finish(StreamOutcome("lost", status_reason=str(exc) or "handshake timed out"))
        except asyncio.CancelledError:
            self._finish(StreamOutcome("cancelled"))
            raise
        finally:
            if not self._handshake.done():  # no one waits for it now: a late close must not set it
                self._handshake.cancel()
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
        self.observer.on_lifecycle(self, "connecting", {"url": urls[0]})
        last: Exception | None = None
        for url in urls:
            conn = Connection(self.signaling, self._on_signaling_event, name="signaling")
            try:
                await conn.connect(url, self.ssl_context, self.connect_timeout)
            except ConnectionLost as exc:
                last = exc
                continue
            self._signaling_conn = conn
            self._connections.append(conn)
            asyncio.get_running_loop().create_task(self._watch_signaling(conn))
            self.signaling.start()
            conn.flush()
            return
        raise last or ConnectionLost("no signaling URL accepted the connection")

    async def _connect_media(self) -> None:
        plan = plan_media_sockets(self.media, self.signaling.media_urls)
        if not plan:
            raise ConnectionLost(f"Zoom offered no media URL for {self.media!r}")
        if not self.allow_insecure_ws:
            for kind, url in plan:
                if not is_tls(url):
                    raise insecure_refusal(f"{MEDIA_KEY.get(kind, str(int(kind)))} media", url)
        self.signaling.expect_media(kind for kind, _ in plan)
        self._media_urls = dict(plan)
        self.observer.on_lifecycle(self, "connected", {"media": [MEDIA_KEY.get(k, str(int(k))) for k, _ in plan]})
        await asyncio.gather(*(self._open_media(kind, url) for kind, url in plan))

    async def _open_media(self, kind: MediaType, url: str) -> None:
        session = MediaSession(self.identity, kind, self.media_params)
        conn = Connection(session, self._on_media_event, name=f"media:{session.key}")
        await conn.connect(url, self.ssl_context, self.connect_timeout)
        if self._ended():  # stopped while connecting
            await conn.close()
            return
        self.media_sessions[kind] = session
        self._media_conns[kind] = conn
        self._connections.append(conn)
        self._spawn(self._watch_media(conn, kind))
        session.start()
        conn.flush()

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ended(self) -> bool:
        return self._done is None or self._done.done()

    # ---- events from the sockets (synchronous, called per frame) ------------------------

    def _on_signaling_event(self, conn: Connection, event: object) -> None:
        if type(event) is HandshakeCompleted or type(event) is HandshakeFailed:
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(event)
            return
        if type(event) is FrameRejected:
            self._rejected(conn, event)  # type: ignore[arg-type]
            return
        self.observer.on_message(self, event)
        if self.signaling.state is SignalingState.CLOSED:
            self._finish(StreamOutcome("stopped", stop_reason=self.signaling.stop_reason))
        elif _media_interrupted(event):
            # Zoom lost a media connection. If we saw one drop, that is the one (already
            # reconnecting); if every socket still looks up to us, one is half-open and the
            # notice does not say which: connect them all again.
            up = [c for c in self._media_conns.values() if c.is_open]
            if len(up) == len(self._media_urls) - len(self.outcome.media_rejected):
                log.info("stream %s: Zoom reports a media connection interrupted; reconnecting media",
                         self.stream_id)
                for conn in up:
                    self._spawn(conn.close())

    def _on_media_event(self, conn: Connection, event: object) -> None:
        kind = type(event)
        if kind is HandshakeCompleted:
            session: MediaSession = conn.session  # type: ignore[assignment]
            self._media_retries.pop(session.media_type, None)  # back: the next drop starts over
            if self.signaling.media_ready(session.media_type):
                self.observer.on_lifecycle(self, "ready", {})
            self._signaling_flush()
        elif kind is HandshakeFailed:
            session = conn.session  # type: ignore[assignment]
            self.outcome.media_rejected[session.key] = event.status_code  # type: ignore[attr-defined]
            log.warning(
                "stream %s: %s handshake rejected: %s %s: %s",
                self.stream_id, session.key, event.status_code,  # type: ignore[attr-defined]
                status_name(event.status_code), event.reason,  # type: ignore[attr-defined]
            )
            self.observer.on_lifecycle(self, "media_rejected", {"media": session.key, "status_code": event.status_code, "reason": event.reason})  # type: ignore[attr-defined]
            if self.signaling.media_rejected(session.media_type):
                self.observer.on_lifecycle(self, "ready", {})
            self._signaling_flush()
        elif kind is FrameRejected:
            self._rejected(conn, event)  # type: ignore[arg-type]
        else:
            self.observer.on_message(self, event)

    def _signaling_flush(self) -> None:
        if self._signaling_conn is not None:
            self._signaling_conn.flush()

    def _rejected(self, conn: Connection, event: FrameRejected) -> None:
        self.frames_rejected += 1
        # A broken peer can send thousands: the first few, then one line per thousand.
        if self.frames_rejected <= 10 or self.frames_rejected % 1000 == 0:
            log.warning("stream %s: %s: skipped a malformed frame (%d bytes, %d so far): %s",
                        self.stream_id, conn.name, event.size, self.frames_rejected, event.error)

    # ---- watching the sockets -----------------------------------------------------------

    async def _watch_signaling(self, conn: Connection) -> None:
        code = await conn.wait_closed()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(ConnectionLost(f"signaling closed during handshake ({code})"))
        if self.signaling.stop_reason is not None or self.outcome.state != "running":
            self._finish(StreamOutcome("stopped", stop_reason=self.signaling.stop_reason))
        else:
            self._finish(StreamOutcome("lost", status_reason=f"signaling socket closed ({code})"))

    async def _watch_media(self, conn: Connection, kind: MediaType) -> None:
        await conn.wait_closed()
        self.signaling.media_lost(kind)
        if self._media_conns.get(kind) is conn:
            del self._media_conns[kind]
        if conn.session.key in self.outcome.media_rejected:  # type: ignore[attr-defined]
            return  # refused, recorded: the other sockets go on
        if not self._ended() and self.signaling.state is not SignalingState.CLOSED:
            await self._reconnect_media(kind)

    async def _reconnect_media(self, kind: MediaType) -> None:
        """Connect `kind` again with backoff; the stream is lost if the window runs out.
        Zoom at times closes media just before signaling says the stream ended: each wait
        ends early, without reconnecting, if it does."""
        loop = asyncio.get_running_loop()
        backoff = self._media_retries.setdefault(kind, self.media_backoff())
        while not self._ended() and self.signaling.state is not SignalingState.CLOSED:
            delay = backoff.next_delay(loop.time())
            if delay is None:
                self._finish(StreamOutcome("lost", status_reason=f"{MEDIA_KEY.get(kind, kind)} media did not "
                                                                 f"come back within {backoff.window:.0f} s"))
                return
            log.info("stream %s: %s media socket closed; reconnecting in %.1f s",
                     self.stream_id, MEDIA_KEY.get(kind, str(int(kind))), delay)
            await asyncio.sleep(delay)
            if self._ended() or self.signaling.state is SignalingState.CLOSED:
                return
            try:
                await self._open_media(kind, self._media_urls[kind])
            except ConnectionLost as exc:
                log.info("stream %s: media reconnect failed: %s", self.stream_id, exc)
                continue
            self.media_reconnects += 1
            return

    async def _watch_silence(self) -> None:
        loop = asyncio.get_running_loop()
        step = max(0.05, min(5.0, self.silence_limit / 4))
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            for conn in list(self._connections):
                if conn.is_open and conn.session.silent_for(now) > self.silence_limit:  # type: ignore[attr-defined]
                    log.warning("stream %s: %s silent for over %.0f s; closing it",
                                self.stream_id, conn.name, self.silence_limit)
                    await conn.close()

    # ---- ending -------------------------------------------------------------------------

    def _finish(self, outcome: StreamOutcome) -> StreamOutcome:
        if self._done is not None and not self._done.done():
            outcome.media_rejected = self.outcome.media_rejected
            self.outcome = outcome
            self._done.set_result(outcome)
            self.observer.on_lifecycle(self, outcome.state, {
                "stop_reason": outcome.stop_reason, "status_code": outcome.status_code,
                "status_reason": outcome.status_reason,
            })
        return self.outcome

    def stop(self, reason: int | None = None, *, state: str = "stopped") -> None:
        """End the run; sockets close with 1000. `state` is "stopped" when Zoom ended the
        stream, "detached" when we let go of a stream Zoom still runs (shutdown),
        "interrupted" or "moved" when the manager connects again."""
        self._finish(StreamOutcome(state, stop_reason=reason))

    def newer_than(self, wall_ms: int) -> bool:
        """Whether this connection began after `wall_ms` (ms since the epoch)."""
        return self.started_at_ms >= wall_ms

    def pause_reading(self) -> None:
        for conn in self._connections:
            conn.pause_reading()

    def resume_reading(self) -> None:
        for conn in self._connections:
            conn.resume_reading()

    async def _close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(c.close() for c in self._connections), return_exceptions=True)


def _media_interrupted(event: object) -> bool:
    """Zoom's two ways of saying a media connection broke on its side."""
    if type(event) is EventUpdate:
        return event.event.event_type == EventType.MEDIA_CONNECTION_INTERRUPTED  # type: ignore[attr-defined]
    if type(event) is StreamStateUpdate:
        return (event.state == StreamState.INTERRUPTED  # type: ignore[attr-defined]
                and event.reason == StopReason.DATA_CONNECTION_INTERRUPTED)  # type: ignore[attr-defined]
    return False
