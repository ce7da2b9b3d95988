"""Settings: the only module that reads the environment (env vars, `.env`, defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .protocol.constants import (
    CLIENT_SILENCE_LIMIT_S,
    MEDIA_RECONNECT_WINDOW_S,
    RECONNECT_INITIAL_S,
    RECONNECT_MAX_S,
    SIGNALING_RECONNECT_WINDOW_S,
    Codec,
    ContentType,
    DataOption,
    MediaType,
    Product,
    Resolution,
    SampleRate,
    TranscriptLanguage,
    parse_events,
    parse_language,
    parse_media,
)
from .protocol.errors import StartupError
from .protocol.messages import AudioParams, MediaParams, TranscriptParams, VideoParams

DEFAULT_MEDIA = "transcript,chat"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The database URLs the store can open (it picks the async driver itself).
DATABASE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg")
MIN_API_KEY_CHARS = 16
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")  # what picows can tunnel through


AUDIO_CODECS = {"l16": Codec.L16, "g711": Codec.G711, "g722": Codec.G722, "opus": Codec.OPUS}
VIDEO_CODECS = {"h264": Codec.H264, "jpg": Codec.JPG, "png": Codec.PNG}
SAMPLE_RATES = {rate.hz: rate for rate in SampleRate}
RESOLUTIONS = {res.name.lower(): res for res in Resolution}
AUDIO_STREAMS = {"mixed": DataOption.AUDIO_MIXED_STREAM, "multi": DataOption.AUDIO_MULTI_STREAMS}
VIDEO_STREAMS = {"active": DataOption.VIDEO_SINGLE_ACTIVE_STREAM,
                 "individual": DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM}
ON_REVOKED = {"delete": "delete", "keep": "keep"}


_CHOICES: dict[str, tuple[Mapping[str, object], str]] = {
    "audio_codec": (AUDIO_CODECS, "audio codec"),
    "video_codec": (VIDEO_CODECS, "video codec"),
    "share_codec": (VIDEO_CODECS, "video codec"),
    "video_resolution": (RESOLUTIONS, "resolution"),
    "share_resolution": (RESOLUTIONS, "resolution"),
    "audio_streams": (AUDIO_STREAMS, "audio stream mode"),
    "video_stream": (VIDEO_STREAMS, "video stream mode"),
    "on_revoked": (ON_REVOKED, "RTMS_ON_REVOKED choice"),
}


def _choice(value: str, choices: Mapping[str, object], what: str) -> str:
    value = value.strip().lower()
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r} (known: {', '.join(choices)})")
    return value


def _split_keys(value: SecretStr) -> list[str]:
    return [key.strip() for key in value.get_secret_value().split(",") if key.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    zoom_client_id: str = Field(default="", validation_alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_CLIENT_SECRET")
    zoom_secret_token: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_SECRET_TOKEN")
    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(default=3000, ge=0, le=65535, validation_alias="PORT")
    webhook_path: str = Field(default="/webhook", validation_alias="WEBHOOK_PATH")
    data_dir: Path = Field(default=Path("./rtms-data"), validation_alias="RTMS_DATA_DIR")
    database_url: str = Field(default="", validation_alias="RTMS_DATABASE_URL")
    # PostgreSQL only: the schema the gateway's tables live in (the server's search_path if unset).
    database_schema: str | None = Field(default=None, validation_alias="RTMS_DATABASE_SCHEMA")
    ca_file: Path | None = Field(default=None, validation_alias="RTMS_CA_FILE")
    # TLS only, unless asked: plain ws:// server URLs are refused (a forged or misrouted
    # rtms_started must not make us stream a meeting in clear text).
    allow_insecure_ws: bool = Field(default=False, validation_alias="RTMS_ALLOW_INSECURE_WS")
    # Egress proxy for every signaling and media socket (HTTP CONNECT or SOCKS); it may
    # hold credentials, so it is a secret: never logged, never in an error message.
    proxy_url: SecretStr = Field(default=SecretStr(""), validation_alias="RTMS_PROXY_URL")
    media: str = Field(default=DEFAULT_MEDIA, validation_alias="RTMS_MEDIA")
    buffer_data: bool = Field(default=True, validation_alias="RTMS_BUFFER_DATA")
    # Events to subscribe to, names or numbers (unset: every event each product offers).
    events: str | None = Field(default=None, validation_alias="RTMS_EVENTS")
    log_level: str = Field(default="INFO", validation_alias="RTMS_LOG_LEVEL")
    # uvloop's event loop costs less per socket read, timer and callback than asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = Field(default="uvloop", validation_alias="RTMS_EVENT_LOOP")
    # HTTP: each request must arrive whole within the timeout (slow headers or bodies are
    # cut); connections past the bound are answered 503.
    http_request_timeout_s: float = Field(default=20.0, gt=0, validation_alias="RTMS_HTTP_REQUEST_TIMEOUT_S")
    http_max_connections: int = Field(default=500, ge=1, validation_alias="RTMS_HTTP_MAX_CONNECTIONS")
    # Admin API keys from the deployment's secrets, comma-separated (beside the keys kept,
    # hashed, in the store: `rtms-gateway keys create`).
    api_keys: SecretStr = Field(default=SecretStr(""), validation_alias="RTMS_API_KEYS")
    metrics_public: bool = Field(default=False, validation_alias="RTMS_METRICS_PUBLIC")
    # Live feeds (SSE, WebSocket): items queued per subscriber before it is told it fell
    # behind and closed; subscribers at once (more are answered 503); idle SSE comment every.
    live_queue_size: int = Field(default=1000, ge=1, le=1_000_000, validation_alias="RTMS_LIVE_QUEUE_SIZE")
    live_max_subscribers: int = Field(default=1000, ge=1, validation_alias="RTMS_LIVE_MAX_SUBSCRIBERS")
    live_heartbeat_s: float = Field(default=15.0, gt=0, le=3600, validation_alias="RTMS_LIVE_HEARTBEAT_S")
    # Outbound webhooks: private/loopback targets refused unless allowed; each delivery
    # retried with backoff (first wait, cap) until it is max-age old, then dead-lettered.
    webhook_allow_private: bool = Field(default=False, validation_alias="RTMS_WEBHOOK_ALLOW_PRIVATE")
    webhook_max_age_s: float = Field(default=86_400.0, gt=0, validation_alias="RTMS_WEBHOOK_MAX_AGE_S")
    webhook_retry_initial_s: float = Field(default=5.0, gt=0, validation_alias="RTMS_WEBHOOK_RETRY_INITIAL_S")
    webhook_retry_max_s: float = Field(default=3600.0, gt=0, validation_alias="RTMS_WEBHOOK_RETRY_MAX_S")
    webhook_timeout_s: float = Field(default=10.0, gt=0, validation_alias="RTMS_WEBHOOK_TIMEOUT_S")
    # Redis Streams: every feed item also goes to rtms:all and rtms:meeting:{uuid}, each
    # trimmed to about this many entries.
    redis_url: SecretStr = Field(default=SecretStr(""), validation_alias="RTMS_REDIS_URL")
    redis_maxlen: int = Field(default=100_000, ge=1, validation_alias="RTMS_REDIS_MAXLEN")
    redis_prefix: str = Field(default="rtms:", min_length=1, max_length=64, validation_alias="RTMS_REDIS_PREFIX")
    # Reconnecting (Zoom's failover guide): first wait, doubling up to the cap, jittered;
    # media alone within its window, signaling and media within theirs (Zoom's, by default).
    reconnect_initial_s: float = Field(default=RECONNECT_INITIAL_S, gt=0,
                                       validation_alias="RTMS_RECONNECT_INITIAL_S")
    reconnect_max_s: float = Field(default=RECONNECT_MAX_S, gt=0,
                                   validation_alias="RTMS_RECONNECT_MAX_S")
    media_window_s: float = Field(default=MEDIA_RECONNECT_WINDOW_S, gt=0,
                                  validation_alias="RTMS_MEDIA_WINDOW_S")
    signaling_window_s: float = Field(default=SIGNALING_RECONNECT_WINDOW_S, gt=0,
                                      validation_alias="RTMS_SIGNALING_WINDOW_S")
    silence_limit_s: float = Field(default=CLIENT_SILENCE_LIMIT_S, gt=0, validation_alias="RTMS_SILENCE_S")
    # Media parameters asked of Zoom; the defaults are the protocol's own.
    audio_codec: str = Field(default="l16", validation_alias="RTMS_AUDIO_CODEC")
    audio_sample_rate: int = Field(default=16000, validation_alias="RTMS_AUDIO_SAMPLE_RATE")
    audio_channels: int = Field(default=1, ge=1, le=2, validation_alias="RTMS_AUDIO_CHANNELS")
    audio_streams: str = Field(default="mixed", validation_alias="RTMS_AUDIO_STREAMS")
    audio_send_rate_ms: int = Field(default=20, ge=20, le=1000, validation_alias="RTMS_AUDIO_SEND_RATE")
    video_codec: str = Field(default="h264", validation_alias="RTMS_VIDEO_CODEC")
    video_resolution: str = Field(default="hd", validation_alias="RTMS_VIDEO_RESOLUTION")
    video_fps: int = Field(default=25, ge=1, le=30, validation_alias="RTMS_VIDEO_FPS")
    video_stream: str = Field(default="active", validation_alias="RTMS_VIDEO_STREAM")
    # With RTMS_VIDEO_STREAM=individual: whose video the gateway subscribes to by itself, a
    # user id or a user name (unset: the active speaker, as speaker changes say).
    video_follow: str | None = Field(default=None, min_length=1, max_length=256,
                                     validation_alias="RTMS_VIDEO_FOLLOW")
    share_codec: str = Field(default="jpg", validation_alias="RTMS_SHARE_CODEC")
    share_resolution: str = Field(default="fhd", validation_alias="RTMS_SHARE_RESOLUTION")
    share_fps: int = Field(default=1, ge=1, le=30, validation_alias="RTMS_SHARE_FPS")
    # A stream Zoom revokes (stop reason 8): Zoom asks that its data be deleted at once
    # (`delete`, the default); `keep` only by explicit choice.
    on_revoked: str = Field(default="delete", validation_alias="RTMS_ON_REVOKED")
    # Transcripts: the language spoken (a name or number of Zoom's table; unset: Zoom's
    # default, English until its language detection takes over) and whether Zoom detects
    # the language (unset: Zoom's default, on). Neither is sent unless set.
    transcript_language: str | None = Field(default=None, validation_alias="RTMS_TRANSCRIPT_LANGUAGE")
    transcript_lid: bool | None = Field(default=None, validation_alias="RTMS_TRANSCRIPT_LID")

    @field_validator("media")
    @classmethod
    def _valid_media(cls, value: str) -> str:
        parse_media(value)
        return value

    @field_validator("events")
    @classmethod
    def _valid_events(cls, value: str | None) -> str | None:
        if value is not None:
            parse_events(value)
        return value

    @field_validator("audio_codec", "video_codec", "share_codec", "video_resolution", "share_resolution",
                     "audio_streams", "video_stream", "on_revoked")
    @classmethod
    def _one_of_the_choices(cls, value: str, info: ValidationInfo) -> str:
        choices, what = _CHOICES[str(info.field_name)]  # a field validator's field is named
        return _choice(value, choices, what)

    @field_validator("transcript_language")
    @classmethod
    def _transcript_language(cls, value: str | None) -> str | None:
        # Zoom refuses a language outside its table (status 43); refused here at start.
        return None if value is None or not value.strip() else parse_language(value).name.lower()

    @property
    def transcript_source(self) -> TranscriptLanguage | None:
        return None if self.transcript_language is None else parse_language(self.transcript_language)

    @field_validator("audio_sample_rate")
    @classmethod
    def _sample_rate(cls, value: int) -> int:
        if value not in SAMPLE_RATES:
            raise ValueError(f"unsupported sample rate {value} (known: {', '.join(map(str, SAMPLE_RATES))})")
        return value

    @field_validator("audio_send_rate_ms")
    @classmethod
    def _send_rate(cls, value: int) -> int:
        if value % 20:
            raise ValueError("the audio send rate is a multiple of 20 ms")
        return value

    @model_validator(mode="after")
    def _zoom_accepts_the_combination(self) -> Settings:
        """What Zoom refuses at the handshake, refused here at start with its name."""
        rules = (
            (self.audio_codec == "opus" and self.audio_sample_rate != 48000,
             "RTMS_AUDIO_CODEC=opus needs RTMS_AUDIO_SAMPLE_RATE=48000"),
            (self.audio_codec == "g711" and (self.audio_sample_rate, self.audio_channels) != (8000, 1),
             "RTMS_AUDIO_CODEC=g711 needs RTMS_AUDIO_SAMPLE_RATE=8000 and mono"),
            (self.audio_codec == "g722" and (self.audio_sample_rate, self.audio_channels) != (16000, 1),
             "RTMS_AUDIO_CODEC=g722 needs RTMS_AUDIO_SAMPLE_RATE=16000 and mono"),
            (self.audio_codec in ("opus", "g711", "g722") and self.audio_send_rate_ms != 20,
             "RTMS_AUDIO_SEND_RATE must be 20 for opus, g711 and g722"),
            (self.video_codec != "h264" and self.video_fps > 5,
             "RTMS_VIDEO_CODEC jpg/png allows at most RTMS_VIDEO_FPS=5 (h264 for more)"),
            (self.share_codec != "h264" and self.share_fps > 1,
             "RTMS_SHARE_CODEC jpg/png allows at most RTMS_SHARE_FPS=1 (h264 for more)"),
        )
        for broken, message in rules:
            if broken:
                raise ValueError(message)
        return self

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value!r} (known: {', '.join(LOG_LEVELS)})")
        return level

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # The messages never repeat the URL: it may hold a password.
        if not value:
            return value
        scheme = value.split("://", 1)[0].strip().lower() if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            what = f"unknown database scheme {scheme!r}" if scheme else "not a database URL"
            raise ValueError(f"{what} (use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB)")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a valid database URL (sqlite:///PATH or "
                             "postgresql://USER:PASSWORD@HOST:PORT/DB)") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the URL: it may hold a password.
        url = value.get_secret_value()
        if url and url.split("://", 1)[0].lower() not in ("redis", "rediss", "unix"):
            raise ValueError("not a Redis URL (use redis://[:PASSWORD@]HOST:PORT/DB or rediss://...)")
        return value

    @field_validator("proxy_url")
    @classmethod
    def _proxy_url(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the URL: it may hold a password.
        url = value.get_secret_value()
        if not url:
            return value
        try:
            parsed = urlsplit(url)
            parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError("not a valid URL") from None
        if parsed.scheme.lower() not in PROXY_SCHEMES:
            raise ValueError(f"the scheme must be one of {', '.join(PROXY_SCHEMES)} "
                             "(http://[USER:PASSWORD@]HOST:PORT)")
        if not parsed.hostname:
            raise ValueError("no proxy host")
        if parsed.fragment or parsed.query or parsed.path not in ("", "/"):
            raise ValueError("a proxy URL has no path, query or fragment")
        return value

    @property
    def proxy(self) -> str | None:
        """The egress proxy URL, or None for direct connections."""
        return self.proxy_url.get_secret_value() or None

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, value: SecretStr) -> SecretStr:
        if any(len(key) < MIN_API_KEY_CHARS for key in _split_keys(value)):
            raise ValueError(f"each key must be at least {MIN_API_KEY_CHARS} characters "
                             "(`rtms-gateway keys create` makes good ones)")
        return value

    @property
    def configured_api_keys(self) -> list[str]:
        return _split_keys(self.api_keys)

    @field_validator("webhook_path")
    @classmethod
    def _path_starts_with_slash(cls, value: str) -> str:
        return value if value.startswith("/") else "/" + value

    @property
    def media_types(self) -> MediaType:
        return parse_media(self.media)

    @property
    def product_events(self) -> dict[Product, tuple[int, ...]] | None:
        """Each product's event subscription as RTMS_EVENTS narrows it (None: all)."""
        return None if self.events is None else parse_events(self.events)

    @property
    def resolved_database_url(self) -> str:
        """`RTMS_DATABASE_URL`, or a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rtms.sqlite3').resolve()}"

    @property
    def media_params(self) -> MediaParams:
        """What the media handshakes ask for; Zoom answers with what it accepted."""
        return MediaParams(
            audio=AudioParams(
                content_type=int(ContentType.RAW_AUDIO),
                sample_rate=int(SAMPLE_RATES[self.audio_sample_rate]),
                channel=self.audio_channels,
                codec=int(AUDIO_CODECS[self.audio_codec]),
                data_opt=int(AUDIO_STREAMS[self.audio_streams]),
                send_rate=self.audio_send_rate_ms,
            ),
            video=VideoParams(
                content_type=int(ContentType.RAW_VIDEO),
                codec=int(VIDEO_CODECS[self.video_codec]),
                resolution=int(RESOLUTIONS[self.video_resolution]),
                fps=self.video_fps,
                data_opt=int(VIDEO_STREAMS[self.video_stream]),
            ),
            deskshare=VideoParams(
                content_type=int(ContentType.RAW_VIDEO),
                codec=int(VIDEO_CODECS[self.share_codec]),
                resolution=int(RESOLUTIONS[self.share_resolution]),
                fps=self.share_fps,
            ),
            transcript=self._transcript_params(),
        )

    def _transcript_params(self) -> TranscriptParams | None:
        """Only what was set: without either setting Zoom's defaults apply, as before."""
        source = self.transcript_source
        if source is None and self.transcript_lid is None:
            return None
        return TranscriptParams(content_type=int(ContentType.TEXT),
                                src_language=None if source is None else int(source),
                                enable_lid=self.transcript_lid)


def load_settings() -> Settings:
    """Settings from the environment and `.env`; an invalid one is a StartupError that
    names each setting at fault (never its value: it may be a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {message}" if where else message)
        raise StartupError(f"invalid setting: {'; '.join(problems)} "
                           "(fix it in the environment or .env)") from exc
