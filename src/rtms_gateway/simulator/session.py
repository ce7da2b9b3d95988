"""Zoom's side of RTMS as state machines, sans-I/O: which handshakes are accepted, what a
stream's phase allows, when a keep-alive is due or a peer is late, and what to answer.

Three pieces, none of which touches a socket, asyncio or the clock (time comes in as
`now`, monotonic seconds, and `stamp`, wall-clock ms for the messages' timestamps):

- `ServerSocket`: one accepted WebSocket. Its state, what its handshake granted, the
  frames it last sent (the `duplicate` and `truncated` faults resend them) and its
  keep-alive clock. The transport feeds it every frame received and sent.
- `HandshakeRules`: the checks every handshake goes through (message type, stream,
  signature, the signed id), then the stream's own (duplicates, media in use, params).
- `StreamSession`: one stream: the phase table, the sockets attached to it, reconnection
  windows, keep-alives, and the replies to the client's control messages. Faults plug in
  through `queue`, `silence` and `refuse_next_signaling` (see `faults.FaultInjector`).

A session does not send: it queues effects (`Send`, `Close`, `StartStreaming`, ...) that
the I/O side (`stream.SimStream`) takes with `effects()` and carries out, in order.

Stream phases (the only legal moves; anything else is a LocalProtocolError):

    WAITING --signaling ok--> CONNECTED --CLIENT_READY_ACK--> STREAMING
    CONNECTED (never streamed) --signaling lost--> WAITING
    STREAMING | CONNECTED --signaling lost / 3 keep-alives missed--> INTERRUPTED
    STREAMING --taken over by a new signaling socket--> CONNECTED
    INTERRUPTED --signaling ok--> CONNECTED --ready--> STREAMING (resumed)
    any --stop--> STOPPED
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Literal

from ..protocol.constants import (
    AUTOMATIC_EVENTS,
    ID_KEYS,
    KEEP_ALIVE_INTERVAL_S,
    KEEP_ALIVE_MAX_MISSED,
    MEDIA_RECONNECT_WINDOW_S,
    PROTOCOL_VERSION,
    SIGNALING_RECONNECT_WINDOW_S,
    SINGLE_MEDIA_TYPES,
    DataOption,
    EventType,
    MediaType,
    SessionState,
    StatusCode,
    StopReason,
    StreamState,
    status_name,
)
from ..protocol.errors import LocalProtocolError, ProtocolError
from ..protocol.messages import (
    ClientMessage,
    ClientReadyAck,
    DataHandshakeReq,
    DataHandshakeResp,
    EventSubscription,
    EventSubscriptionItem,
    KeepAliveReq,
    KeepAliveResp,
    MediaParams,
    MediaServer,
    Message,
    SessionStateReq,
    SessionStateResp,
    SessionStateUpdate,
    SignalingHandshakeReq,
    SignalingHandshakeResp,
    StreamCloseReq,
    StreamCloseResp,
    StreamStateReq,
    StreamStateResp,
    StreamStateUpdate,
    UnknownMessage,
    VideoSubscriptionReq,
    VideoSubscriptionResp,
    decode_client_message,
)
from ..protocol.signature import handshake_signature_valid
from .params import MediaRefused, accept_params, status_for_field, wanted_media
from .records import SIGNALING, HandshakeRecord, MeetingRecord, media_label

MEDIA = "media"
Role = Literal["signaling", "media"]
DuplicatePolicy = Literal["reject", "evict"]  # a second signaling socket for a live stream
RECENT_FRAMES = 8  # kept per socket, sent again by the `duplicate` fault


class CloseCode(IntEnum):
    """The WebSocket close codes the simulator sends (RFC 6455 §7.4.1)."""

    OK = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009


# ---- one socket ---------------------------------------------------------------------------


class SocketState(Enum):
    HANDSHAKING = "handshaking"  # connected, waiting for its handshake request
    OPEN = "open"  # handshake accepted
    REFUSED = "refused"  # handshake refused, closing
    CLOSING = "closing"  # close frame sent
    CLOSED = "closed"  # the connection is gone


_K = SocketState
_SOCKET_MOVES: dict[SocketState, frozenset[SocketState]] = {
    _K.HANDSHAKING: frozenset({_K.OPEN, _K.REFUSED, _K.CLOSING, _K.CLOSED}),
    _K.OPEN: frozenset({_K.CLOSING, _K.CLOSED}),
    _K.REFUSED: frozenset({_K.CLOSING, _K.CLOSED}),
    _K.CLOSING: frozenset({_K.CLOSED}),
    _K.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A client frame that did not decode: a value, never an exception."""

    error: ProtocolError


ClientFrame = ClientMessage | UnknownMessage | Undecodable  # what a client's frame decodes to


class KeepAlive:
    """When a socket needs a KEEP_ALIVE_REQ and whether its peer is late. Any frame sent
    counts as a sign of life; a request is due after `interval` of sending nothing."""

    __slots__ = ("last_sent", "pending", "sequence")

    def __init__(self, now: float) -> None:
        self.last_sent = now
        self.sequence = 0
        self.pending: list[int] = []  # timestamps of unanswered requests

    def due(self, now: float, interval: float) -> bool:
        return now - self.last_sent >= interval

    @property
    def late(self) -> bool:
        """Too many requests went unanswered: the peer is gone."""
        return len(self.pending) >= KEEP_ALIVE_MAX_MISSED

    def request(self, stamp: int) -> KeepAliveReq:
        self.sequence += 1
        self.pending.append(stamp)
        return KeepAliveReq(timestamp=stamp, sequence=self.sequence)

    def answer(self, timestamp: int | None) -> bool:
        """An answer echoing one of the pending timestamps clears them all; False for an
        answer that echoes nothing we asked."""
        if timestamp is not None and timestamp in self.pending:
            self.pending.clear()
            return True
        return False


class ServerSocket:
    """One accepted WebSocket on Zoom's side."""

    def __init__(self, role: Role, now: float) -> None:
        self.role: Role = role
        self.state = SocketState.HANDSHAKING
        self.label: str = role  # after a media handshake: what it serves ("audio", "all", ...)
        self.media = MediaType.UNDEFINED  # single media types it carries
        self.unified = False  # opened with media_type ALL
        self.params: MediaParams | None = None  # what its handshake accepted
        self.keepalive = KeepAlive(now)
        self.last_payload: bytes | None = None
        self.recent: deque[bytes] = deque(maxlen=RECENT_FRAMES)

    def __repr__(self) -> str:
        return f"<ServerSocket {self.label} {self.state.value}>"

    @property
    def live(self) -> bool:
        return self.state is SocketState.OPEN

    def _move(self, new: SocketState) -> None:
        if new is self.state:
            return
        if new not in _SOCKET_MOVES[self.state]:
            raise LocalProtocolError(f"socket cannot go from {self.state.value} to {new.value}")
        self.state = new

    def receive(self, data: bytes) -> ClientFrame:
        try:
            return decode_client_message(data)
        except ProtocolError as exc:
            return Undecodable(exc)

    def sent(self, data: bytes, now: float) -> None:
        """The transport wrote `data` on this socket."""
        self.keepalive.last_sent = now
        self.last_payload = data
        self.recent.append(data)

    def name_media(self, media_type: int) -> None:
        self.label = media_label(media_type)

    def opened(self, media: MediaType = MediaType.UNDEFINED, unified: bool = False,
               params: MediaParams | None = None) -> None:
        self._move(SocketState.OPEN)
        self.media, self.unified, self.params = media, unified, params

    def refused(self) -> None:
        self._move(SocketState.REFUSED)

    def closing(self) -> None:
        if self.state is not SocketState.CLOSED:
            self._move(SocketState.CLOSING)

    def closed(self) -> None:
        self._move(SocketState.CLOSED)


def handshake_response(role: Role, status: int, reason: str, sequence: int | None = None, *,
                       media_server: MediaServer | None = None,
                       media_params: MediaParams | None = None) -> SignalingHandshakeResp | DataHandshakeResp:
    """The handshake response for a socket of `role` (media ones say their payloads are
    not encrypted when accepted)."""
    if role == SIGNALING:
        return SignalingHandshakeResp(status_code=int(status), reason=reason, protocol_version=PROTOCOL_VERSION,
                                      sequence=sequence or 0, media_server=media_server)
    return DataHandshakeResp(status_code=int(status), reason=reason, protocol_version=PROTOCOL_VERSION,
                             sequence=sequence or 0, media_params=media_params,
                             payload_encrypted=False if status == StatusCode.OK else None)


# ---- handshake acceptance ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """A handshake answered with an error status; the socket is then closed."""

    status: StatusCode
    reason: str
    sequence: int | None
    stream: StreamSession | None = None  # the stream it asked for, if that one exists


@dataclass(frozen=True, slots=True)
class SignalingGrant:
    stream: StreamSession
    request: SignalingHandshakeReq


@dataclass(frozen=True, slots=True)
class MediaGrant:
    stream: StreamSession
    request: DataHandshakeReq
    media: MediaType  # the single types the socket will carry
    unified: bool  # asked for `all`
    params: MediaParams  # what is echoed: the request's, defaults filled in


Admission = Refusal | SignalingGrant | MediaGrant


class HandshakeRules:
    """What every handshake is checked against before a stream sees it: Zoom's status
    codes for the wrong message, an unknown stream, a missing id, a bad signature."""

    def __init__(self, client_id: str, client_secret: str, duplicate_signaling: DuplicatePolicy = "reject") -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.duplicate_signaling: DuplicatePolicy = duplicate_signaling

    def admit(self, socket: ServerSocket, frame: ClientFrame,
              find: Callable[[str], StreamSession | None], now: float = 0.0) -> Admission:
        """The answer to the first frame of `socket` at `now`; `find` looks a stream up by id."""
        if isinstance(frame, Undecodable):
            exc = frame.error
            status = status_for_field(exc.field) if socket.role == MEDIA else StatusCode.INVALID_PAYLOAD
            return Refusal(status, f"invalid handshake: {exc.field or 'the message'}: {exc}", None)
        expected = SignalingHandshakeReq if socket.role == SIGNALING else DataHandshakeReq
        if type(frame) is not expected:
            return Refusal(StatusCode.INVALID_MESSAGE_TYPE,
                           f"expected a {expected.__name__} (msg_type {expected.__struct_config__.tag})", None)
        req: SignalingHandshakeReq | DataHandshakeReq = frame
        if isinstance(req, DataHandshakeReq):
            socket.name_media(req.media_type)
        stream = find(req.rtms_stream_id)
        if stream is None or stream.phase is Phase.STOPPED:
            return Refusal(StatusCode.INVALID_RTMS_STREAM_ID, f"unknown rtms_stream_id {req.rtms_stream_id!r}",
                           req.sequence)
        owner = req.owner_id
        if owner is None:
            return Refusal(StatusCode.INVALID_PAYLOAD, f"missing the meeting id: send one of {', '.join(ID_KEYS)}",
                           req.sequence, stream)
        if not handshake_signature_valid(self._client_id, self._client_secret, owner, req.rtms_stream_id,
                                         req.signature):
            return Refusal(StatusCode.INVALID_SIGNATURE,
                           "signature does not verify: expected hex HMAC-SHA256 of "
                           "client_id,meeting_uuid,rtms_stream_id keyed with the client secret",
                           req.sequence, stream)
        if owner != stream.owner_id:
            return Refusal(StatusCode.INVALID_SIGNATURE, f"the signed id is not this stream's {stream.id_key}",
                           req.sequence, stream)
        if isinstance(req, SignalingHandshakeReq):
            return stream.admit_signaling(req, self.duplicate_signaling, now)
        return stream.admit_media(req)


# ---- what a stream session asks the I/O side to do ----------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    socket: ServerSocket
    message: Message


@dataclass(frozen=True, slots=True)
class SendRaw:
    """Frames as they are (faults: malformed, truncated, repeated, garbage)."""

    socket: ServerSocket
    frames: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Detach the socket from the stream (its loss is no news any more) and close it."""

    socket: ServerSocket
    code: CloseCode
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """Kill the connection without a close frame, as a failing server or network does."""

    socket: ServerSocket


@dataclass(frozen=True, slots=True)
class PauseReading:
    socket: ServerSocket
    seconds: float


@dataclass(frozen=True, slots=True)
class StartStreaming:
    """The media timeline (re)starts: feeds on every live media socket, the pacer ticks."""

    resumed: bool


@dataclass(frozen=True, slots=True)
class StartFeeds:
    """A media socket joined a streaming stream."""

    socket: ServerSocket


@dataclass(frozen=True, slots=True)
class StopFeeds:
    """Media stops on one socket, or (None) on all of them and the pacer lets go."""

    socket: ServerSocket | None


@dataclass(frozen=True, slots=True)
class SendEvent:
    """An EVENT_UPDATE on signaling, if subscribed (`present`: with who is here now)."""

    event_type: EventType
    present: bool = False


@dataclass(frozen=True, slots=True)
class Wake:
    """Something the meeting's supervisor waits on changed (phase, stop, interruption)."""


Effect = Send | SendRaw | Close | Drop | PauseReading | StartStreaming | StartFeeds | StopFeeds | SendEvent | Wake


# ---- one stream ---------------------------------------------------------------------------


class Phase(Enum):
    WAITING = "waiting"
    CONNECTED = "connected"
    STREAMING = "streaming"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"


_P = Phase
PHASE_MOVES: dict[Phase, frozenset[Phase]] = {
    _P.WAITING: frozenset({_P.CONNECTED, _P.STOPPED}),
    _P.CONNECTED: frozenset({_P.STREAMING, _P.WAITING, _P.INTERRUPTED, _P.STOPPED}),
    _P.STREAMING: frozenset({_P.CONNECTED, _P.INTERRUPTED, _P.STOPPED}),
    _P.INTERRUPTED: frozenset({_P.CONNECTED, _P.STOPPED}),
    _P.STOPPED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class StreamSettings:
    keepalive_interval: float = KEEP_ALIVE_INTERVAL_S
    signaling_reconnect_window: float = SIGNALING_RECONNECT_WINDOW_S
    media_reconnect_window: float = MEDIA_RECONNECT_WINDOW_S
    timestamp_jitter_ms: int = 0  # media timestamps off their slot by up to this, either way
    # After a signaling socket is lost Zoom may hold it as "still closing" this long; a new
    # signaling handshake meanwhile is refused with DUPLICATE_SIGNAL_REQUEST (8).
    signaling_linger_s: float = 0.0
    # Zoom replays nothing to a client that subscribes to joins late; True sends it who is
    # here (for clients that subscribe late on purpose).
    replay_joins: bool = False
    # Transcripts are in the source language (English unless `src_language`) this long
    # after the stream starts, then in the language detected, unless `enable_lid` is false.
    lid_warmup_s: float = 30.0
    # META_DATA_AUDIO (23): the AI interpreter's language pairs, on audio sockets.
    ai_interpreter: bool = False
    # Transcripts, chat and events carry fields no protocol version declares
    # (`media.FUTURE_FIELDS`), as a later Zoom release may: clients must not choke on them.
    future_fields: bool = False


DEFAULT_SETTINGS = StreamSettings()


class StreamSession:
    """The rules of one stream on Zoom's side. Every method takes the time it needs and
    queues effects; `effects()` hands them over."""

    def __init__(self, record: MeetingRecord, *, duration_s: float, id_key: str = "meeting_uuid",
                 offered: MediaType = MediaType.ALL, settings: StreamSettings = DEFAULT_SETTINGS) -> None:
        self.record = record
        self.rtms_stream_id = record.rtms_stream_id
        self.rtms_session_id = record.rtms_session_id
        self.owner_id = record.owner_id
        self.id_key = id_key
        self.offered = offered
        self.duration_s = duration_s
        self.settings = settings
        self.phase = Phase.WAITING
        self.started = False  # streamed at least once
        self.end_at = float("inf")  # the meeting ends `duration_s` after it first streamed
        self.signaling: ServerSocket | None = None
        self.media: list[ServerSocket] = []
        self.served: dict[MediaType, ServerSocket] = {}
        self.buffer_data = True  # the client did not decline Zoom's startup buffer
        self.subscribed: set[int] = set()
        self.video_user: int | str | None = None
        self.stop_requested: StopReason | None = None
        self.interruptions_to_report = 0  # `*.rtms_interrupted` webhooks owed
        self.silent_until = 0.0  # a `silent` fault holds everything until then
        self.reject_next: int | None = None  # a `reject` fault's status for the next signaling handshake
        self.signaling_closing_until = 0.0  # a lost signaling socket still counts as closing until then
        self.paused_until: float | None = None  # the session is paused (a `pause` fault) until then
        self._join_missed = False
        self._deadline: float | None = None  # reconnection window of an interruption
        self._deadline_reason = StopReason.AWAIT_RECONNECTION_TIMEOUT
        self._media_lost = MediaType.UNDEFINED
        self._media_deadline: float | None = None
        self._media_reason = StopReason.AWAIT_RECONNECTION_TIMEOUT
        self._effects: list[Effect] = []

    def effects(self) -> list[Effect]:
        """What to do, in order; the queue is emptied."""
        out, self._effects = self._effects, []
        return out

    def _move(self, new: Phase) -> None:
        if new is self.phase:
            return
        if new not in PHASE_MOVES[self.phase]:
            raise LocalProtocolError(f"stream cannot go from {self.phase.value} to {new.value}")
        self.phase = new

    def _send(self, socket: ServerSocket, message: Message) -> None:
        self._effects.append(Send(socket, message))

    @property
    def signaling_live(self) -> bool:
        return self.signaling is not None and self.signaling.live

    def live_sockets(self) -> list[ServerSocket]:
        return [s for s in (self.signaling, *self.media) if s is not None and s.live]

    def media_in_use(self) -> tuple[bool, MediaType]:
        """Whether an `all` socket is open, and the media types live sockets carry."""
        taken, unified = MediaType.UNDEFINED, False
        for socket in self.media:
            if socket.live:
                taken |= socket.media
                unified = unified or socket.unified
        return unified, taken

    # ---- handshakes -------------------------------------------------------------------

    def admit_signaling(self, req: SignalingHandshakeReq, duplicate: DuplicatePolicy,
                        now: float = 0.0) -> Refusal | SignalingGrant:
        if self.reject_next is not None:  # a `reject` fault
            status, self.reject_next = self.reject_next, None
            return Refusal(StatusCode(status), f"refused by fault injection ({status_name(status)})",
                           req.sequence, self)
        if now < self.signaling_closing_until:  # whatever the policy: Zoom has not let go yet
            return Refusal(StatusCode.DUPLICATE_SIGNAL_REQUEST,
                           "duplicate signal request: the previous signaling connection is still closing",
                           req.sequence, self)
        if self.signaling_live and duplicate == "reject":
            return Refusal(StatusCode.DUPLICATE_SIGNAL_REQUEST,
                           "duplicate signal request: this stream already has a live signaling connection",
                           req.sequence, self)
        return SignalingGrant(self, req)

    def admit_media(self, req: DataHandshakeReq) -> Refusal | MediaGrant:
        try:
            wanted = wanted_media(req.media_type, self.offered)
            unified, taken = self.media_in_use()
            if unified:
                raise MediaRefused(StatusCode.MEDIA_DATA_ALL_CONNECTION_EXIST,
                                   "an `all` media connection is already open")
            asks_all = bool(req.media_type & MediaType.ALL)
            if wanted & taken or (asks_all and taken):
                raise MediaRefused(StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION,
                                   f"{media_label(wanted & taken or taken)} already has a media connection")
            params = accept_params(wanted, req.media_params)
        except MediaRefused as exc:
            return Refusal(exc.status, exc.reason, req.sequence, self)
        return MediaGrant(self, req, wanted, asks_all, params)

    def refused(self, socket: ServerSocket, refusal: Refusal) -> None:
        socket.refused()
        self.record.handshakes.append(HandshakeRecord(socket.label, int(refusal.status), refusal.reason))

    def attach_signaling(self, socket: ServerSocket, req: SignalingHandshakeReq) -> None:
        """The socket's handshake was answered OK; a live predecessor (the `evict` policy)
        is replaced, with its media sockets."""
        if self.signaling_live:
            self._drop_sockets(CloseCode.POLICY_VIOLATION, "replaced by a new signaling connection")
            if self.phase is Phase.STREAMING:
                self._move(Phase.CONNECTED)  # streaming resumes on the newcomer's ready
        socket.opened()
        self.signaling = socket
        self.buffer_data = req.buffer_data is not False
        self.record.handshakes.append(HandshakeRecord(socket.label, int(StatusCode.OK), ""))
        self._effects.append(SendEvent(EventType.FIRST_PACKET_TIMESTAMP))
        if self.phase in (Phase.WAITING, Phase.INTERRUPTED):
            self._move(Phase.CONNECTED)
            self._deadline = None
        self._effects.append(Wake())

    def attach_media(self, socket: ServerSocket, grant: MediaGrant) -> None:
        socket.opened(grant.media, grant.unified, grant.params)
        self.media.append(socket)
        for kind in SINGLE_MEDIA_TYPES:
            if grant.media & kind:
                self.served[kind] = socket
        self.record.handshakes.append(HandshakeRecord(socket.label, int(StatusCode.OK), ""))
        self._media_lost &= ~grant.media
        if not self._media_lost:
            self._media_deadline = None
        if self.phase is Phase.STREAMING and self.paused_until is None:
            self._effects.append(StartFeeds(socket))
        self._effects.append(Wake())

    # ---- frames on attached sockets ---------------------------------------------------

    def receive(self, socket: ServerSocket, frame: ClientFrame, now: float, stamp: int) -> None:
        if isinstance(frame, Undecodable):
            self.record.frames_rejected += 1
            return
        sig = socket is self.signaling
        if isinstance(frame, KeepAliveResp):
            if socket.keepalive.answer(frame.timestamp):
                self.record.keepalives_answered[socket.label] += 1
            else:
                self.record.keepalive_bad_echoes += 1
        elif isinstance(frame, ClientReadyAck) and sig:
            self.record.ready_acks += 1
            if self.phase is Phase.CONNECTED:
                self._start_streaming(socket, now, stamp)
        elif isinstance(frame, EventSubscription) and sig:
            self._on_subscription(frame)
        elif isinstance(frame, StreamCloseReq) and sig:
            self._send(socket, StreamCloseResp(status_code=int(StatusCode.OK), reason="OK",
                                               rtms_stream_id=self.rtms_stream_id, timestamp=stamp))
            self.record.close_requested = True
            self.stop_requested = StopReason.RECEIVER_REQUEST_CLOSE
            self._effects.append(Wake())
        elif isinstance(frame, StreamStateReq) and sig:
            self.record.state_requests["stream"] = self.record.state_requests.get("stream", 0) + 1
            state = StreamState.ACTIVE if self.phase is Phase.STREAMING else StreamState.INACTIVE
            if self.paused_until is not None:
                state = StreamState.PAUSED
            self._send(socket, StreamStateResp(state=int(state), rtms_stream_id=self.rtms_stream_id, timestamp=stamp))
        elif isinstance(frame, SessionStateReq) and sig:
            self.record.state_requests["session"] = self.record.state_requests.get("session", 0) + 1
            session = SessionState.STARTED if self.phase is Phase.STREAMING else SessionState.INACTIVE
            if self.paused_until is not None:
                session = SessionState.PAUSED
            self._send(socket, SessionStateResp(state=int(session), rtms_session_id=self.rtms_session_id,
                                                timestamp=stamp))
        elif isinstance(frame, VideoSubscriptionReq) and sig:
            self._on_video_subscription(socket, frame, stamp)
        else:
            if isinstance(frame, (SignalingHandshakeReq, DataHandshakeReq)):  # again, on a socket that did it
                status = StatusCode.DUPLICATE_SIGNAL_REQUEST if sig else StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION
                self._send(socket, handshake_response(socket.role, status,
                                                      "this socket already completed its handshake", frame.sequence))
            self.record.unexpected[f"{socket.label}:{type(frame).__name__}"] += 1

    def _start_streaming(self, signaling: ServerSocket, now: float, stamp: int) -> None:
        """Media flows: the first time (the session STARTED) or again after a reconnection,
        where the session goes on as it was: RESUMED is for a pause's end only."""
        resumed = self.started
        if not resumed:
            self.end_at = now + self.duration_s  # however long the client took to connect
        self._move(Phase.STREAMING)
        self.started = True
        self._send(signaling, StreamStateUpdate(state=int(StreamState.ACTIVE), reason=int(StopReason.UNDEFINED),
                                                timestamp=stamp))
        if not resumed:
            self._send(signaling, SessionStateUpdate(
                state=int(SessionState.STARTED), timestamp=stamp,
                reason=int(StopReason.UNDEFINED), rtms_session_id=self.rtms_session_id))
        self._effects.append(StartStreaming(resumed))
        self._effects.append(Wake())

    # ---- pause and resume (the host pauses the app's streaming) -------------------------

    def pause(self, now: float, stamp: int, seconds: float) -> None:
        """The session pauses for `seconds`: no media meanwhile (what falls due is lost),
        keep-alives go on; SESSION_STATE_UPDATE PAUSED and STREAM_STATE_UPDATE PAUSED."""
        sig = self.signaling
        if self.phase is not Phase.STREAMING or self.paused_until is not None or sig is None:
            return
        self.paused_until = now + seconds
        self.record.pauses += 1
        self._send(sig, SessionStateUpdate(state=int(SessionState.PAUSED), timestamp=stamp,
                                           rtms_session_id=self.rtms_session_id))
        self._send(sig, StreamStateUpdate(state=int(StreamState.PAUSED), reason=int(StopReason.UNDEFINED),
                                          timestamp=stamp))
        self._effects.append(StopFeeds(None))
        self._effects.append(Wake())

    def _resume(self, stamp: int) -> None:
        self.paused_until = None
        sig = self.signaling
        if self.phase is not Phase.STREAMING or sig is None:
            return
        self._send(sig, SessionStateUpdate(state=int(SessionState.RESUMED), timestamp=stamp,
                                           rtms_session_id=self.rtms_session_id))
        self._send(sig, StreamStateUpdate(state=int(StreamState.RESUMED), reason=int(StopReason.UNDEFINED),
                                          timestamp=stamp))
        self._effects.append(StartStreaming(resumed=True))
        self._effects.append(Wake())

    def _on_subscription(self, msg: EventSubscription) -> None:
        for item in msg.events:
            if not isinstance(item, EventSubscriptionItem):
                self.record.unexpected["signaling:EventSubscription item"] += 1
            elif item.event_type in AUTOMATIC_EVENTS:
                continue  # always sent; subscribing changes nothing
            elif item.subscribe:
                self.subscribed.add(item.event_type)
            else:
                self.subscribed.discard(item.event_type)
        self.record.subscribed = set(self.subscribed)
        if self._join_missed and self.settings.replay_joins and EventType.PARTICIPANT_JOIN in self.subscribed:
            # who is already here, for a client that subscribed after the first joins
            self._join_missed = False
            self._effects.append(SendEvent(EventType.PARTICIPANT_JOIN, present=True))

    def _on_video_subscription(self, socket: ServerSocket, msg: VideoSubscriptionReq, stamp: int) -> None:
        status, reason = StatusCode.OK, ""
        video = self.served.get(MediaType.VIDEO)
        params = video.params.video if video is not None and video.params is not None else None
        if params is None or params.data_opt != DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM:
            # one participant's video is for a video socket opened with data_opt 4 only
            status = StatusCode.INVALID_MEDIA_VIDEO_DATA_OPT
            reason = "video subscription needs a video connection with data_opt 4 (VIDEO_SINGLE_INDIVIDUAL_STREAM)"
        elif msg.subscribe and msg.user_id == self.video_user:
            status, reason = StatusCode.DUPLICATE_VIDEO_SUBSCRIPTION, "already subscribed to this user"
        elif msg.subscribe:
            self.video_user = msg.user_id
        elif msg.user_id == self.video_user:
            self.video_user = None
        self._send(socket, VideoSubscriptionResp(user_id=msg.user_id, status_code=int(status), reason=reason,
                                                 subscribe=msg.subscribe, timestamp=stamp))

    def wants_event(self, event_type: int) -> bool:
        """Whether an event goes out now: signaling is up and the client asked for it."""
        return self.signaling_live and (event_type in self.subscribed or event_type in AUTOMATIC_EVENTS)

    def scripted_event(self, event_type: int) -> None:
        """A scripted event is due; a join the client did not subscribe to yet is owed to
        it (with who is here) once it does."""
        if event_type == EventType.PARTICIPANT_JOIN and event_type not in self.subscribed \
                and self.settings.replay_joins:
            self._join_missed = True

    # ---- keep-alive, losses, timers ---------------------------------------------------

    def take_interruptions(self) -> int:
        """How many `*.rtms_interrupted` webhooks are owed; they count as posted."""
        owed, self.interruptions_to_report = self.interruptions_to_report, 0
        return owed

    def request_stop(self, reason: StopReason) -> None:
        if self.stop_requested is None:
            self.stop_requested = reason
            self._effects.append(Wake())

    def silent(self, now: float) -> bool:
        """A `silent` fault holds everything: media, events, keep-alives."""
        return now < self.silent_until

    def poll(self, now: float, stamp: int) -> StopReason | None:
        """Keep-alives and deadlines; the reason to stop now, if any."""
        if self.stop_requested is not None:
            return self.stop_requested
        if now >= self.end_at:
            return StopReason.MEETING_ENDED
        if self._deadline is not None and now >= self._deadline:
            return self._deadline_reason
        if self._media_deadline is not None and now >= self._media_deadline:
            return self._media_reason
        if self.silent(now):
            return None
        if self.paused_until is not None and now >= self.paused_until:
            self._resume(stamp)
        interval = self.settings.keepalive_interval
        for socket in [self.signaling, *self.media]:
            if socket is None or not socket.live or not socket.keepalive.due(now, interval):
                continue
            if socket.keepalive.late:
                if socket is self.signaling:
                    self._interrupt(StopReason.KEEP_ALIVE_TIMEOUT, now)
                    return None
                self._lose_media(socket, StopReason.KEEP_ALIVE_TIMEOUT, now)
                continue
            self._send(socket, socket.keepalive.request(stamp))
            self.record.keepalives_sent[socket.label] += 1
            self.record.sent.keepalives += 1
        return None

    def disconnected(self, socket: ServerSocket, now: float) -> None:
        """An attached socket's connection is gone."""
        socket.closed()
        self._effects.append(StopFeeds(socket))
        if self.phase is Phase.STOPPED:
            return
        if socket is self.signaling:
            self.signaling = None
            self._linger(now, self.settings.signaling_linger_s)
            if not self.started:
                self._move(Phase.WAITING)  # never streamed: just wait for the client again
            else:
                self._interrupt(StopReason.AWAIT_RECONNECTION_TIMEOUT, now)
        elif socket in self.media:
            self._lose_media(socket, StopReason.AWAIT_RECONNECTION_TIMEOUT, now)

    def _interrupt(self, reason: StopReason, now: float) -> None:
        """Signaling is gone: drop every socket, tell the app by webhook, wait for it."""
        if self.phase is Phase.INTERRUPTED:
            return
        self._move(Phase.INTERRUPTED)
        self.paused_until = None
        self._linger(now, self.settings.signaling_linger_s)
        why = "keep-alive timeout" if reason == StopReason.KEEP_ALIVE_TIMEOUT else ""
        self._drop_sockets(CloseCode.GOING_AWAY, why)
        self._deadline = now + self.settings.signaling_reconnect_window
        self._deadline_reason = reason
        self.record.interruptions += 1
        self.interruptions_to_report += 1
        self._effects.append(Wake())

    def _drop_sockets(self, code: CloseCode, reason: str) -> None:
        self._effects.append(StopFeeds(None))
        for socket in [self.signaling, *self.media]:
            if socket is not None:
                socket.closing()
                self._effects.append(Close(socket, code, reason))
        self.signaling = None
        self.media.clear()
        self.served.clear()
        self._media_lost = MediaType.UNDEFINED
        self._media_deadline = None

    def _lose_media(self, socket: ServerSocket, reason: StopReason, now: float) -> None:
        """A media socket is gone: tell the client on signaling and wait for a new one."""
        self._effects.append(StopFeeds(socket))
        self.media.remove(socket)
        for kind in [k for k, s in self.served.items() if s is socket]:
            del self.served[kind]
        socket.closing()
        self._effects.append(Close(socket, CloseCode.GOING_AWAY))
        self.record.media_interruptions += 1
        self._effects.append(SendEvent(EventType.MEDIA_CONNECTION_INTERRUPTED))
        self._media_lost |= socket.media
        if self._media_deadline is None:
            self._media_deadline = now + self.settings.media_reconnect_window
            self._media_reason = reason
        self._effects.append(Wake())

    # ---- what faults plug in (faults.FaultInjector decides what each one does) ---------

    def queue(self, effect: Effect) -> None:
        """An effect decided elsewhere: a fault's drop, pause or bad frames."""
        self._effects.append(effect)

    def silence(self, until: float) -> None:
        """Send nothing at all, keep-alives included, until then (sockets stay open)."""
        self.silent_until = until

    def refuse_next_signaling(self, status: int) -> None:
        self.reject_next = status

    def _linger(self, now: float, seconds: float) -> None:
        if seconds > 0:
            self.signaling_closing_until = max(self.signaling_closing_until, now + seconds)

    def linger_signaling(self, now: float, seconds: float) -> None:
        """The signaling socket is lost and Zoom holds it as still closing for `seconds`:
        a reconnection meanwhile is answered with DUPLICATE_SIGNAL_REQUEST (8)."""
        self._linger(now, seconds)
        if self.signaling is not None:
            self._effects.append(Drop(self.signaling))

    # ---- stop -------------------------------------------------------------------------

    def stop(self, reason: StopReason) -> bool:
        """The stream ends; whether it was streaming (not interrupted) when it did."""
        was_streaming = self.started and self.phase is not Phase.INTERRUPTED
        self._move(Phase.STOPPED)
        self.record.stop_reason = int(reason)
        self._effects.append(StopFeeds(None))
        return was_streaming

    def farewell(self, reason: StopReason, stamp: int, *, streamed: bool) -> None:
        """The terminate update (and, after streaming, the session's stop) on signaling."""
        sig = self.signaling
        if sig is None or not sig.live:
            return
        self._send(sig, StreamStateUpdate(state=int(StreamState.TERMINATED), reason=int(reason), timestamp=stamp))
        if streamed:
            self._send(sig, SessionStateUpdate(state=int(SessionState.STOPPED), timestamp=stamp,
                                               rtms_session_id=self.rtms_session_id, reason=int(reason),
                                               stop_reason=int(reason)))
