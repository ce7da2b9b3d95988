"""Zoom's webhook deliveries: signed flat-payload POSTs with retries, and URL validation.

Each attempt is signed afresh (`x-zm-request-timestamp` in seconds, `x-zm-signature` over
the exact bytes sent) and carries its own `x-zm-trackingid`; `event_ts` stays the same
across retries, so receivers can deduplicate. Zoom waits 3 s for an answer and retries a
non-2xx or silent endpoint 3 times, 5, 20 and 60 minutes later (`ZOOM_RETRY_DELAYS_S`);
the delays are a parameter so that tests and load runs can scale them down.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from ..protocol.constants import (
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    HEADER_TRACKING_ID,
    URL_VALIDATION_EVENT,
)
from ..protocol.signature import url_validation_response, webhook_signature
from .records import DeliveryRecord

ZOOM_RESPONSE_TIMEOUT_S = 3.0
ZOOM_RETRY_DELAYS_S: tuple[float, ...] = (300.0, 1200.0, 3600.0)  # before retries 1, 2 and 3
MAX_RETRIES = 16  # a bound on the schedule a caller may give
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ValidationResult:
    ok: bool
    status: int | None
    detail: str


def envelope(event: str, payload: dict[str, Any], event_ts: int | None = None) -> bytes:
    """Compact JSON `{"event", "event_ts" (ms), "payload"}` as Zoom posts it."""
    ts = event_ts if event_ts is not None else time.time_ns() // 1_000_000
    return _json.encode({"event": event, "event_ts": ts, "payload": payload})


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret_token: str,
        *,
        timeout: float = ZOOM_RESPONSE_TIMEOUT_S,
        retry_delays: Sequence[float] = ZOOM_RETRY_DELAYS_S,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        """`retry_delays`: seconds to wait before each retry; one first attempt plus one
        retry per entry (Zoom: 3 retries after 5, 20 and 60 minutes)."""
        if len(retry_delays) > MAX_RETRIES or any(d < 0 for d in retry_delays):
            raise ValueError(f"retry_delays: at most {MAX_RETRIES} delays, none negative")
        self.url = url
        self._secret = secret_token
        self.retry_delays = tuple(retry_delays)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, pool=None),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            verify=verify,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        return {
            "content-type": "application/json",
            HEADER_TIMESTAMP: ts,
            HEADER_SIGNATURE: webhook_signature(self._secret, ts, body),
            HEADER_TRACKING_ID: str(uuid.uuid4()),
            "user-agent": "Zoom Marketplace/1.0a",
        }

    async def send(self, event: str, payload: dict[str, Any]) -> DeliveryRecord:
        """POST until a 2xx or the attempts run out; every attempt's outcome is recorded."""
        body = envelope(event, payload)
        statuses: list[int | str] = []
        for attempt in range(1 + len(self.retry_delays)):
            if attempt:
                await asyncio.sleep(self.retry_delays[attempt - 1])
            try:
                response = await self._client.post(self.url, content=body, headers=self._headers(body))
            except httpx.TimeoutException:
                statuses.append("timeout")
                continue
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)
                continue
            statuses.append(response.status_code)
            if 200 <= response.status_code < 300:
                return DeliveryRecord(event, tuple(statuses), True)
        return DeliveryRecord(event, tuple(statuses), False)

    async def validate_endpoint(self) -> ValidationResult:
        """Zoom's `endpoint.url_validation` challenge: the reply must carry the token
        and its HMAC under the secret token."""
        plain = secrets.token_urlsafe(16)
        body = envelope(URL_VALIDATION_EVENT, {"plainToken": plain})
        try:
            response = await self._client.post(self.url, content=body, headers=self._headers(body))
        except httpx.HTTPError as exc:
            return ValidationResult(False, None, f"no answer: {type(exc).__name__}")
        if response.status_code != 200:
            return ValidationResult(False, response.status_code, f"HTTP {response.status_code}, expected 200")
        try:
            answer = response.json()
        except ValueError:
            return ValidationResult(False, 200, "the answer is not JSON")
        expected = url_validation_response(self._secret, plain)
        if not isinstance(answer, dict) or answer.get("plainToken") != expected["plainToken"]:
            return ValidationResult(False, 200, "plainToken missing or not echoed")
        if answer.get("encryptedToken") != expected["encryptedToken"]:
            return ValidationResult(False, 200, "encryptedToken is not HMAC-SHA256(secret token, plainToken)")
        return ValidationResult(True, 200, "endpoint validated")
