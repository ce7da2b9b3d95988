"""Client-side state machines of one signaling socket and one media socket (sans-I/O).

A transport feeds each received frame and the current time to `receive()`, sends what
`data_to_send()` returns, and acts on the value `receive()` gives back: a `SessionEvent`
(a typed message -- media, events, state updates -- or one of the session's own events
defined here), or None. Consumers handle it with `match`. Keep-alive answers
are produced here, not by the transport. Nothing in this module touches sockets, asyncio or
the clock.

Signaling lifecycle (the only legal moves; anything else is a LocalProtocolError):

    IDLE --start--> HANDSHAKING --resp ok--> CONNECTED --all media ready--> READY
    HANDSHAKING --resp error--> REJECTED
    CONNECTED | READY --request_close--> CLOSING
    any --stream terminated / close resp / closed()--> CLOSED

The event subscription goes out as soon as the signaling handshake succeeds, before any
media handshake: Zoom starts the session's events (the joins of who is already there
among them) once the client is ready, and replays none of them to a late subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeAlias, TypeVar

import msgspec

from .constants import (
    AUTOMATIC_EVENTS,
    MEDIA_KEY,
    MEDIA_TYPE_BY_KEY,
    PROTOCOL_VERSION,
    MediaType,
    Product,
    StatusCode,
    StopReason,
    StreamState,
    offered_events,
)
from .errors import HandshakeRejected, LocalProtocolError, ProtocolError, RemoteProtocolError
from .messages import (
    AudioData,
    ChatData,
    ClientReadyAck,
    DataHandshakeReq,
    DataHandshakeResp,
    EventSubscription,
    EventSubscriptionItem,
    EventUpdate,
    KeepAliveReq,
    KeepAliveResp,
    MediaParams,
    Message,
    ServerMessage,
    SessionStateReq,
    ShareData,
    SignalingHandshakeReq,
    SignalingHandshakeResp,
    StreamCloseReq,
    StreamCloseResp,
    StreamStateReq,
    StreamStateResp,
    StreamStateUpdate,
    TranscriptData,
    UnknownMessage,
    VideoData,
    VideoSubscriptionReq,
    decode_server_message,
    encode,
)

# A meeting's events, for a session told no others (streams pass their product's).
DEFAULT_EVENTS = offered_events(Product.MEETING)


# ---- events a session reports besides protocol messages --------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    socket: str  # "signaling" or a media key ("audio", "transcript", "all", ...)
    media_urls: dict[str, str]
    media_params: MediaParams | None = None


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    socket: str
    status_code: int
    reason: str

    def error(self) -> HandshakeRejected:
        return HandshakeRejected(self.status_code, self.reason, socket=self.socket)


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that could not be decoded: counted and skipped, never fatal."""

    error: ProtocolError
    size: int


@dataclass(frozen=True, slots=True)
class ReadyAcknowledged:
    """CLIENT_READY_ACK was queued: every media socket completed its handshake."""

    media_types: frozenset[MediaType]


# What `receive()` gives back for a frame: a message from Zoom (answered keep-alives
# excepted), a message type this side does not know, or one of the session's own events.
SessionEvent: TypeAlias = (
    ServerMessage | UnknownMessage | HandshakeCompleted | HandshakeFailed | FrameRejected
)


class SignalingState(Enum):
    IDLE = "idle"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    READY = "ready"
    CLOSING = "closing"
    CLOSED = "closed"
    REJECTED = "rejected"


class MediaState(Enum):
    IDLE = "idle"
    HANDSHAKING = "handshaking"
    STREAMING = "streaming"
    REJECTED = "rejected"
    CLOSED = "closed"


_S = SignalingState
_SIGNALING_MOVES: dict[SignalingState, frozenset[SignalingState]] = {
    _S.IDLE: frozenset({_S.HANDSHAKING, _S.CLOSED}),
    _S.HANDSHAKING: frozenset({_S.CONNECTED, _S.REJECTED, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.READY, _S.CLOSING, _S.CLOSED}),
    _S.READY: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.REJECTED: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}

_M = MediaState
_MEDIA_MOVES: dict[MediaState, frozenset[MediaState]] = {
    _M.IDLE: frozenset({_M.HANDSHAKING, _M.CLOSED}),
    _M.HANDSHAKING: frozenset({_M.STREAMING, _M.REJECTED, _M.CLOSED}),
    _M.STREAMING: frozenset({_M.CLOSED}),
    _M.REJECTED: frozenset({_M.CLOSED}),
    _M.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """What both sockets of one stream say about themselves in their handshakes."""

    rtms_stream_id: str
    owner_id: str  # meeting_uuid / webinar_uuid / session_id / engagement_id
    signature: str
    id_key: str = "meeting_uuid"  # the product's own key, sent besides meeting_uuid


_Request = TypeVar("_Request", SignalingHandshakeReq, DataHandshakeReq)
_State = TypeVar("_State", SignalingState, MediaState)


class _Socket(Generic[_State]):
    """What both session kinds share: the transition rule, the handshake's identifying
    fields, outgoing queue, liveness, keep-alive answers."""

    def __init__(self, identity: StreamIdentity, name: str, state: _State,
                 moves: Mapping[_State, frozenset[_State]]) -> None:
        self.identity = identity
        self._name = name
        self.state: _State = state
        self._moves: Mapping[_State, frozenset[_State]] = moves
        self._outgoing: list[bytes] = []
        self._sequence = 0
        self.last_received: float | None = None
        self.frames_received = 0
        self.frames_rejected = 0
        self.keep_alives_answered = 0

    def _move(self, new: _State) -> None:
        if new not in self._moves[self.state]:
            raise LocalProtocolError(f"{self._name} cannot go from {self.state.value} to {new.value}")
        self.state = new

    def _identified(self, request: _Request) -> _Request:
        """`request` with the stream's identifying fields and the next sequence number;
        the owner id goes under meeting_uuid and, besides, under the product's own key."""
        self._sequence += 1
        identity = self.identity
        own_key = {} if identity.id_key == "meeting_uuid" else {identity.id_key: identity.owner_id}
        return msgspec.structs.replace(
            request,
            rtms_stream_id=identity.rtms_stream_id,
            signature=identity.signature,
            protocol_version=PROTOCOL_VERSION,
            sequence=self._sequence,
            meeting_uuid=identity.owner_id,
            **own_key,
        )

    def _send(self, msg: Message) -> None:
        self._outgoing.append(encode(msg))

    def data_to_send(self) -> list[bytes]:
        """Frames to write, in order; the queue is emptied."""
        out = self._outgoing
        if out:  # per frame there is mostly nothing: no new list then
            self._outgoing = []
        return out

    def silent_for(self, now: float) -> float:
        """Seconds since the last frame (0 before the first frame was expected)."""
        return 0.0 if self.last_received is None else now - self.last_received

    def _decode(self, data: bytes | memoryview | str, now: float) -> SessionEvent | None:
        self.last_received = now
        self.frames_received += 1
        try:
            msg = decode_server_message(data)
        except ProtocolError as exc:
            self.frames_rejected += 1
            return FrameRejected(exc, len(data))
        if type(msg) is KeepAliveReq:  # an isinstance() miss on a Struct costs more, per frame
            self.keep_alives_answered += 1
            self._send(KeepAliveResp(timestamp=msg.timestamp, sequence=msg.sequence))
            return None
        return msg


class SignalingSession(_Socket[SignalingState]):
    def __init__(
        self,
        identity: StreamIdentity,
        *,
        events: Iterable[int] = DEFAULT_EVENTS,
        buffer_data: bool | None = None,
        client_agent: str | None = None,
    ) -> None:
        super().__init__(identity, "signaling", SignalingState.IDLE, _SIGNALING_MOVES)
        bad = set(events) & AUTOMATIC_EVENTS
        if bad:
            raise LocalProtocolError(f"events {sorted(bad)} are sent automatically and cannot be subscribed")
        self.events = tuple(int(e) for e in events)
        self.buffer_data = buffer_data
        self.client_agent = client_agent
        self.media_urls: dict[str, str] = {}
        self._expected_media: frozenset[MediaType] = frozenset()
        self._ready_media: set[MediaType] = set()
        self.ready_acks_sent = 0
        self.stop_reason: int | None = None

    def start(self) -> None:
        self._move(SignalingState.HANDSHAKING)
        self._send(self._identified(SignalingHandshakeReq(
            rtms_stream_id="", signature="",  # filled in by _identified
            buffer_data=self.buffer_data, rtms_client_agent=self.client_agent,
        )))

    def expect_media(self, media_types: Iterable[MediaType]) -> None:
        """The media sockets whose handshakes must succeed before CLIENT_READY_ACK."""
        self._expected_media = frozenset(media_types)

    def media_ready(self, media_type: MediaType) -> ReadyAcknowledged | None:
        """A media socket completed its handshake. Once all expected ones have, queue
        CLIENT_READY_ACK; after a media reconnect, queue the ACK again as Zoom's failover
        guide asks."""
        if self.state not in (SignalingState.CONNECTED, SignalingState.READY):
            raise LocalProtocolError(f"media ready while signaling is {self.state.value}")
        self._ready_media.add(media_type)
        return self._ack_if_ready()

    def media_rejected(self, media_type: MediaType) -> ReadyAcknowledged | None:
        """A media socket was refused: stop waiting for it; the others still stream."""
        self._expected_media = self._expected_media - {media_type}
        self._ready_media.discard(media_type)
        if self.state is SignalingState.CONNECTED and self._ready_media:
            return self._ack_if_ready()
        return None

    def media_lost(self, media_type: MediaType) -> None:
        self._ready_media.discard(media_type)

    def _ack_if_ready(self) -> ReadyAcknowledged | None:
        if not self._expected_media <= self._ready_media:
            return None
        self._send(ClientReadyAck(rtms_stream_id=self.identity.rtms_stream_id))
        self.ready_acks_sent += 1
        if self.state is SignalingState.CONNECTED:
            self._move(SignalingState.READY)
        return ReadyAcknowledged(frozenset(self._ready_media))

    def request_close(self) -> None:
        """Ask Zoom to end the stream (STREAM_CLOSE_REQ)."""
        self._move(SignalingState.CLOSING)
        self._send(StreamCloseReq(rtms_stream_id=self.identity.rtms_stream_id))

    def request_states(self, rtms_session_id: str | None) -> None:
        """Ask Zoom where the stream (STREAM_STATE_REQ) and, if its id is known, the session
        (SESSION_STATE_REQ) stand: after a reconnection, what changed while no socket was up
        came in no update."""
        if self.state is not SignalingState.READY:
            raise LocalProtocolError("state requests need a ready stream")
        self._send(StreamStateReq(rtms_stream_id=self.identity.rtms_stream_id))
        if rtms_session_id:
            self._send(SessionStateReq(rtms_session_id=rtms_session_id))

    def subscribe_video(self, user_id: int, subscribe: bool, timestamp: int) -> None:
        if self.state is not SignalingState.READY:
            raise LocalProtocolError("video subscription needs a ready stream")
        self._send(VideoSubscriptionReq(user_id=user_id, subscribe=subscribe, timestamp=timestamp))

    def closed(self) -> None:
        """The transport lost the socket."""
        if self.state is not SignalingState.CLOSED:
            self._move(SignalingState.CLOSED)

    def receive(self, data: bytes | memoryview | str, now: float) -> SessionEvent | None:
        event = self._decode(data, now)
        match event:
            case SignalingHandshakeResp():
                return self._on_handshake(event)
            case StreamStateUpdate(state=StreamState.TERMINATED):
                self.stop_reason = event.any_reason
                self.closed()
            case StreamStateResp(state=StreamState.TERMINATED):  # ended while we were away
                self.closed()
            case StreamCloseResp() if self.state is SignalingState.CLOSING:
                if event.status_code == StatusCode.OK:  # the stream ends as we asked
                    self.stop_reason = StopReason.RECEIVER_REQUEST_CLOSE
                self.closed()
            case EventUpdate():
                event.keep_received(data)  # the fields no model declares are stored too
        return event

    def _on_handshake(
        self, msg: SignalingHandshakeResp
    ) -> HandshakeCompleted | HandshakeFailed | FrameRejected:
        if self.state is not SignalingState.HANDSHAKING:
            return FrameRejected(RemoteProtocolError("unexpected signaling handshake response"), 0)
        if msg.status_code != StatusCode.OK:
            self._move(SignalingState.REJECTED)
            return HandshakeFailed("signaling", msg.status_code, msg.reason)
        self._move(SignalingState.CONNECTED)
        self.media_urls = dict(msg.media_server.server_urls) if msg.media_server else {}
        if self.events:  # now, before media: events sent before it would be missed for good
            self._send(EventSubscription(
                events=[EventSubscriptionItem(event_type=e, subscribe=True) for e in self.events]))
        return HandshakeCompleted("signaling", self.media_urls)


class MediaSession(_Socket[MediaState]):
    """One media socket: its handshake, keep-alives and the media it carries."""

    def __init__(
        self,
        identity: StreamIdentity,
        media_type: MediaType,
        media_params: MediaParams | None = None,
    ) -> None:
        super().__init__(identity, "media socket", MediaState.IDLE, _MEDIA_MOVES)
        if media_type == MediaType.UNDEFINED or media_type >= MediaType.ALL << 1:
            raise LocalProtocolError(f"invalid media_type {int(media_type)}")
        self.media_type = media_type
        self.media_params = media_params
        self.accepted_params: MediaParams | None = None
        self.media_frames = 0

    @property
    def key(self) -> str:
        return MEDIA_KEY.get(self.media_type, str(int(self.media_type)))

    def start(self) -> None:
        self._move(MediaState.HANDSHAKING)
        self._send(self._identified(DataHandshakeReq(
            rtms_stream_id="", signature="",  # filled in by _identified
            media_type=int(self.media_type), payload_encryption=False,
            media_params=self._own_params(),
        )))

    def _own_params(self) -> MediaParams | None:
        """Only the parameters of the types this socket carries: Zoom validates each one."""
        if self.media_params is None:
            return None
        own = {
            name: value
            for name in MediaParams.__struct_fields__
            if (value := getattr(self.media_params, name)) is not None
            and (self.media_type & MediaType.ALL or MEDIA_TYPE_BY_KEY[name] & self.media_type)
        }
        return MediaParams(**own) if own else None

    def closed(self) -> None:
        if self.state is not MediaState.CLOSED:
            self._move(MediaState.CLOSED)

    def receive(self, data: bytes | memoryview | str, now: float) -> SessionEvent | None:
        event = self._decode(data, now)
        match event:
            # Most frequent first: each pattern is an isinstance() check, per frame.
            case AudioData() | VideoData() | ShareData():
                self.media_frames += 1
            case TranscriptData() | ChatData():
                # Low rate: decoded once more, so the fields no model declares are stored
                # too (never for audio, video or share: the hot path stays one decode).
                self.media_frames += 1
                event.keep_received(data)
            case DataHandshakeResp():
                return self._on_handshake(event)
            case EventUpdate():
                event.keep_received(data)
        return event

    def _on_handshake(
        self, msg: DataHandshakeResp
    ) -> HandshakeCompleted | HandshakeFailed | FrameRejected:
        if self.state is not MediaState.HANDSHAKING:
            return FrameRejected(RemoteProtocolError("unexpected media handshake response"), 0)
        if msg.status_code != StatusCode.OK:
            self._move(MediaState.REJECTED)
            return HandshakeFailed(self.key, msg.status_code, msg.reason)
        self._move(MediaState.STREAMING)
        self.accepted_params = msg.media_params
        return HandshakeCompleted(self.key, {}, self.accepted_params)
