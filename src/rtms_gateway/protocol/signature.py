"""The HMAC signatures of RTMS: the handshake signature and Zoom's webhook signature."""

from __future__ import annotations

import hashlib
import hmac

from .constants import WEBHOOK_SIGNATURE_VERSION


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signature(client_id: str, client_secret: str, uuid: str, stream_id: str) -> str:
    """Handshake signature: hex HMAC-SHA256(client_secret, "client_id,uuid,stream_id")."""
    return _hmac_hex(client_secret, f"{client_id},{uuid},{stream_id}".encode())


def webhook_signature(secret_token: str, timestamp: str | int, body: bytes) -> str:
    """Zoom's `x-zm-signature` header for a webhook body: "v0=" + hex HMAC-SHA256 of
    "v0:{timestamp}:{raw body}" keyed with the app's secret token."""
    message = f"{WEBHOOK_SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return f"{WEBHOOK_SIGNATURE_VERSION}={_hmac_hex(secret_token, message)}"


def webhook_signature_valid(secret_token: str, timestamp: str, body: bytes, header: str) -> bool:
    """Constant-time check of an `x-zm-signature` header against the raw body."""
    expected = webhook_signature(secret_token, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "surrogateescape"))


def url_validation_response(secret_token: str, plain_token: str) -> dict[str, str]:
    """The answer Zoom expects to `endpoint.url_validation`."""
    return {
        "plainToken": plain_token,
        "encryptedToken": _hmac_hex(secret_token, plain_token.encode()),
    }


def handshake_signature_valid(
    client_id: str, client_secret: str, uuid: str, stream_id: str, candidate: str
) -> bool:
    """Constant-time check of a handshake signature (server side)."""
    expected = signature(client_id, client_secret, uuid, stream_id)
    return hmac.compare_digest(expected.encode(), candidate.lower().encode("utf-8", "surrogateescape"))
