"""Zoom's RTMS servers: one picows WebSocket server serving signaling and media by path.

    /signaling/<rtms_stream_id>          signaling socket (the webhook's `server_urls`)
    /media/<kind>/<rtms_stream_id>       media sockets (`media_server.server_urls`)

The stream a socket belongs to is the one its handshake names; the path is informational
(a client that opens the `all` URL and asks for transcripts only gets transcripts, as the
quickstart does). Client JSON is accepted in text and binary frames, fragmented or not,
with unknown fields ignored; the server answers in text frames.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, Literal
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

from ..protocol.constants import ID_KEYS, MEDIA_KEY, PROTOCOL_VERSION, MediaType, StatusCode, status_name
from ..protocol.errors import ProtocolError
from ..protocol.messages import (
    DataHandshakeReq,
    DataHandshakeResp,
    MediaParams,
    MediaServer,
    Message,
    SignalingHandshakeReq,
    SignalingHandshakeResp,
    decode_client_message,
    encode,
)
from ..protocol.signature import handshake_signature_valid
from .params import MediaRefused, accept_params, status_for_field, wanted_media
from .records import SIGNALING, HandshakeRecord, media_label

if TYPE_CHECKING:
    from .stream import SimStream

DuplicatePolicy = Literal["reject", "evict"]  # a second signaling socket for a live stream
log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # client messages are small JSON; refuse runaway fragments
RECENT_FRAMES = 8  # kept per socket, sent again by the `duplicate` fault
WRITE_BUFFER_LIMIT = 8 << 20  # a client that stops reading loses frames past this, never memory
CLOSE_GRACE_S = 1.0
SIGNALING_PATH = "signaling"
MEDIA_PATH = "media"
_SUBPROTOCOL = "websocket"  # what Zoom's SDK offers


class Connection(WSListener):
    """One accepted WebSocket: frame reassembly, decoding, sending, keep-alive counters."""

    def __init__(self, server: RTMSServer, role: str) -> None:
        super().__init__()
        self.server = server
        self.role = role  # SIGNALING or MEDIA
        self.transport: WSTransport | None = None
        self.stream: SimStream | None = None
        self.label = role  # after a media handshake: what it serves ("audio", "all", ...)
        self.media = MediaType.UNDEFINED  # single media types this socket carries
        self.unified = False  # opened with media_type ALL
        self.params: MediaParams | None = None  # what its handshake accepted
        self.closed = False
        self.last_sent = 0.0
        self.ka_sequence = 0
        self.ka_pending: list[int] = []  # timestamps of unanswered KEEP_ALIVE_REQ
        self.dropped = 0
        self.last_payload: bytes | None = None
        self.recent: deque[bytes] = deque(maxlen=RECENT_FRAMES)  # for the `duplicate` fault
        self._paused = False
        self._fragments: bytearray | None = None
        self._clock = asyncio.get_running_loop().time

    # ---- picows callbacks --------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.last_sent = self._clock()

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
                self.close(WSCloseCode.MESSAGE_TOO_BIG)
            elif frame.fin:
                data, self._fragments = bytes(self._fragments), None
                self._on_message(data)
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.on_disconnected(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # ---- ours --------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        try:
            msg = decode_client_message(data)
        except ProtocolError as exc:
            if self.stream is None:
                self.server.reject_undecodable(self, exc)
            else:
                self.stream.record.frames_rejected += 1
            return
        if self.stream is None:
            self.server.on_handshake(self, msg)
        else:
            self.stream.on_message(self, msg)

    def send(self, data: bytes) -> None:
        if self._paused and self.transport is not None:
            if self.transport.underlying_transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                self.dropped += 1
                return
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, data)
            self.last_sent = self._clock()
            self.last_payload = data
            self.recent.append(data)

    def send_message(self, msg: Message) -> None:
        self.send(encode(msg))

    @property
    def live(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_close_frame_sent

    def close(self, code: WSCloseCode = WSCloseCode.OK, reason: str = "") -> None:
        """Start the closing handshake; drop the TCP connection if the peer does not answer."""
        if self.transport is None or self.closed:
            return
        self.transport.send_close(code, reason.encode() if reason else None)
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.transport.disconnect)

    def drop(self) -> None:
        """The connection dies: no close frame, as when a server or a network fails."""
        if self.transport is not None and not self.closed:
            self.transport.disconnect()

    def pause_reading_for(self, seconds: float) -> None:
        if self.transport is None or self.closed:
            return
        underlying = self.transport.underlying_transport
        underlying.pause_reading()
        asyncio.get_running_loop().call_later(
            seconds, lambda: None if self.closed else underlying.resume_reading())

    async def wait_closed(self) -> None:
        if self.transport is not None and not self.closed:
            try:
                await self.transport.wait_disconnected()
            except Exception:  # picows re-raises a callback's error here; it was logged already
                pass


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
        self._client_id = client_id
        self._client_secret = client_secret
        self.host = host
        self.port = port
        self.public_host = public_host
        self.duplicate_signaling = duplicate_signaling
        self._ssl = ssl_context
        self._servers: list[asyncio.AbstractServer] = []
        self.streams: dict[str, SimStream] = {}
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

    def register(self, stream: SimStream) -> None:
        self.streams[stream.script.rtms_stream_id] = stream

    def unregister(self, stream: SimStream) -> None:
        if self.streams.get(stream.script.rtms_stream_id) is stream:
            del self.streams[stream.script.rtms_stream_id]

    # ---- upgrade and handshakes ---------------------------------------------------------

    def _factory(self, request: WSUpgradeRequest) -> Connection | WSUpgradeResponseWithListener | None:
        parts = request.path.decode("latin-1").split("?", 1)[0].strip("/").split("/")
        if parts[0] == SIGNALING_PATH:
            conn = Connection(self, SIGNALING)
        elif parts[0] == MEDIA_PATH:
            conn = Connection(self, MEDIA_PATH)
        else:
            return None  # 404
        offered = request.headers.get("sec-websocket-protocol") or ""
        if _SUBPROTOCOL in (p.strip() for p in offered.split(",")):
            response = WSUpgradeResponse.create_101_response(
                extra_headers={"Sec-WebSocket-Protocol": _SUBPROTOCOL})
            return WSUpgradeResponseWithListener(response, conn)
        return conn

    def reply(self, conn: Connection, status: int, reason: str, sequence: int | None = None,
              **fields: Any) -> None:
        """The handshake response for the socket's role."""
        kind = SignalingHandshakeResp if conn.role == SIGNALING else DataHandshakeResp
        conn.send_message(kind(status_code=int(status), reason=reason, protocol_version=PROTOCOL_VERSION,
                               sequence=sequence or 0, **fields))

    def refuse(self, conn: Connection, status: StatusCode, reason: str, sequence: int | None,
               stream: SimStream | None = None) -> None:
        """Answer a handshake with an error status, record it, and close the socket."""
        self.reply(conn, status, reason, sequence)
        record = HandshakeRecord(conn.label, int(status), reason)
        (stream.record.handshakes if stream is not None else self.stray_handshakes).append(record)
        conn.close(WSCloseCode.OK)

    def reject_undecodable(self, conn: Connection, exc: ProtocolError) -> None:
        status = status_for_field(exc.field) if conn.role == MEDIA_PATH else StatusCode.INVALID_PAYLOAD
        where = exc.field or "the message"
        self.refuse(conn, status, f"invalid handshake: {where}: {exc}", None)

    def on_handshake(self, conn: Connection, msg: object) -> None:
        expected = SignalingHandshakeReq if conn.role == SIGNALING else DataHandshakeReq
        if type(msg) is not expected:
            self.refuse(conn, StatusCode.INVALID_MESSAGE_TYPE,
                        f"expected a {expected.__name__} (msg_type {expected.__struct_config__.tag})",
                        None)
            return
        req: SignalingHandshakeReq | DataHandshakeReq = msg
        if type(req) is DataHandshakeReq:
            conn.label = media_label(req.media_type)
        stream = self.streams.get(req.rtms_stream_id)
        if stream is None or stream.ended:
            self.refuse(conn, StatusCode.INVALID_RTMS_STREAM_ID,
                        f"unknown rtms_stream_id {req.rtms_stream_id!r}", req.sequence)
            return
        owner = req.owner_id
        if owner is None:
            self.refuse(conn, StatusCode.INVALID_PAYLOAD,
                        f"missing the meeting id: send one of {', '.join(ID_KEYS)}", req.sequence, stream)
            return
        if not handshake_signature_valid(self._client_id, self._client_secret, owner,
                                         req.rtms_stream_id, req.signature):
            self.refuse(conn, StatusCode.INVALID_SIGNATURE,
                        "signature does not verify: expected hex HMAC-SHA256 of "
                        "client_id,meeting_uuid,rtms_stream_id keyed with the client secret",
                        req.sequence, stream)
            return
        if owner != stream.script.owner_id:
            self.refuse(conn, StatusCode.INVALID_SIGNATURE,
                        f"the signed id is not this stream's {stream.script.product.id_key}",
                        req.sequence, stream)
            return
        if type(req) is SignalingHandshakeReq:
            self._accept_signaling(conn, req, stream)
        else:
            self._accept_media(conn, req, stream)  # type: ignore[arg-type]

    def _accept_signaling(self, conn: Connection, req: SignalingHandshakeReq, stream: SimStream) -> None:
        if stream.reject_next is not None:  # a `reject` fault
            status, stream.reject_next = stream.reject_next, None
            self.refuse(conn, StatusCode(status), f"refused by fault injection ({status_name(status)})",
                        req.sequence, stream)
            return
        if stream.signaling_live:
            if self.duplicate_signaling == "reject":
                self.refuse(conn, StatusCode.DUPLICATE_SIGNAL_REQUEST,
                            "duplicate signal request: this stream already has a live signaling connection",
                            req.sequence, stream)
                return
            stream.take_over()
        urls = self.media_urls(req.rtms_stream_id, stream.script.offered)
        self.reply(conn, StatusCode.OK, "", req.sequence, media_server=MediaServer(server_urls=urls))
        stream.attach_signaling(conn, req)

    def _accept_media(self, conn: Connection, req: DataHandshakeReq, stream: SimStream) -> None:
        try:
            wanted = wanted_media(req.media_type, stream.script.offered)
            unified, taken = stream.media_in_use()
            if unified:
                raise MediaRefused(StatusCode.MEDIA_DATA_ALL_CONNECTION_EXIST,
                                     "an `all` media connection is already open")
            asks_all = bool(req.media_type & MediaType.ALL)
            if wanted & taken or (asks_all and taken):
                raise MediaRefused(StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION,
                                     f"{media_label(wanted & taken or taken)} already has a media connection")
            params = accept_params(wanted, req.media_params)
        except MediaRefused as exc:
            self.refuse(conn, exc.status, exc.reason, req.sequence, stream)
            return
        conn.unified = asks_all
        self.reply(conn, StatusCode.OK, "", req.sequence, payload_encrypted=False, media_params=params)
        stream.attach_media(conn, wanted, params)


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
