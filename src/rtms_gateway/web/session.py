"""The dashboard's session cookie: an API key exchanged, at login, for a signed and expiring
cookie that names the key by its hash (never the key itself) and carries a CSRF token.

The cookie is HttpOnly, SameSite=Strict, and Secure when the page came over HTTPS. Its
signature uses a secret kept in the data dir (`session-secret`, 0600, made on first use),
so sessions survive a restart and every worker on the machine accepts them. Logging out
forgets the session in this process: its cookie is refused from then on, even if copied.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import msgspec
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "rtms_session"
SECRET_FILE = "session-secret"
MAX_AGE_S = 12 * 3600
_MAX_COOKIE_CHARS = 1024
_ENDED_KEPT = 10_000  # logged-out sessions remembered (each only until it would expire anyway)


class Session(msgspec.Struct, frozen=True):
    id: str
    key_hash: str
    csrf: str
    name: str  # the key's name, to show who is logged in
    admin: bool


def session_secret(data_dir: Path) -> bytes:
    """The signing secret in `data_dir`, made (readable by its owner only) if absent."""
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) >= 32:
            return secret
        raise RuntimeError(f"{path} is shorter than 32 bytes; delete it to make a new one") from None
    secret = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret


class Sessions:
    """Makes, reads and ends session cookies."""

    def __init__(self, secret: bytes, *, max_age_s: int = MAX_AGE_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="rtms-gateway dashboard session")
        self.max_age_s = max_age_s
        self.clock = clock
        self._ended: OrderedDict[str, float] = OrderedDict()  # session id -> when it would expire

    def start(self, response: Response, request: Request, *, key_hash: str, name: str,
              admin: bool) -> Session:
        session = Session(id=secrets.token_urlsafe(16), key_hash=key_hash,
                          csrf=secrets.token_urlsafe(32), name=name, admin=admin)
        value = self._signer.dumps(msgspec.to_builtins(session))
        response.set_cookie(COOKIE_NAME, value, max_age=self.max_age_s, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return session

    def read(self, request: Request) -> Session | None:
        value = request.cookies.get(COOKIE_NAME)
        if not value or len(value) > _MAX_COOKIE_CHARS:
            return None
        try:
            raw = self._signer.loads(value, max_age=self.max_age_s)
            session = msgspec.convert(raw, Session)
        except (BadSignature, msgspec.ValidationError):
            return None
        if session.id in self._ended:
            return None
        return session

    def end(self, response: Response, session: Session | None) -> None:
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        if session is None:
            return
        now = self.clock()
        self._ended[session.id] = now + self.max_age_s
        while self._ended and (len(self._ended) > _ENDED_KEPT or next(iter(self._ended.values())) < now):
            self._ended.popitem(last=False)
