"""The app credentials the simulator signs webhooks and checks handshakes with: the same
three variables the gateway reads (environment, then `.env`), and nothing else of its
settings, so that the simulator runs whatever the gateway's configuration says."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AppCredentials(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    zoom_client_id: str = Field(default="", validation_alias="ZOOM_CLIENT_ID")
    zoom_client_secret: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_CLIENT_SECRET")
    zoom_secret_token: SecretStr = Field(default=SecretStr(""), validation_alias="ZOOM_SECRET_TOKEN")

    def by_name(self) -> dict[str, str]:
        """Each variable's name and value ("" when unset)."""
        return {
            "ZOOM_CLIENT_ID": self.zoom_client_id,
            "ZOOM_CLIENT_SECRET": self.zoom_client_secret.get_secret_value(),
            "ZOOM_SECRET_TOKEN": self.zoom_secret_token.get_secret_value(),
        }
