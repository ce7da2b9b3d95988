"""Typed models of every RTMS message, with fast decode and encode (msgspec).

Each model is tagged with its `msg_type`, so one decoder call picks the right model.
Optional fields default to None and are left out when encoding, so what we send looks like
what Zoom documents. Media payloads keep `data` as the base64 text Zoom sent: only sinks
that need bytes decode it (`payload_bytes`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec

from .constants import MsgType
from .errors import RemoteProtocolError

# Every integer on the wire fits in 64 bits (timestamps in ms, ids, enums): a larger one
# is a malformed frame, not a value to carry into the store.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
UserId = Int | str  # Zoom documents uint32; one doc example shows a string


class Message(msgspec.Struct, tag_field="msg_type", omit_defaults=True, gc=False):
    """Base of every tagged RTMS message."""

    @property
    def msg_type(self) -> int:
        tag = self.__struct_config__.tag
        if not isinstance(tag, int):  # only the base class, which nothing sends, has none
            raise TypeError(f"{type(self).__name__} has no msg_type")
        return tag


# ---- shared pieces -----------------------------------------------------------------------


class AudioParams(msgspec.Struct, omit_defaults=True, gc=False):
    content_type: Int | None = None
    sample_rate: Int | None = None
    channel: Int | None = None
    codec: Int | None = None
    data_opt: Int | None = None
    send_rate: Int | None = None


class VideoParams(msgspec.Struct, omit_defaults=True, gc=False):
    """Parameters of a video or deskshare socket."""

    content_type: Int | None = None
    codec: Int | None = None
    resolution: Int | None = None
    fps: Int | None = None
    data_opt: Int | None = None


class TranscriptParams(msgspec.Struct, omit_defaults=True, gc=False):
    content_type: Int | None = None
    src_language: Int | None = None
    enable_lid: bool | None = None


class ChatParams(msgspec.Struct, omit_defaults=True, gc=False):
    content_type: Int | None = None


class MediaParams(msgspec.Struct, omit_defaults=True, gc=False):
    audio: AudioParams | None = None
    video: VideoParams | None = None
    deskshare: VideoParams | None = None
    transcript: TranscriptParams | None = None
    chat: ChatParams | None = None


class MediaServer(msgspec.Struct, omit_defaults=True, gc=False):
    server_urls: dict[str, str]
    datacenter_region: str | None = None


class Participant(msgspec.Struct, omit_defaults=True, gc=False):
    user_id: UserId
    user_name: str | None = None


class EventSubscriptionItem(msgspec.Struct, gc=False):
    event_type: Int
    subscribe: bool


class Event(msgspec.Struct, omit_defaults=True):
    """The `event` object of EVENT_UPDATE; which fields are set depends on `event_type`."""

    event_type: Int
    timestamp: Int | None = None
    user_id: UserId | None = None
    user_name: str | None = None
    participants: list[Participant] | None = None
    # Contact Center events carry `event_ts` and `participant_info` instead.
    event_ts: Int | None = None
    participant_info: dict[str, Any] | None = None
    # Chat-group events (10-14); their fields are not documented.
    chat_group: dict[str, Any] | None = None


class KeepsReceived(Message, dict=True, gc=True):
    """A low-rate message (transcript, chat, event) that can keep, beside its typed fields,
    the frame as it was received: msgspec drops the fields a model does not declare, and
    a field Zoom adds tomorrow must reach the store, not vanish. The frame is kept in the
    instance's `__dict__` (not a field: nothing on the wire can set or shadow it), only
    when a session calls `keep_received`; messages built here have none."""

    payload_key: ClassVar[str] = "content"  # the object of the frame a record is made from

    def keep_received(self, frame: bytes | memoryview | str) -> None:
        """Decode `frame` (the one this message was decoded from) once more, as a plain
        JSON object."""
        try:
            self.__dict__["_received"] = _dict_decoder.decode(frame)
        except (msgspec.MsgspecError, UnicodeDecodeError):  # it decoded once: cannot happen
            pass

    @property
    def received(self) -> dict[str, Any] | None:
        """The payload object (`content`, `event`) as Zoom sent it, every field declared or
        not; what the frame carried beside it (`msg_type` aside) is under `_frame`. None
        when this message was not received (or not kept)."""
        frame = self.__dict__.get("_received")
        if frame is None:
            return None
        payload = frame.get(self.payload_key)
        out = dict(payload) if isinstance(payload, dict) else {}
        beside = {k: v for k, v in frame.items() if k not in ("msg_type", self.payload_key)}
        if beside:
            out["_frame"] = beside
        return out

    @property
    def undeclared(self) -> dict[str, Any]:
        """Only the fields of `received` its model does not declare (empty if none)."""
        received = self.received
        if not received:
            return {}
        payload = getattr(self, self.payload_key)
        declared = type(payload).__struct_encode_fields__
        return {k: v for k, v in received.items() if k not in declared}


# ---- client -> server --------------------------------------------------------------------


class _IdentifiedRequest(Message):
    """Fields shared by the signaling and media handshakes."""

    rtms_stream_id: str
    signature: str
    protocol_version: Int | None = None
    sequence: Int | None = None
    meeting_uuid: str | None = None
    webinar_uuid: str | None = None
    session_id: str | None = None
    engagement_id: str | None = None
    call_id: str | None = None

    @property
    def owner_id(self) -> str | None:
        """The meeting/webinar/session/engagement id, under whichever key was sent."""
        return (
            self.meeting_uuid
            or self.webinar_uuid
            or self.session_id
            or self.engagement_id
            or self.call_id
        )


class SignalingHandshakeReq(_IdentifiedRequest, tag=int(MsgType.SIGNALING_HAND_SHAKE_REQ)):
    buffer_data: bool | None = None
    rtms_client_agent: str | None = None


class DataHandshakeReq(_IdentifiedRequest, tag=int(MsgType.DATA_HAND_SHAKE_REQ)):
    media_type: Int = 0
    payload_encryption: bool | None = None
    media_params: MediaParams | None = None


class EventSubscription(Message, tag=int(MsgType.EVENT_SUBSCRIPTION)):
    # Some clients send bare integers here; they are kept so the server can judge them.
    events: list[EventSubscriptionItem | Int]


class ClientReadyAck(Message, tag=int(MsgType.CLIENT_READY_ACK)):
    rtms_stream_id: str | None = None


class SessionStateReq(Message, tag=int(MsgType.SESSION_STATE_REQ)):
    rtms_session_id: str


class KeepAliveResp(Message, tag=int(MsgType.KEEP_ALIVE_RESP)):
    timestamp: Int | None = None
    sequence: Int | None = None


class StreamStateReq(Message, tag=int(MsgType.STREAM_STATE_REQ)):
    rtms_stream_id: str


class StreamCloseReq(Message, tag=int(MsgType.STREAM_CLOSE_REQ)):
    rtms_stream_id: str


class VideoSubscriptionReq(Message, tag=int(MsgType.VIDEO_SUBSCRIPTION_REQ)):
    user_id: UserId
    subscribe: bool
    timestamp: Int | None = None


# ---- server -> client --------------------------------------------------------------------


class SignalingHandshakeResp(Message, tag=int(MsgType.SIGNALING_HAND_SHAKE_RESP)):
    status_code: Int
    reason: str = ""
    protocol_version: Int | None = None
    sequence: Int | None = None
    media_server: MediaServer | None = None


class DataHandshakeResp(Message, tag=int(MsgType.DATA_HAND_SHAKE_RESP)):
    status_code: Int
    reason: str = ""
    protocol_version: Int | None = None
    sequence: Int | None = None
    payload_encrypted: bool | None = None
    media_params: MediaParams | None = None


class EventUpdate(KeepsReceived, tag=int(MsgType.EVENT_UPDATE)):
    payload_key = "event"
    event: Event


class StreamStateUpdate(Message, tag=int(MsgType.STREAM_STATE_UPDATE)):
    state: Int
    reason: Int | None = None
    timestamp: Int | None = None
    rtms_stream_id: str | None = None
    stop_reason: Int | None = None  # older servers

    @property
    def any_reason(self) -> int | None:
        return self.reason if self.reason is not None else self.stop_reason


class SessionStateUpdate(Message, tag=int(MsgType.SESSION_STATE_UPDATE)):
    state: Int
    timestamp: Int | None = None
    rtms_session_id: str | None = None
    # Zoom's docs disagree on the key; servers may send either or both.
    reason: Int | None = None
    stop_reason: Int | None = None

    @property
    def any_reason(self) -> int | None:
        return self.reason if self.reason is not None else self.stop_reason


class SessionStateResp(Message, tag=int(MsgType.SESSION_STATE_RESP)):
    state: Int
    rtms_session_id: str | None = None
    timestamp: Int | None = None


class KeepAliveReq(Message, tag=int(MsgType.KEEP_ALIVE_REQ)):
    timestamp: Int
    sequence: Int | None = None


class MediaContent(msgspec.Struct, omit_defaults=True, gc=False):
    """Audio, video and share payloads. `data` is base64 text on the wire: msgspec decodes
    it straight into bytes while parsing the frame (one pass, no intermediate string), and
    a frame whose data is not base64 is refused as malformed, like any other bad field."""

    data: bytes
    timestamp: Int
    user_id: UserId | None = None
    user_name: str | None = None
    length: Int | None = None
    channel_id: str | None = None  # Contact Center streams name a channel, not a user


class TranscriptContent(msgspec.Struct, omit_defaults=True, gc=False):
    data: str
    timestamp: Int
    user_id: UserId | None = None
    user_name: str | None = None
    start_time: Int | None = None
    end_time: Int | None = None
    language: Int | None = None
    attribute: Int | None = None
    channel_id: str | None = None


class ChatContent(msgspec.Struct, omit_defaults=True):
    """A chat message. Older servers send plain text in `data`; current ones may put a JSON
    object (or its encoding) there, or the same fields directly in `content`."""

    data: str | dict[str, Any] = ""
    timestamp: Int | None = None
    user_id: UserId | None = None
    user_name: str | None = None
    message_id: str | None = None
    parent_message_id: str | None = None
    operation_type: Int | None = None
    chat_session: dict[str, Any] | None = None
    sender: dict[str, Any] | None = None
    receiver: dict[str, Any] | None = None
    files: list[Any] | None = None
    delete_file_id_list: list[Any] | None = None


class AudioData(Message, tag=int(MsgType.MEDIA_DATA_AUDIO)):
    content: MediaContent


class VideoData(Message, tag=int(MsgType.MEDIA_DATA_VIDEO)):
    content: MediaContent


class ShareData(Message, tag=int(MsgType.MEDIA_DATA_SHARE)):
    content: MediaContent


class TranscriptData(KeepsReceived, tag=int(MsgType.MEDIA_DATA_TRANSCRIPT)):
    content: TranscriptContent


class ChatData(KeepsReceived, tag=int(MsgType.MEDIA_DATA_CHAT)):
    content: ChatContent


class StreamStateResp(Message, tag=int(MsgType.STREAM_STATE_RESP)):
    state: Int
    rtms_stream_id: str | None = None
    timestamp: Int | None = None


class StreamCloseResp(Message, tag=int(MsgType.STREAM_CLOSE_RESP)):
    status_code: Int
    rtms_stream_id: str | None = None
    reason: str = ""
    timestamp: Int | None = None


class AudioMetadata(Message, tag=int(MsgType.META_DATA_AUDIO)):
    content: dict[str, Any]


class VideoSubscriptionResp(Message, tag=int(MsgType.VIDEO_SUBSCRIPTION_RESP)):
    user_id: UserId
    status_code: Int
    reason: str = ""
    timestamp: Int | None = None
    subscribe: bool | None = None
    sequence: Int | None = None


class UnknownMessage(msgspec.Struct):
    """A well-formed JSON object whose `msg_type` this side does not expect."""

    msg_type: Int
    body: dict[str, Any]


ClientMessage = (
    SignalingHandshakeReq
    | DataHandshakeReq
    | EventSubscription
    | ClientReadyAck
    | SessionStateReq
    | KeepAliveResp
    | StreamStateReq
    | StreamCloseReq
    | VideoSubscriptionReq
)

ServerMessage = (
    SignalingHandshakeResp
    | DataHandshakeResp
    | EventUpdate
    | StreamStateUpdate
    | SessionStateUpdate
    | SessionStateResp
    | KeepAliveReq
    | AudioData
    | VideoData
    | ShareData
    | TranscriptData
    | ChatData
    | StreamStateResp
    | StreamCloseResp
    | AudioMetadata
    | VideoSubscriptionResp
)

MediaMessage = AudioData | VideoData | ShareData | TranscriptData | ChatData

# What a client hands on from a socket: a server message, or one whose type it does not know.
ReceivedMessage = ServerMessage | UnknownMessage

_Decoded = TypeVar("_Decoded")
_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()
_FIELD_PATH = re.compile(r"at `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _translate(exc: msgspec.MsgspecError) -> RemoteProtocolError:
    text = str(exc)
    path = _FIELD_PATH.search(text)
    missing = _MISSING_FIELD.search(text)
    if missing:
        field: str | None = f"{path.group(1) if path else '$'}.{missing.group(1)}"
    else:
        field = path.group(1) if path else None
    return RemoteProtocolError(text, field=field)


def _decode(
    decoder: msgspec.json.Decoder[_Decoded], data: bytes | memoryview | str
) -> _Decoded | UnknownMessage:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        # An integer msg_type this side does not know is a value, not an error.
        text = str(exc)
        if text.startswith("Invalid value") and text.endswith("at `$.msg_type`"):
            try:
                body = _dict_decoder.decode(data)
            except msgspec.MsgspecError as inner:
                raise _translate(inner) from None
            except UnicodeDecodeError as inner:
                raise _invalid_utf8(inner) from None
            return UnknownMessage(msg_type=body["msg_type"], body=body)
        raise _translate(exc) from None
    except msgspec.MsgspecError as exc:
        raise _translate(exc) from None
    except UnicodeDecodeError as exc:  # msgspec lets invalid UTF-8 inside strings through
        raise _invalid_utf8(exc) from None


def _invalid_utf8(exc: UnicodeDecodeError) -> RemoteProtocolError:
    return RemoteProtocolError(f"invalid UTF-8 in a string: {exc.reason}")


def decode_server_message(data: bytes | memoryview | str) -> ServerMessage | UnknownMessage:
    """Decode a frame a client receives (text or binary JSON)."""
    try:  # every media frame: straight into msgspec
        return _server_decoder.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return _decode(_server_decoder, data)  # once more, to tell why (or an unknown msg_type)


def decode_client_message(data: bytes | memoryview | str) -> ClientMessage | UnknownMessage:
    """Decode a frame a server receives (text or binary JSON)."""
    return _decode(_client_decoder, data)


def encode(msg: Message) -> bytes:
    """Compact JSON of a message, with its `msg_type`."""
    return _encoder.encode(msg)

