"""Settings: the only module that reads the environment (env vars, `.env`, defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .protocol.constants import MEDIA_TYPE_BY_KEY, MediaType

DEFAULT_MEDIA = "transcript,chat"


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
    ca_file: Path | None = Field(default=None, validation_alias="RTMS_CA_FILE")
    media: str = Field(default=DEFAULT_MEDIA, validation_alias="RTMS_MEDIA")
    buffer_data: bool = Field(default=True, validation_alias="RTMS_BUFFER_DATA")
    log_level: str = Field(default="INFO", validation_alias="RTMS_LOG_LEVEL")

    @field_validator("media")
    @classmethod
    def _valid_media(cls, value: str) -> str:
        parse_media(value)
        return value

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
