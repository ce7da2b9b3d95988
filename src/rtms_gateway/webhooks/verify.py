"""Zoom webhook verification: timestamp window and `x-zm-signature` over the raw body."""

from __future__ import annotations

from collections.abc import Mapping

from ..protocol.constants import HEADER_SIGNATURE, HEADER_TIMESTAMP, WEBHOOK_REPLAY_WINDOW_S
from ..protocol.errors import SignatureInvalid
from ..protocol.signature import webhook_signature_valid


class WebhookRejected(SignatureInvalid):
    """A request that must not be acted on; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; HTTP header names are not.
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def verify_request(headers: Mapping[str, str], body: bytes, secret_token: str, now: float,
                   window_s: float = WEBHOOK_REPLAY_WINDOW_S) -> None:
    """Raise WebhookRejected(401) unless the request is fresh and signed with the token.

    Messages name the failing check only; never the token, the signature or the body.
    """
    if not secret_token:
        raise WebhookRejected(401, "no webhook secret token is configured")
    timestamp = _header(headers, HEADER_TIMESTAMP)
    if not timestamp:
        raise WebhookRejected(401, f"missing {HEADER_TIMESTAMP}")
    # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise WebhookRejected(401, f"{HEADER_TIMESTAMP} is not a number")
    if abs(now - int(timestamp)) > window_s:
        raise WebhookRejected(401, f"{HEADER_TIMESTAMP} is outside the {int(window_s)} s window")
    signature = _header(headers, HEADER_SIGNATURE)
    if not signature:
        raise WebhookRejected(401, f"missing {HEADER_SIGNATURE}")
    if not webhook_signature_valid(secret_token, timestamp, body, signature):
        raise WebhookRejected(401, "signature does not match")
