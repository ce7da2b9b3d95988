"""Zoom's RTMS webhook payloads -> typed events, for every product that streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..protocol.constants import URL_VALIDATION_EVENT, Product
from ..protocol.errors import RTMSError


class WebhookPayloadError(RTMSError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamStarted:
    product: Product
    owner_id: str
    rtms_stream_id: str
    server_urls: str
    event_ts: int
    operator_id: str | None = None
    account_id: str | None = None
    meeting_id: str | None = None
    session_key: str | None = None


@dataclass(frozen=True, slots=True)
class StreamStopped:
    product: Product
    owner_id: str
    rtms_stream_id: str
    stop_reason: int | None
    event_ts: int


@dataclass(frozen=True, slots=True)
class StreamInterrupted:
    product: Product
    owner_id: str
    rtms_stream_id: str
    event_ts: int


@dataclass(frozen=True, slots=True)
class UrlValidation:
    plain_token: str


@dataclass(frozen=True, slots=True)
class UnhandledEvent:
    event: str


RtmsEvent = StreamStarted | StreamStopped | StreamInterrupted

_EVENTS: dict[str, tuple[Product, type]] = {}
for _p in Product:
    _EVENTS[_p.started_event] = (_p, StreamStarted)
    _EVENTS[_p.stopped_event] = (_p, StreamStopped)
    _EVENTS[_p.interrupted_event] = (_p, StreamInterrupted)

_decoder = msgspec.json.Decoder()


def delivery_key(event: RtmsEvent) -> tuple[str, str, int]:
    """What identifies one delivery across Zoom's retries."""
    return (type(event).__name__, event.rtms_stream_id, event.event_ts)


def _text(payload: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise WebhookPayloadError(422, f"payload.{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WebhookPayloadError(422, f"payload.{key} must be a string")
    return str(value)


def parse_webhook(body: bytes) -> RtmsEvent | UrlValidation | UnhandledEvent:
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise WebhookPayloadError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError(400, "body must be a JSON object")
    name = data.get("event")
    if not isinstance(name, str) or not name:
        raise WebhookPayloadError(400, "event is required and must be a string")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    if isinstance(payload.get("object"), dict) and not payload.get("rtms_stream_id"):
        payload = payload["object"]  # the nested form some senders use
    if name == URL_VALIDATION_EVENT:
        return UrlValidation(_text(payload, "plainToken", required=True))  # type: ignore[arg-type]
    if name not in _EVENTS:
        return UnhandledEvent(name)
    product, kind = _EVENTS[name]
    event_ts = data.get("event_ts", 0)
    if isinstance(event_ts, bool) or not isinstance(event_ts, int):
        raise WebhookPayloadError(422, "event_ts must be an integer")
    id_key = product.id_key
    if product is Product.WEBINAR and not payload.get(id_key):
        id_key = "meeting_uuid"  # some webinar deliveries carry the meeting key
    owner_id = _text(payload, id_key, required=True)
    stream_id = _text(payload, "rtms_stream_id", required=True)
    if kind is StreamStarted:
        urls = payload.get("server_urls")
        if not isinstance(urls, str) or not urls.strip():
            raise WebhookPayloadError(422, "payload.server_urls is required and must be a string")
        return StreamStarted(product, owner_id, stream_id, urls, event_ts,  # type: ignore[arg-type]
                             operator_id=_text(payload, "operator_id", required=False),
                             account_id=_text(payload, "account_id", required=False),
                             meeting_id=_text(payload, "meeting_id", required=False),
                             session_key=_text(payload, "session_key", required=False))
    if kind is StreamStopped:
        reason = payload.get("stop_reason")
        if reason is not None and (isinstance(reason, bool) or not isinstance(reason, int)):
            raise WebhookPayloadError(422, "payload.stop_reason must be an integer")
        return StreamStopped(product, owner_id, stream_id, reason, event_ts)  # type: ignore[arg-type]
    return StreamInterrupted(product, owner_id, stream_id, event_ts)  # type: ignore[arg-type]
