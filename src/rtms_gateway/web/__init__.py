"""The dashboard: server-rendered pages (Jinja2) and their static assets, served by the
gateway itself (nothing from a CDN), behind a session cookie exchanged for an API key."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..config import Settings
from .routes import (
    STATIC,
    DashboardStore,
    HealthSource,
    KeyChecker,
    MediaFiles,
    ToLogin,
    to_login,
    web_routes,
)
from .session import Sessions, session_secret

log = logging.getLogger(__name__)

__all__ = ["mount_dashboard"]


def mount_dashboard(app: FastAPI, settings: Settings, *, store: DashboardStore, manager: HealthSource,
                    auth: KeyChecker, media_files: MediaFiles,
                    frames: Callable[[], dict[str, int]] | None = None) -> Sessions:
    """Add the pages and `/static` to `app`, and let `auth` take the session cookie.
    `frames`: the frames received so far per media kind (the health page's rates)."""
    try:
        secret = session_secret(settings.data_dir)
    except OSError:
        # No writable data dir (an app built for a test): sessions last as long as the process.
        log.warning("no session secret file in %s; dashboard sessions end with this process",
                    settings.data_dir)
        secret = secrets.token_urlsafe(48).encode()
    sessions = Sessions(secret)
    auth.sessions = sessions
    app.include_router(web_routes(store=store, manager=manager, auth=auth, sessions=sessions,
                                  media_files=media_files, webhook_path=settings.webhook_path,
                                  data_dir=settings.data_dir, frames=frames))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    handler: Any = to_login
    app.add_exception_handler(ToLogin, handler)
    return sessions
