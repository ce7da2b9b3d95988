"""Zoom's RTMS webhook payloads -> typed events, for every product that streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..protocol.constants import URL_VALIDATION_EVENT, Product
from ..protocol.errors import RTMSError


class WebhookPayloadError(RTMSError):
    """A verified body we cannot act on: 400 if it is not an event at all, 422 if an RTMS
    event lacks a field or has it with the wrong type (the message names the field)."""

    def __init__(self, status: int, message: str, *, event: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.event = event


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
class ConcurrencyNotice:
    """Account-level: Zoom's streams for the account are near the cap (`near_limit`), or a
    stream was not started because the cap was reached (`limited`)."""

    kind: str  # "near_limit" | "limited"
    event_ts: int
    concurrency_number: int | None = None
    concurrency_limit: int | None = None
    percentage: int | None = None
    operator_id: str | None = None
    owner_id: str | None = None  # the meeting, webinar or session refused (`limited`)


@dataclass(frozen=True, slots=True)
class UrlValidation:
    plain_token: str


@dataclass(frozen=True, slots=True)
class UnhandledEvent:
    event: str


RtmsEvent = StreamStarted | StreamStopped | StreamInterrupted
WebhookEvent = RtmsEvent | ConcurrencyNotice | UrlValidation | UnhandledEvent

CONCURRENCY_EVENTS = {"rtms.concurrency_near_limit": "near_limit",
                      "rtms.concurrency_limited": "limited"}

_EVENTS: dict[str, tuple[Product, type]] = {}
for _p in Product:
    _EVENTS[_p.started_event] = (_p, StreamStarted)
    _EVENTS[_p.stopped_event] = (_p, StreamStopped)
    _EVENTS[_p.interrupted_event] = (_p, StreamInterrupted)

_decoder = msgspec.json.Decoder()
_MISSING: Any = object()


def delivery_key(event: RtmsEvent | ConcurrencyNotice) -> tuple[str, str, int]:
    """What identifies one delivery across Zoom's retries (the tracking id may change)."""
    if isinstance(event, ConcurrencyNotice):
        return (type(event).__name__, event.kind, event.event_ts)
    return (type(event).__name__, event.rtms_stream_id, event.event_ts)


class _Payload:
    """Field lookup in the flat `payload`, falling back to the nested `payload.object`."""

    def __init__(self, payload: dict[str, Any], event: str) -> None:
        nested = payload.get("object")
        self._layers = (payload, nested) if isinstance(nested, dict) else (payload,)
        self._event = event

    def get(self, key: str) -> Any:
        for layer in self._layers:
            value = layer.get(key)
            if value is not None:
                return value
        return None

    def fail(self, message: str) -> WebhookPayloadError:
        return WebhookPayloadError(422, message, event=self._event)

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.fail(f"payload.{key} is required")
        return value

    def text(self, key: str, *, numeric_ok: bool = False) -> str | None:
        """The field's text; None when absent or empty."""
        value = self.get(key)
        if value is None or value == "":
            return None
        if numeric_ok and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            kind = "a string or integer" if numeric_ok else "a string"
            raise self.fail(f"payload.{key} must be {kind}")
        return value


def parse_webhook(body: bytes) -> WebhookEvent:
    """Turn a (verified) webhook body into an event; raises WebhookPayloadError."""
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise WebhookPayloadError(400, f"body is not JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec lets invalid UTF-8 inside a string through
        raise WebhookPayloadError(400, "body is not JSON: invalid UTF-8 in a string") from None
    if not isinstance(data, dict):
        raise WebhookPayloadError(400, "body must be a JSON object")
    name = data.get("event")
    if not isinstance(name, str) or not name:
        raise WebhookPayloadError(400, "event is required and must be a string")
    if name != URL_VALIDATION_EVENT and name not in _EVENTS and name not in CONCURRENCY_EVENTS:
        return UnhandledEvent(name)
    raw_payload = data.get("payload")
    if not isinstance(raw_payload, dict):
        raise WebhookPayloadError(422, "payload is required and must be an object", event=name)
    payload = _Payload(raw_payload, name)
    if name == URL_VALIDATION_EVENT:
        return UrlValidation(payload.required_text("plainToken"))

    event_ts = data.get("event_ts", 0)
    if event_ts is None:
        event_ts = 0
    if isinstance(event_ts, bool) or not isinstance(event_ts, int):
        raise payload.fail("event_ts must be an integer")
    if name in CONCURRENCY_EVENTS:
        return _concurrency(CONCURRENCY_EVENTS[name], payload, event_ts)

    product, kind = _EVENTS[name]
    id_key = product.id_key
    if product is Product.WEBINAR and payload.get(id_key) is None:
        id_key = "meeting_uuid"  # some webinar deliveries carry the meeting key instead
    owner_id = payload.required_text(id_key)
    stream_id = payload.required_text("rtms_stream_id")

    if kind is StreamStarted:
        urls = payload.get("server_urls")
        if not isinstance(urls, str) or not urls.strip():
            raise payload.fail("payload.server_urls is required and must be a non-empty string")
        return StreamStarted(
            product, owner_id, stream_id, urls, event_ts,
            operator_id=payload.text("operator_id"),
            account_id=payload.text("account_id"),
            meeting_id=payload.text("meeting_id", numeric_ok=True),
            session_key=payload.text("session_key"),
        )
    if kind is StreamStopped:
        reason = payload.get("stop_reason")
        if reason is not None and (isinstance(reason, bool) or not isinstance(reason, int)):
            raise payload.fail("payload.stop_reason must be an integer")
        return StreamStopped(product, owner_id, stream_id, reason, event_ts)
    return StreamInterrupted(product, owner_id, stream_id, event_ts)


def _concurrency(kind: str, payload: _Payload, event_ts: int) -> ConcurrencyNotice:
    """Every field optional (Zoom documents them loosely); a present one must be typed right."""
    numbers: dict[str, int | None] = {}
    for key in ("concurrency_number", "concurrency_limit", "percentage"):
        value = payload.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise payload.fail(f"payload.{key} must be an integer")
        numbers[key] = value
    owner = None
    for id_key in ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id"):
        owner = payload.text(id_key)
        if owner is not None:
            break
    return ConcurrencyNotice(kind, event_ts, numbers["concurrency_number"],
                             numbers["concurrency_limit"], numbers["percentage"],
                             operator_id=payload.text("operator_id"), owner_id=owner)
