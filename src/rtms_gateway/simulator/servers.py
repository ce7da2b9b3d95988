"""Zoom's RTMS servers: one picows WebSocket server serving signaling and media by path.

    /signaling/<rtms_stream_id>          signaling socket (the webhook's `server_urls`)
    /media/<kind>/<rtms_stream_id>       media sockets (`media_server.server_urls`)

The stream a socket belongs to is the one its handshake names; the path is informational
(a client that opens the `all` URL and asks for transcripts only gets transcripts, as the
quickstart does). Client JSON is accepted in text and binary frames, fragmented or not,
with unknown fields ignored; the server answers in text frames.

This module only moves bytes and time: whether a handshake is accepted is
`session.HandshakeRules`, what follows is the stream's `session.StreamSession`; a socket's
own state (keep-alive clock, recent frames) is its `session.ServerSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from urllib.parse import quote

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from ..protocol.constants import MEDIA_KEY, MediaType, StatusCode
from ..protocol.messages import MediaServer, Message, encode
from .records import HandshakeRecord
from .session import (
    ClientFrame,
    CloseCode,
    DuplicatePolicy,
    HandshakeRules,
    MediaGrant,
    Refusal,
    Role,
    ServerSocket,
    SocketState,
    StreamSession,
    handshake_response,
)
from .wire import StreamEndpoint

__all__ = ["Connection", "DuplicatePolicy", "RTMSServer"]
log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # client messages are small JSON; refuse runaway fragments
WRITE_BUFFER_LIMIT = 8 << 20  # a client that stops reading loses frames past this, never memory
CLOSE_GRACE_S = 1.0
SIGNALING_PATH = "signaling"
MEDIA_PATH = "media"
_SUBPROTOCOL = "websocket"  # what Zoom's SDK offers


class Connection(WSListener):
    """One accepted WebSocket: frame reassembly and sending. What the frames mean is the
    socket's session (`self.socket`) and, once its handshake is accepted, its stream's."""

    def __init__(self, server: RTMSServer, role: Role) -> None:
        super().__init__()
        self.server = server
        self.transport: WSTransport | None = None
        self._clock = asyncio.get_running_loop().time
        self.socket = ServerSocket(role, self._clock())
        self.endpoint: StreamEndpoint | None = None  # the stream, while it listens
        self.dropped = 0
        self._paused = False
        self._fragments: bytearray | None = None

    # ---- picows callbacks --------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.BINARY:
            if frame.fin:
                self._fragments = None
                self._on_message(frame.get_payload_as_bytes())
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif kind == WSMsgType.CONTINUATION:
            if self._fragments is None:
                return
            self._fragments += frame.get_payload_as_memoryview()
            if len(self._fragments) > MAX_MESSAGE_BYTES:
                self._fragments = None
                self.close(CloseCode.MESSAGE_TOO_BIG)
            elif frame.fin:
                data, self._fragments = bytes(self._fragments), None
                self._on_message(data)
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                self.socket.closing()
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.socket.closed()
        if self.endpoint is not None:
            self.endpoint.on_disconnected(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # ---- ours --------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        frame = self.socket.receive(data)
        if self.socket.state is SocketState.HANDSHAKING:
            self.server.on_handshake(self, frame)
        elif self.endpoint is not None:
            self.endpoint.on_frame(self, frame)
        # else: a refused or replaced socket, closing: what it says is no news

    def send(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self._paused and self.transport.underlying_transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.dropped += 1
            return
        self.transport.send(WSMsgType.TEXT, data)
        self.socket.sent(data, self._clock())

    def send_message(self, msg: Message) -> None:
        self.send(encode(msg))

    def detach(self) -> None:
        self.endpoint = None

    def close(self, code: CloseCode = CloseCode.OK, reason: str = "") -> None:
        """Start the closing handshake; drop the TCP connection if the peer does not answer."""
        if self.transport is None or self.socket.state is SocketState.CLOSED:
            return
        self.socket.closing()
        self.transport.send_close(WSCloseCode(int(code)), reason.encode() if reason else None)
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.transport.disconnect)

    def drop(self) -> None:
        """The connection dies: no close frame, as when a server or a network fails."""
        if self.transport is not None and self.socket.state is not SocketState.CLOSED:
            self.transport.disconnect()

    def pause_reading_for(self, seconds: float) -> None:
        if self.transport is None or self.socket.state is SocketState.CLOSED:
            return
        underlying = self.transport.underlying_transport
        underlying.pause_reading()
        asyncio.get_running_loop().call_later(
            seconds, lambda: None if self.socket.state is SocketState.CLOSED else underlying.resume_reading())

    async def wait_closed(self) -> None:
        if self.transport is not None and self.socket.state is not SocketState.CLOSED:
            # picows re-raises a callback's error here; it was logged already
            with contextlib.suppress(Exception):
                await self.transport.wait_disconnected()


class RTMSServer:
    """The WebSocket side of the simulator; streams register here to be reachable."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        public_host: str = "localhost",
        duplicate_signaling: DuplicatePolicy = "reject",
    ) -> None:
        self.rules = HandshakeRules(client_id, client_secret, duplicate_signaling)
        self.host = host
        self.port = port
        self.public_host = public_host
        self._ssl = ssl_context
        self._servers: list[asyncio.AbstractServer] = []
        self.streams: dict[str, StreamEndpoint] = {}
        self.stray_handshakes: list[HandshakeRecord] = []  # for streams we do not know

    @property
    def scheme(self) -> str:
        return "wss" if self._ssl is not None else "ws"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.public_host}:{self.port}"

    def signaling_url(self, stream_id: str) -> str:
        return f"{self.base_url}/{SIGNALING_PATH}/{_path_part(stream_id)}"

    def media_urls(self, stream_id: str, offered: MediaType) -> dict[str, str]:
        kinds = [key for t, key in MEDIA_KEY.items() if t == MediaType.ALL or offered & t]
        return {key: f"{self.base_url}/{MEDIA_PATH}/{key}/{_path_part(stream_id)}" for key in kinds}

    async def start(self) -> None:
        server = await ws_create_server(self._factory, self.host, self.port, ssl=self._ssl,
                                        logger_name="rtms_sim")
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        if self.host in ("127.0.0.1", "localhost") and self.public_host == "localhost":
            # `localhost` may resolve to ::1 first; serve it too when the system allows
            try:
                self._servers.append(await ws_create_server(
                    self._factory, "::1", self.port, ssl=self._ssl, logger_name="rtms_sim"))
            except OSError:
                pass

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def register(self, stream: StreamEndpoint) -> None:
        self.streams[stream.session.rtms_stream_id] = stream

    def unregister(self, stream: StreamEndpoint) -> None:
        if self.streams.get(stream.session.rtms_stream_id) is stream:
            del self.streams[stream.session.rtms_stream_id]

    # ---- upgrade and handshakes ---------------------------------------------------------

    def _factory(self, request: WSUpgradeRequest) -> Connection | WSUpgradeResponseWithListener | None:
        parts = request.path.decode("latin-1").split("?", 1)[0].strip("/").split("/")
        if parts[0] == SIGNALING_PATH:
            conn = Connection(self, "signaling")
        elif parts[0] == MEDIA_PATH:
            conn = Connection(self, "media")
        else:
            return None  # 404
        offered = request.headers.get("sec-websocket-protocol") or ""
        if _SUBPROTOCOL in (p.strip() for p in offered.split(",")):
            response = WSUpgradeResponse.create_101_response(
                extra_headers={"Sec-WebSocket-Protocol": _SUBPROTOCOL})
            return WSUpgradeResponseWithListener(response, conn)
        return conn

    def _find(self, stream_id: str) -> StreamSession | None:
        stream = self.streams.get(stream_id)
        return stream.session if stream is not None else None

    def on_handshake(self, conn: Connection, frame: ClientFrame) -> None:
        """The first frame of a socket: the rules decide, this pumps the answer."""
        socket = conn.socket
        decision = self.rules.admit(socket, frame, self._find, asyncio.get_running_loop().time())
        if isinstance(decision, Refusal):
            conn.send_message(handshake_response(socket.role, decision.status, decision.reason, decision.sequence))
            if decision.stream is not None:
                decision.stream.refused(socket, decision)
            else:
                socket.refused()
                self.stray_handshakes.append(HandshakeRecord(socket.label, int(decision.status), decision.reason))
            conn.close(CloseCode.OK)
            return
        req = decision.request
        stream = self.streams[req.rtms_stream_id]
        conn.endpoint = stream
        if isinstance(decision, MediaGrant):
            conn.send_message(handshake_response(socket.role, StatusCode.OK, "", req.sequence,
                                                 media_params=decision.params))
            stream.attach_media(conn, decision)
        else:
            urls = self.media_urls(req.rtms_stream_id, decision.stream.offered)
            conn.send_message(handshake_response(socket.role, StatusCode.OK, "", req.sequence,
                                                 media_server=MediaServer(server_urls=urls)))
            stream.attach_signaling(conn, decision.request)


MAX_PATH_PART = 256


def _path_part(stream_id: str) -> str:
    """The stream id as one URL path segment (any id: `/`, `..`, control characters; dots
    escaped too, or a client would resolve `..` away). The path only names the stream for
    a reader of URLs (the handshake says which stream it is): a long id goes by its
    SHA-256, so every URL stays short (a 28 KB upgrade request goes unanswered)."""
    part = quote(stream_id, safe="").replace(".", "%2E")
    if len(part) <= MAX_PATH_PART:
        return part
    return hashlib.sha256(stream_id.encode("utf-8", "surrogatepass")).hexdigest()
