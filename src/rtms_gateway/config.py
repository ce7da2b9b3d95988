"""Settings: the only module that reads the environment (env vars, `.env`, defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .protocol.constants import (
    CLIENT_SILENCE_LIMIT_S,
    MEDIA_TYPE_BY_KEY,
    Codec,
    ContentType,
    DataOption,
    MediaType,
    Resolution,
    SampleRate,
)
from .client.backoff import Backoff
from .protocol.messages import AudioParams, MediaParams, VideoParams

DEFAULT_MEDIA = "transcript,chat"


AUDIO_CODECS = {"l16": Codec.L16, "g711": Codec.G711, "g722": Codec.G722, "opus": Codec.OPUS}
VIDEO_CODECS = {"h264": Codec.H264, "jpg": Codec.JPG, "png": Codec.PNG}
SAMPLE_RATES = {rate.hz: rate for rate in SampleRate}
RESOLUTIONS = {res.name.lower(): res for res in Resolution}
AUDIO_STREAMS = {"mixed": DataOption.AUDIO_MIXED_STREAM, "multi": DataOption.AUDIO_MULTI_STREAMS}
VIDEO_STREAMS = {"active": DataOption.VIDEO_SINGLE_ACTIVE_STREAM,
                 "individual": DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM}


_CHOICES: dict[str, tuple[dict[str, object], str]] = {
    "audio_codec": (AUDIO_CODECS, "audio codec"),  # type: ignore[dict-item]
    "video_codec": (VIDEO_CODECS, "video codec"),  # type: ignore[dict-item]
    "share_codec": (VIDEO_CODECS, "video codec"),  # type: ignore[dict-item]
    "video_resolution": (RESOLUTIONS, "resolution"),  # type: ignore[dict-item]
    "share_resolution": (RESOLUTIONS, "resolution"),  # type: ignore[dict-item]
    "audio_streams": (AUDIO_STREAMS, "audio stream mode"),  # type: ignore[dict-item]
    "video_stream": (VIDEO_STREAMS, "video stream mode"),  # type: ignore[dict-item]
}


def _choice(value: str, choices: dict[str, object], what: str) -> str:
    value = value.strip().lower()
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r} (known: {', '.join(choices)})")
    return value


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    zoom_client_id: str = Field(default="", validation_alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_CLIENT_SECRET")
    zoom_secret_token: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_SECRET_TOKEN")
    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(default=3000, validation_alias="PORT")
    webhook_path: str = Field(default="/webhook", validation_alias="WEBHOOK_PATH")
    data_dir: Path = Field(default=Path("./rtms-data"), validation_alias="RTMS_DATA_DIR")
    database_url: str = Field(default="", validation_alias="RTMS_DATABASE_URL")
    # PostgreSQL only: the schema the gateway's tables live in (the server's search_path if unset).
    database_schema: str | None = Field(default=None, validation_alias="RTMS_DATABASE_SCHEMA")
    ca_file: Path | None = Field(default=None, validation_alias="RTMS_CA_FILE")
    media: str = Field(default=DEFAULT_MEDIA, validation_alias="RTMS_MEDIA")
    buffer_data: bool = Field(default=True, validation_alias="RTMS_BUFFER_DATA")
    log_level: str = Field(default="INFO", validation_alias="RTMS_LOG_LEVEL")
    # Reconnecting (Zoom's failover guide): first wait, doubling up to the cap, jittered;
    # media alone within its window, signaling and media within theirs.
    reconnect_initial_s: float = Field(default=3.0, gt=0, validation_alias="RTMS_RECONNECT_INITIAL_S")
    reconnect_max_s: float = Field(default=30.0, gt=0, validation_alias="RTMS_RECONNECT_MAX_S")
    media_window_s: float = Field(default=30.0, gt=0, validation_alias="RTMS_MEDIA_WINDOW_S")
    signaling_window_s: float = Field(default=60.0, gt=0, validation_alias="RTMS_SIGNALING_WINDOW_S")
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
    share_codec: str = Field(default="jpg", validation_alias="RTMS_SHARE_CODEC")
    share_resolution: str = Field(default="fhd", validation_alias="RTMS_SHARE_RESOLUTION")
    share_fps: int = Field(default=1, ge=1, le=30, validation_alias="RTMS_SHARE_FPS")

    @field_validator("media")
    @classmethod
    def _valid_media(cls, value: str) -> str:
        parse_media(value)
        return value

    @field_validator("audio_codec", "video_codec", "share_codec", "video_resolution", "share_resolution",
                     "audio_streams", "video_stream")
    @classmethod
    def _one_of_the_choices(cls, value: str, info: ValidationInfo) -> str:
        choices, what = _CHOICES[info.field_name]  # type: ignore[index]
        return _choice(value, choices, what)

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
    def _zoom_accepts_the_combination(self) -> "Settings":
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

    @field_validator("webhook_path")
    @classmethod
    def _path_starts_with_slash(cls, value: str) -> str:
        return value if value.startswith("/") else "/" + value

    @property
    def media_types(self) -> MediaType:
        return parse_media(self.media)

    @property
    def resolved_database_url(self) -> str:
        """`RTMS_DATABASE_URL`, or a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rtms.sqlite3').resolve()}"

    def backoff(self, window: float) -> Backoff:
        return Backoff(initial=self.reconnect_initial_s, cap=self.reconnect_max_s, window=window)

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
        )
