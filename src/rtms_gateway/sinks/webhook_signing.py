"""Standard Webhooks (standardwebhooks.com): the secret, the signature and the body.

A secret is `whsec_` and base64 of 24 random bytes; the bytes (the part after the prefix,
decoded) key HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"`, sent as
`webhook-signature: v1,<base64 of the MAC>`. The receiver recomputes it, compares in
constant time, and refuses a timestamp too far from its clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import msgspec

from .cursors import format_cursor
from .exports import iso_utc
from .feed import NO_MEETING, FeedItem

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24

_encode = msgspec.json.Encoder().encode


class _Body(msgspec.Struct):
    type: str
    timestamp: str | None
    data: dict[str, Any]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_id(subscription_id: int, seq: int) -> str:
    """Stable across attempts and restarts: the subscription and the item's cursor."""
    return f"msg_{subscription_id}_{format_cursor(seq)}"


def body_of(item: FeedItem) -> bytes:
    """`{"type", "timestamp", "data"}`: the time the item was stored; `data` is the record
    as the REST API shows it, with the meeting's UUID (an account item has none) and the
    item's cursor."""
    data: dict[str, Any] = {"meeting_uuid": item.meeting_uuid, "cursor": item.cursor}
    if item.meeting_uuid == NO_MEETING:
        del data["meeting_uuid"]
    data.update(json.loads(bytes(item.data)))
    body = _Body(item.type, iso_utc(item.stored_at_ms), data)
    try:
        return _encode(body)
    except UnicodeEncodeError:  # a lone surrogate (UTF-8 cannot hold one): escaped, as JSON allows
        return json.dumps(msgspec.to_builtins(body), separators=(",", ":")).encode()


def headers(secret: str, webhook_id_: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": webhook_id_, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id_, timestamp, body),
            "content-type": "application/json"}
