"""Who is asking: an API key on every route but Zoom's webhook, the health check and the
API's own documentation.

`Authorization: Bearer <key>`; the key is one of `RTMS_API_KEYS` (admin) or one made with
`rtms-gateway keys create` (read or admin), found by its hash. A missing or unknown key is
answered 401 with `WWW-Authenticate: Bearer`, a key without the scope a route needs 403.

Without the header, the dashboard's session cookie stands for the key it was exchanged for
(checked again on every request, so a revoked key ends its sessions); a request that can
change something must then also carry the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import msgspec
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..protocol.errors import StoreUnavailable
from ..sinks.keys import ApiKey, Scope, key_hash

log = logging.getLogger(__name__)

REALM = 'Bearer realm="rtms-gateway"'
CONFIGURED_KEY_NAME = "RTMS_API_KEYS"
# While the store cannot be asked, a key it confirmed this recently is still taken: a
# database outage must not also lock people out of /metrics and /healthz's neighbours.
OUTAGE_GRACE_S = 600.0
_REMEMBERED = 1024

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key: from `rtms-gateway keys create`, `RTMS_API_KEYS`, or the file "
                "`$RTMS_DATA_DIR/api-key` that the first `serve` writes.",
)


class KeyLookup(Protocol):
    async def find(self, hashed: str) -> ApiKey | None: ...


class Principal(msgspec.Struct, frozen=True):
    name: str
    scope: Scope


CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CookieSession(Protocol):
    @property
    def key_hash(self) -> str: ...
    @property
    def csrf(self) -> str: ...


class SessionReader(Protocol):
    """Finds the session a request's cookie holds (signed, unexpired, not logged out)."""

    def read(self, request: Request) -> CookieSession | None: ...


class Authenticator:
    def __init__(self, configured: Iterable[str], keys: KeyLookup | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._configured = [key_hash(k) for k in configured]
        self.keys = keys
        self.clock = clock
        self._confirmed: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self.refused = 0
        self.sessions: SessionReader | None = None  # the dashboard's cookies, once it is mounted

    async def principal(self, key: str) -> Principal | None:
        return await self.principal_of_hash(key_hash(key))

    async def principal_of_hash(self, hashed: str) -> Principal | None:
        matched = False
        for candidate in self._configured:  # every one compared: no early exit to time
            matched |= hmac.compare_digest(candidate, hashed)
        if matched:
            return Principal(CONFIGURED_KEY_NAME, Scope.ADMIN)
        if self.keys is None:
            return None
        try:
            found = await self.keys.find(hashed)
        except StoreUnavailable:
            remembered = self._confirmed.get(hashed)
            if remembered is not None and self.clock() - remembered[1] <= OUTAGE_GRACE_S:
                return remembered[0]
            log.warning("cannot check an API key: the store does not answer", exc_info=True)
            raise HTTPException(503, "the store does not answer, so the key cannot be checked; retry") from None
        if found is None:
            self._confirmed.pop(hashed, None)
            return None
        principal = Principal(found.name, found.scope)
        self._confirmed[hashed] = (principal, self.clock())
        self._confirmed.move_to_end(hashed)
        while len(self._confirmed) > _REMEMBERED:
            self._confirmed.popitem(last=False)
        return principal

    def require(self, scope: Scope) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency: the caller's principal, or 401/403."""

        async def dependency(request: Request,
                             credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
            if credentials is not None:
                principal = await self.principal(credentials.credentials)
            else:
                principal = await self._cookie_principal(request)
            if principal is None:
                self._refuse("unknown key")
                raise HTTPException(401, "the API key is not valid (unknown or revoked)",
                                    headers={"WWW-Authenticate": REALM + ', error="invalid_token"'})
            if not principal.scope.allows(scope):
                self._refuse(f"key {principal.name!r} lacks the {scope.value} scope")
                raise HTTPException(403, f"this needs a key with the {scope.value} scope",
                                    headers={"WWW-Authenticate": REALM + ', error="insufficient_scope"'})
            return principal

        return dependency

    async def _cookie_principal(self, request: Request) -> Principal | None:
        session = self.sessions.read(request) if self.sessions is not None else None
        if session is None:
            self._refuse("no key")
            raise HTTPException(401, "an API key is required: send `Authorization: Bearer <key>`",
                                headers={"WWW-Authenticate": REALM})
        if request.method not in SAFE_METHODS:
            # The browser sends the cookie with any request to us; only our own pages know the token.
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                self._refuse("session request without its CSRF token")
                raise HTTPException(403, f"a request made with the session cookie needs its CSRF "
                                         f"token in {CSRF_HEADER}")
        return await self.principal_of_hash(session.key_hash)

    def _refuse(self, why: str) -> None:
        self.refused += 1
        # Someone guessing keys would fill the log: the first few, then one line per thousand.
        if self.refused <= 10 or self.refused % 1000 == 0:
            log.warning("API request refused: %s (%d refused so far)", why, self.refused)
