"""Every number and name of Zoom's RTMS protocol, written once.

Values follow Zoom's data-types reference (see docs/PROTOCOL.md for sources). The client,
the simulator and the sinks import these; nothing else spells a message type or enum.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag, StrEnum

PROTOCOL_VERSION = 1


class MsgType(IntEnum):
    UNDEFINED = 0
    SIGNALING_HAND_SHAKE_REQ = 1
    SIGNALING_HAND_SHAKE_RESP = 2
    DATA_HAND_SHAKE_REQ = 3
    DATA_HAND_SHAKE_RESP = 4
    EVENT_SUBSCRIPTION = 5
    EVENT_UPDATE = 6
    CLIENT_READY_ACK = 7
    STREAM_STATE_UPDATE = 8
    SESSION_STATE_UPDATE = 9
    SESSION_STATE_REQ = 10
    SESSION_STATE_RESP = 11
    KEEP_ALIVE_REQ = 12
    KEEP_ALIVE_RESP = 13
    MEDIA_DATA_AUDIO = 14
    MEDIA_DATA_VIDEO = 15
    MEDIA_DATA_SHARE = 16
    MEDIA_DATA_TRANSCRIPT = 17
    MEDIA_DATA_CHAT = 18
    STREAM_STATE_REQ = 19
    STREAM_STATE_RESP = 20
    STREAM_CLOSE_REQ = 21
    STREAM_CLOSE_RESP = 22
    META_DATA_AUDIO = 23
    META_DATA_VIDEO = 24
    META_DATA_SHARE = 25
    META_DATA_TRANSCRIPT = 26
    META_DATA_CHAT = 27
    VIDEO_SUBSCRIPTION_REQ = 28
    VIDEO_SUBSCRIPTION_RESP = 29


class MediaType(IntFlag):
    """`media_type` bitmask of a media handshake."""

    UNDEFINED = 0
    AUDIO = 1
    VIDEO = 2
    DESKSHARE = 4
    TRANSCRIPT = 8
    CHAT = 16
    ALL = 32


SINGLE_MEDIA_TYPES = (
    MediaType.AUDIO,
    MediaType.VIDEO,
    MediaType.DESKSHARE,
    MediaType.TRANSCRIPT,
    MediaType.CHAT,
)

# Keys of `media_server.server_urls` and of `media_params`, per media type. Zoom's docs
# name the share URL `deskshare` (the SDK looks that key up); `all` serves a unified socket.
MEDIA_KEY: dict[MediaType, str] = {
    MediaType.AUDIO: "audio",
    MediaType.VIDEO: "video",
    MediaType.DESKSHARE: "deskshare",
    MediaType.TRANSCRIPT: "transcript",
    MediaType.CHAT: "chat",
    MediaType.ALL: "all",
}
MEDIA_TYPE_BY_KEY: dict[str, MediaType] = {v: k for k, v in MEDIA_KEY.items()}
MEDIA_TYPE_BY_KEY["sharescreen"] = MediaType.DESKSHARE  # alias used by Zoom's JS library


def parse_media(value: str) -> MediaType:
    """`"audio,transcript"` -> MediaType bits; raises ValueError naming an unknown kind."""
    bits = MediaType.UNDEFINED
    for name in (part.strip().lower() for part in value.split(",")):
        if not name:
            continue
        if name not in MEDIA_TYPE_BY_KEY:
            known = ", ".join(sorted(MEDIA_TYPE_BY_KEY))
            raise ValueError(f"unknown media type {name!r} (known: {known})")
        bits |= MEDIA_TYPE_BY_KEY[name]
    if bits == MediaType.UNDEFINED:
        raise ValueError("no media type given")
    return bits

# Media data message carried for each single media type.
MEDIA_MSG_TYPE: dict[MediaType, MsgType] = {
    MediaType.AUDIO: MsgType.MEDIA_DATA_AUDIO,
    MediaType.VIDEO: MsgType.MEDIA_DATA_VIDEO,
    MediaType.DESKSHARE: MsgType.MEDIA_DATA_SHARE,
    MediaType.TRANSCRIPT: MsgType.MEDIA_DATA_TRANSCRIPT,
    MediaType.CHAT: MsgType.MEDIA_DATA_CHAT,
}


class ContentType(IntEnum):
    UNDEFINED = 0
    RTP = 1
    RAW_AUDIO = 2
    RAW_VIDEO = 3
    FILE_STREAM = 4
    TEXT = 5


class Codec(IntEnum):
    """MEDIA_PAYLOAD_TYPE: audio and video codecs share one enum."""

    UNDEFINED = 0
    L16 = 1
    G711 = 2
    G722 = 3
    OPUS = 4
    JPG = 5
    PNG = 6
    H264 = 7


AUDIO_CODECS = (Codec.L16, Codec.G711, Codec.G722, Codec.OPUS)
VIDEO_CODECS = (Codec.JPG, Codec.PNG, Codec.H264)


class SampleRate(IntEnum):
    SR_8K = 0
    SR_16K = 1
    SR_32K = 2
    SR_48K = 3

    @property
    def hz(self) -> int:
        return _SAMPLE_RATE_HZ[self]


_SAMPLE_RATE_HZ = {
    SampleRate.SR_8K: 8000,
    SampleRate.SR_16K: 16000,
    SampleRate.SR_32K: 32000,
    SampleRate.SR_48K: 48000,
}


class AudioChannel(IntEnum):
    MONO = 1
    STEREO = 2


class DataOption(IntEnum):
    UNDEFINED = 0
    AUDIO_MIXED_STREAM = 1
    AUDIO_MULTI_STREAMS = 2
    VIDEO_SINGLE_ACTIVE_STREAM = 3
    VIDEO_SINGLE_INDIVIDUAL_STREAM = 4
    VIDEO_MIXED_GALLERY_VIEW = 5  # older name; gone from current docs


class Resolution(IntEnum):
    SD = 1
    HD = 2
    FHD = 3
    QHD = 4

    @property
    def size(self) -> tuple[int, int]:
        return _RESOLUTION_SIZE[self]


_RESOLUTION_SIZE = {
    Resolution.SD: (640, 360),
    Resolution.HD: (1280, 720),
    Resolution.FHD: (1920, 1080),
    Resolution.QHD: (2560, 1440),
}


class TranscriptLanguage(IntEnum):
    NONE = -1  # automatic language identification
    ARABIC = 0
    BENGALI = 1
    CANTONESE = 2
    CATALAN = 3
    CHINESE_SIMPLIFIED = 4
    CHINESE_TRADITIONAL = 5
    CZECH = 6
    DANISH = 7
    DUTCH = 8
    ENGLISH = 9
    ESTONIAN = 10
    FINNISH = 11
    FRENCH_CANADA = 12
    FRENCH_FRANCE = 13
    GERMAN = 14
    HEBREW = 15
    HINDI = 16
    HUNGARIAN = 17
    INDONESIAN = 18
    ITALIAN = 19
    JAPANESE = 20
    KOREAN = 21
    MALAY = 22
    PERSIAN = 23
    POLISH = 24
    PORTUGUESE = 25
    ROMANIAN = 26
    RUSSIAN = 27
    SPANISH = 28
    SWEDISH = 29
    TAGALOG = 30
    TAMIL = 31
    TELUGU = 32
    THAI = 33
    TURKISH = 34
    UKRAINIAN = 35
    VIETNAMESE = 36


def parse_language(value: str | int) -> TranscriptLanguage:
    """A transcript language by its number (-1..36) or its name in any case, with or
    without Zoom's `LANGUAGE_ID_` prefix (`english`, `French-France`, `9`; `auto` is
    NONE, -1); raises ValueError for anything outside Zoom's table, as Zoom refuses it
    (INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        try:
            return TranscriptLanguage(int(text))
        except ValueError:
            pass
    else:
        name = text.upper().replace("-", "_").replace(" ", "_").removeprefix("LANGUAGE_ID_")
        if name == "AUTO":
            return TranscriptLanguage.NONE
        if name in TranscriptLanguage.__members__:
            return TranscriptLanguage[name]
    low, high = min(TranscriptLanguage), max(TranscriptLanguage)
    raise ValueError(f"unknown transcript language {text[:40]!r}: a name of Zoom's table "
                     f"(e.g. english, german, japanese, auto) or a number {int(low)}..{int(high)}")


class SessionState(IntEnum):
    INACTIVE = 0
    INITIALIZE = 1
    STARTED = 2
    PAUSED = 3
    RESUMED = 4
    STOPPED = 5


class StreamState(IntEnum):
    INACTIVE = 0
    ACTIVE = 1
    INTERRUPTED = 2
    TERMINATING = 3
    TERMINATED = 4
    PAUSED = 5
    RESUMED = 6


class EventType(IntEnum):
    """RTMS_EVENT_TYPE for meetings, webinars and Video SDK sessions."""

    UNDEFINED = 0
    FIRST_PACKET_TIMESTAMP = 1
    ACTIVE_SPEAKER_CHANGE = 2
    PARTICIPANT_JOIN = 3
    PARTICIPANT_LEAVE = 4
    SHARING_START = 5
    SHARING_STOP = 6
    MEDIA_CONNECTION_INTERRUPTED = 7
    PARTICIPANT_VIDEO_ON = 8
    PARTICIPANT_VIDEO_OFF = 9
    CHAT_GROUP_CREATE = 10
    CHAT_GROUP_DELETE = 11
    CHAT_GROUP_MEMBERS_ADD = 12
    CHAT_GROUP_MEMBERS_DELETE = 13
    CHAT_GROUP_MEMBER_STATUS_UPDATE = 14


# Sent by Zoom without a subscription, to every product; subscribing to them is an error.
AUTOMATIC_EVENTS = frozenset({EventType.FIRST_PACKET_TIMESTAMP, EventType.MEDIA_CONNECTION_INTERRUPTED})


class ZccEventType(IntEnum):
    """RTMS_ZCC_VOICE_EVENT_TYPE: Contact Center streams only (overlaps EventType 8-14)."""

    CONSUMER_ANSWERED = 8
    CONSUMER_END = 9
    USER_ANSWERED = 10
    USER_END = 11
    USER_HOLD = 12
    USER_UNHOLD = 13
    MONITOR_STARTED = 14
    MONITOR_TRANSITIONED = 15
    MONITOR_ENDED = 16
    TAKEOVER_STARTED = 17
    TRANSFER_INITIATED = 18
    TRANSFER_CANCELED = 19
    TRANSFER_ACCEPTED = 20
    TRANSFER_COMPLETED = 21
    TRANSFER_REJECTED = 22
    TRANSFER_TIMEOUT = 23
    CONFERENCE_CANCELED = 24
    CONFERENCE_PARTICIPANT_CANCELED = 25
    CONFERENCE_PARTICIPANT_INVITED = 26
    CONFERENCE_PARTICIPANT_REJECTED = 27
    CONFERENCE_PARTICIPANT_TIMEOUT = 28
    CONFERENCE_PARTICIPANT_LEFT = 29


class StopReason(IntEnum):
    UNDEFINED = 0
    HOST_TRIGGERED = 1
    USER_TRIGGERED = 2
    USER_LEFT = 3
    USER_EJECTED = 4
    HOST_DISABLED_APP = 5
    MEETING_ENDED = 6
    STREAM_CANCELED = 7
    STREAM_REVOKED = 8
    ALL_APPS_DISABLED = 9
    INTERNAL_EXCEPTION = 10
    CONNECTION_TIMEOUT = 11
    INSTANCE_CONNECTION_INTERRUPTED = 12
    SIGNAL_CONNECTION_INTERRUPTED = 13
    DATA_CONNECTION_INTERRUPTED = 14
    SIGNAL_CONNECTION_CLOSED_ABNORMALLY = 15
    DATA_CONNECTION_CLOSED_ABNORMALLY = 16
    EXIT_SIGNAL = 17
    AUTHENTICATION_FAILURE = 18
    AWAIT_RECONNECTION_TIMEOUT = 19
    RECEIVER_REQUEST_CLOSE = 20
    CUSTOMER_DISCONNECTED = 21
    AGENT_DISCONNECTED = 22
    ADMIN_DISABLED_APP = 23
    KEEP_ALIVE_TIMEOUT = 24
    MANUAL_API_TRIGGERED = 25
    STREAMING_NOT_SUPPORTED = 26


# Stop reasons after which Zoom's failover guide says to restart the whole connection.
FAILURE_STOP_REASONS = frozenset(StopReason(n) for n in (*range(10, 20), 24))


class StatusCode(IntEnum):
    """RTMS_STATUS_CODE carried in handshake and request responses."""

    OK = 0
    INVALID_MESSAGE_TYPE = 1
    INVALID_RTMS_STREAM_ID = 2
    INVALID_SIGNATURE = 3
    INVALID_PAYLOAD = 4
    INVALID_EVENTS = 5
    INVALID_EVENT_TYPE = 6
    INVALID_MEDIA_TYPE = 7
    DUPLICATE_SIGNAL_REQUEST = 8
    MEDIA_TYPE_AUDIO_NOT_SUPPORT = 9
    MEDIA_TYPE_VIDEO_NOT_SUPPORT = 10
    MEDIA_TYPE_DESKSHARE_NOT_SUPPORT = 11
    MEDIA_TYPE_TRANSCRIPT_NOT_SUPPORT = 12
    MEDIA_TYPE_CHAT_NOT_SUPPORT = 13
    MEDIA_TYPE_INVALID_VALUE = 14
    MEDIA_DATA_ALL_CONNECTION_EXIST = 15
    DUPLICATE_MEDIA_DATA_CONNECTION = 16
    INVALID_MEDIA_PARAMS = 17
    INVALID_MEDIA_AUDIO_PARAMS = 18
    INVALID_MEDIA_AUDIO_CONTENT_TYPE = 19
    INVALID_MEDIA_AUDIO_SAMPLE_RATE = 20
    INVALID_MEDIA_AUDIO_CHANNEL = 21
    INVALID_MEDIA_AUDIO_CODEC = 22
    INVALID_MEDIA_AUDIO_DATA_OPT = 23
    INVALID_MEDIA_AUDIO_SEND_RATE = 24
    INVALID_MEDIA_VIDEO_PARAMS = 25
    INVALID_MEDIA_VIDEO_CONTENT_TYPE = 26
    INVALID_MEDIA_VIDEO_CODEC = 27
    INVALID_MEDIA_VIDEO_RESOLUTION = 28
    INVALID_MEDIA_VIDEO_DATA_OPT = 29
    INVALID_MEDIA_VIDEO_FPS = 30
    INVALID_MEDIA_DESKSHARE_PARAMS = 31
    INVALID_MEDIA_DESKSHARE_CONTENT_TYPE = 32
    INVALID_MEDIA_DESKSHARE_CODEC = 33
    INVALID_MEDIA_DESKSHARE_RESOLUTION = 34
    INVALID_MEDIA_DESKSHARE_FPS = 35
    INVALID_MEDIA_TRANSCRIPT_PARAMS = 36
    INVALID_MEDIA_TRANSCRIPT_CONTENT_TYPE = 37
    INVALID_MEDIA_CHAT_PARAMS = 38
    INVALID_MEDIA_CHAT_CONTENT_TYPE = 39
    INVALID_RTMS_SESSION_ID = 40
    INVALID_CLIENT_READY_ACK = 41
    INVALID_EVENT_SUBSCRIBE = 42
    INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE = 43
    DUPLICATE_VIDEO_SUBSCRIPTION = 44
    INTERNAL_EXCEPTION = 45
    INVALID_MEDIA_TRANSCRIPT_TARGET_LANGUAGE = 46
    CHAT_SESSION_KEY_NOT_AVAILABLE = 47


def status_name(code: int) -> str:
    """Zoom's name for a status code; unknown codes are shown verbatim."""
    try:
        return StatusCode(code).name
    except ValueError:
        return f"UNKNOWN_STATUS_{code}"


class DataAttribute(IntEnum):
    NONE = 0
    NEW = 1
    UPDATE = 2
    DELETE = 3


class ChatSessionType(IntEnum):
    EVERYONE = 1
    INDIVIDUAL = 2
    CHAT_GROUP = 3
    HOSTS_AND_PANELISTS = 4
    INDIVIDUAL_CC_HOSTS_AND_PANELISTS = 5


class ChatOperation(IntEnum):
    NEW = 1
    DELETE = 2
    UPDATE = 3
    ADD_EMOJI_REACTION = 4
    REMOVE_EMOJI_REACTION = 5


# ---- webhooks ---------------------------------------------------------------------------


class Product(StrEnum):
    """The Zoom products that start RTMS streams, with their webhook prefix and id key."""

    MEETING = "meeting"
    WEBINAR = "webinar"
    SESSION = "session"
    CONTACT_CENTER = "contact_center"

    @property
    def id_key(self) -> str:
        return _PRODUCT_ID_KEY[self]

    @property
    def started_event(self) -> str:
        return f"{_PRODUCT_EVENT_PREFIX[self]}_started"

    @property
    def stopped_event(self) -> str:
        return f"{_PRODUCT_EVENT_PREFIX[self]}_stopped"

    @property
    def interrupted_event(self) -> str:
        return f"{_PRODUCT_EVENT_PREFIX[self]}_interrupted"


_PRODUCT_ID_KEY = {
    Product.MEETING: "meeting_uuid",
    Product.WEBINAR: "webinar_uuid",
    Product.SESSION: "session_id",
    Product.CONTACT_CENTER: "engagement_id",
}
_PRODUCT_EVENT_PREFIX = {
    Product.MEETING: "meeting.rtms",
    Product.WEBINAR: "webinar.rtms",
    Product.SESSION: "session.rtms",
    Product.CONTACT_CENTER: "contact_center.voice_rtms",
}

# ---- which events each product offers ---------------------------------------------------
# The one place that says it. Meetings, webinars and Video SDK sessions share
# RTMS_EVENT_TYPE; a Contact Center stream numbers its own events (8-29) in a table of its
# own, so 8-14 mean different things by product. 1 and 7 come to every product unasked.

_SUBSCRIBABLE_EVENTS = tuple(e for e in EventType if e is not EventType.UNDEFINED and e not in AUTOMATIC_EVENTS)


def event_table(product: Product | str) -> tuple[IntEnum, ...]:
    """The events a product's streams can be sent, beyond the automatic ones."""
    if product == Product.CONTACT_CENTER:
        return tuple(ZccEventType)
    return _SUBSCRIBABLE_EVENTS


def offered_events(product: Product | str) -> tuple[int, ...]:
    """Every event a stream of `product` may subscribe to (EVENT_SUBSCRIPTION), in order."""
    return tuple(int(e) for e in event_table(product))


def event_name(product: Product | str, event_type: int) -> str:
    """What an event is called on a stream of `product`: `participant_join`, or
    `consumer_answered` for a Contact Center's 8; `event_<n>` if no table has it."""
    names = _CONTACT_CENTER_EVENT_NAMES if product == Product.CONTACT_CENTER else _EVENT_NAMES
    return names.get(event_type) or f"event_{event_type}"


_EVENT_NAMES = {int(e): e.name.lower() for e in EventType}
# A Contact Center's own table first, then the events every product shares (1, 7).
_CONTACT_CENTER_EVENT_NAMES = {**_EVENT_NAMES, **{int(e): e.name.lower() for e in ZccEventType}}


def parse_events(value: str) -> dict[Product, tuple[int, ...]]:
    """`RTMS_EVENTS` ("sharing_start,participant_video_on,8") -> each product's events to
    subscribe to. A name is that event in the table naming it; a number is that event in
    every product offering it. Raises ValueError for an unknown name or number, for the
    automatic 1 and 7, and for an empty list."""
    chosen: dict[Product, set[int]] = {product: set() for product in Product}
    automatic = {e.name.lower(): int(e) for e in AUTOMATIC_EVENTS}
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise ValueError("no event given")
    for part in parts:
        number = int(part) if part.isascii() and part.isdigit() else automatic.get(part.lower())
        if number in AUTOMATIC_EVENTS:
            raise ValueError(f"event {part!r} is sent automatically and cannot be subscribed to")
        found = False
        for product in Product:
            for event in event_table(product):
                if int(event) == number or event.name.lower() == part.lower():
                    chosen[product].add(int(event))
                    found = True
        if not found:
            names = sorted({e.name.lower() for p in Product for e in event_table(p)})
            raise ValueError(f"unknown event {part!r} (known: {', '.join(names)}, or their numbers)")
    return {product: tuple(sorted(events)) for product, events in chosen.items()}


# Keys a handshake may carry the meeting/webinar/session/engagement id under; the server
# accepts any, clients send `meeting_uuid` (plus the product's own key).
ID_KEYS = ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id", "call_id")

URL_VALIDATION_EVENT = "endpoint.url_validation"
HEADER_SIGNATURE = "x-zm-signature"
HEADER_TIMESTAMP = "x-zm-request-timestamp"
HEADER_TRACKING_ID = "x-zm-trackingid"
WEBHOOK_SIGNATURE_VERSION = "v0"

# ---- timing (seconds) -------------------------------------------------------------------

KEEP_ALIVE_INTERVAL_S = 10.0
KEEP_ALIVE_MAX_MISSED = 3
SIGNALING_RECONNECT_WINDOW_S = 60.0
MEDIA_RECONNECT_WINDOW_S = 65.0  # current docs; older docs say 30 s
# Zoom's failover guide: the first retry after 3 s, doubling up to 30 s.
RECONNECT_INITIAL_S = 3.0
RECONNECT_MAX_S = 30.0
CLIENT_SILENCE_LIMIT_S = 65.0
WEBHOOK_REPLAY_WINDOW_S = 300.0
STARTUP_AUDIO_BUFFER_S = 60.0
