"""The dashboard's session cookie: what it holds, how it is set, and what ends it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from rtms_gateway.web.session import COOKIE_NAME, SECRET_FILE, Sessions, session_secret


def request(scheme: str = "http", cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{COOKIE_NAME}={cookie}".encode())] if cookie is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "scheme": scheme, "headers": headers,
                    "server": ("127.0.0.1", 3000), "query_string": b""})


def started(sessions: Sessions, scheme: str = "http") -> tuple[str, str]:
    response = Response()
    sessions.start(response, request(scheme), key_hash="h" * 64, name="viewer", admin=False)
    header = response.headers["set-cookie"]
    return header, header.split(";")[0].split("=", 1)[1]


def test_the_cookie_is_signed_httponly_strict_and_secure_only_over_https() -> None:
    sessions = Sessions(b"s" * 48)
    header, value = started(sessions)
    assert "httponly" in header.lower() and "samesite=strict" in header.lower()
    assert "secure" not in header.lower() and f"Max-Age={sessions.max_age_s}" in header
    assert "secure" in started(sessions, "https")[0].lower()
    session = sessions.read(request(cookie=value))
    assert session is not None and session.key_hash == "h" * 64 and len(session.csrf) >= 32


def test_a_tampered_foreign_or_oversized_cookie_is_no_session() -> None:
    sessions = Sessions(b"s" * 48)
    _, value = started(sessions)
    assert sessions.read(request(cookie=value[:-2] + ("AA" if not value.endswith("AA") else "BB"))) is None
    assert Sessions(b"t" * 48).read(request(cookie=value)) is None  # another gateway's secret
    assert sessions.read(request(cookie="x" * 5000)) is None
    assert sessions.read(request()) is None


def test_ending_a_session_refuses_its_cookie_afterwards() -> None:
    sessions = Sessions(b"s" * 48)
    _, value = started(sessions)
    _, other = started(sessions)
    response = Response()
    sessions.end(response, sessions.read(request(cookie=value)))
    assert 'rtms_session=""' in response.headers["set-cookie"]
    assert sessions.read(request(cookie=value)) is None
    assert sessions.read(request(cookie=other)) is not None  # only that one


def test_the_secret_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = session_secret(tmp_path)
    assert session_secret(tmp_path) == first and len(first) >= 32
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(RuntimeError, match="shorter than 32 bytes"):
        session_secret(tmp_path)
