import json

import pytest

from rtms_gateway.protocol.constants import Product
from rtms_gateway.protocol.signature import webhook_signature
from rtms_gateway.webhooks.dedup import RecentDeliveries
from rtms_gateway.webhooks.events import (
    StreamInterrupted,
    StreamStarted,
    StreamStopped,
    UnhandledEvent,
    UrlValidation,
    WebhookPayloadError,
    delivery_key,
    parse_webhook,
)
from rtms_gateway.webhooks.verify import WebhookRejected, verify_request

TOKEN = "secret-token"
NOW = 1_800_000_000


def signed(body: bytes, ts: int = NOW, token: str = TOKEN) -> dict[str, str]:
    return {"x-zm-request-timestamp": str(ts), "x-zm-signature": webhook_signature(token, ts, body)}


def test_good_signature_passes():
    verify_request(signed(b"{}"), b"{}", TOKEN, NOW)
    verify_request(signed(b"{}", NOW - 299), b"{}", TOKEN, NOW)


@pytest.mark.parametrize("headers, why", [
    ({}, "missing"),
    ({"x-zm-request-timestamp": "abc", "x-zm-signature": "v0=00"}, "not a number"),
    ({**signed(b"{}", NOW - 301)}, "window"),
    ({**signed(b"{}", NOW + 301)}, "window"),
    ({"x-zm-request-timestamp": str(NOW)}, "missing x-zm-signature"),
    ({**signed(b"{}", token="other")}, "does not match"),
    ({**signed(b"{ }")}, "does not match"),
])
def test_bad_requests_are_401(headers, why):
    with pytest.raises(WebhookRejected) as err:
        verify_request(headers, b"{}", TOKEN, NOW)
    assert err.value.status == 401 and why in str(err.value)


def test_empty_secret_rejects_everything():
    with pytest.raises(WebhookRejected):
        verify_request(signed(b"{}", token=""), b"{}", "", NOW)


def body(event, payload, **extra):
    return json.dumps({"event": event, "event_ts": 1700000000123, "payload": payload, **extra}).encode()


@pytest.mark.parametrize("product", list(Product))
def test_every_product_started_stopped_interrupted(product):
    ids = {product.id_key: "id/+=", "rtms_stream_id": "s1"}
    started = parse_webhook(body(product.started_event, {**ids, "server_urls": "wss://a,wss://b",
                                                         "operator_id": "op", "meeting_id": 123}))
    assert started == StreamStarted(product, "id/+=", "s1", "wss://a,wss://b", 1700000000123,
                                    operator_id="op", meeting_id="123")
    assert parse_webhook(body(product.stopped_event, {**ids, "stop_reason": 6})) == \
        StreamStopped(product, "id/+=", "s1", 6, 1700000000123)
    assert parse_webhook(body(product.interrupted_event, ids)) == \
        StreamInterrupted(product, "id/+=", "s1", 1700000000123)


def test_webinar_with_meeting_key_and_nested_object_form():
    ev = parse_webhook(body("webinar.rtms_started", {"meeting_uuid": "w", "rtms_stream_id": "s", "server_urls": "wss://x"}))
    assert ev.owner_id == "w" and ev.product is Product.WEBINAR
    nested = parse_webhook(body("meeting.rtms_stopped", {"object": {"meeting_uuid": "m", "rtms_stream_id": "s"}}))
    assert nested.owner_id == "m"


@pytest.mark.parametrize("raw, status, field", [
    (b"not json", 400, "JSON"),
    (b"[1,2]", 400, "object"),
    (b'{"payload":{}}', 400, "event"),
    (body("meeting.rtms_started", {"meeting_uuid": "m", "server_urls": "wss://x"}), 422, "rtms_stream_id"),
    (body("meeting.rtms_started", {"meeting_uuid": "m", "rtms_stream_id": "s"}), 422, "server_urls"),
    (body("meeting.rtms_started", {"meeting_uuid": "m", "rtms_stream_id": "s", "server_urls": 5}), 422, "server_urls"),
    (body("meeting.rtms_stopped", {"rtms_stream_id": "s"}), 422, "meeting_uuid"),
    (body("meeting.rtms_stopped", {"meeting_uuid": "m", "rtms_stream_id": "s", "stop_reason": "x"}),
     422, "stop_reason"),
])
def test_malformed_payloads_name_the_problem(raw, status, field):
    with pytest.raises(WebhookPayloadError) as err:
        parse_webhook(raw)
    assert err.value.status == status and field in str(err.value)


def test_url_validation_and_unhandled():
    assert parse_webhook(body("endpoint.url_validation", {"plainToken": "p"})) == UrlValidation("p")
    assert parse_webhook(body("meeting.started", {})) == UnhandledEvent("meeting.started")


def test_recent_deliveries_is_bounded_and_expires():
    seen = RecentDeliveries(max_entries=2, ttl_s=10)
    assert not seen.seen("a", 0) and seen.seen("a", 5)
    assert not seen.seen("b", 5) and not seen.seen("c", 5)
    assert not seen.seen("a", 6)  # evicted by the bound
    assert not seen.seen("c", 100)  # expired


def test_header_names_are_case_insensitive_and_odd_digits_rejected():
    verify_request({k.upper(): v for k, v in signed(b"{}").items()}, b"{}", TOKEN, NOW)
    with pytest.raises(WebhookRejected, match="not a number"):
        verify_request({**signed(b"{}"), "x-zm-request-timestamp": "\u00b2"}, b"{}", TOKEN, NOW)
    with pytest.raises(WebhookRejected, match="not a number"):
        verify_request({**signed(b"{}"), "x-zm-request-timestamp": "-5"}, b"{}", TOKEN, NOW)


def test_rejection_messages_hold_no_secret_or_signature():
    headers = signed(b"{}", token="other")
    with pytest.raises(WebhookRejected) as err:
        verify_request(headers, b"{}", TOKEN, NOW)
    assert TOKEN not in str(err.value) and headers["x-zm-signature"] not in str(err.value)


def test_optional_fields_and_defaults():
    ev = parse_webhook(json.dumps({"event": "session.rtms_started", "payload": {
        "session_id": "sid", "session_key": "name", "rtms_stream_id": "s", "server_urls": "wss://x",
        "account_id": "acc", "meeting_id": "m-1"}}).encode())
    assert ev == StreamStarted(Product.SESSION, "sid", "s", "wss://x", 0, account_id="acc",
                               meeting_id="m-1", session_key="name")
    stopped = parse_webhook(body("meeting.rtms_stopped", {"meeting_uuid": "m", "rtms_stream_id": "s"}))
    assert stopped.stop_reason is None


def test_webinar_prefers_its_own_key():
    ev = parse_webhook(body("webinar.rtms_interrupted",
                            {"webinar_uuid": "w", "meeting_uuid": "m", "rtms_stream_id": "s"}))
    assert ev.owner_id == "w"


@pytest.mark.parametrize("raw, field", [
    (body("meeting.rtms_started", {"meeting_uuid": 7, "rtms_stream_id": "s", "server_urls": "wss://x"}),
     "meeting_uuid"),
    (body("meeting.rtms_stopped", {"meeting_uuid": "m", "rtms_stream_id": ["s"]}), "rtms_stream_id"),
    (body("meeting.rtms_started", {"meeting_uuid": "m", "rtms_stream_id": "s", "server_urls": " "}), "server_urls"),
    (body("meeting.rtms_started", {"meeting_uuid": "m", "rtms_stream_id": "s", "server_urls": "w",
                                   "operator_id": 5}), "operator_id"),
    (body("meeting.rtms_stopped", {"meeting_uuid": "m", "rtms_stream_id": "s", "stop_reason": True}), "stop_reason"),
    (body("contact_center.voice_rtms_interrupted", {"meeting_uuid": "m", "rtms_stream_id": "s"}), "engagement_id"),
    (body("session.rtms_stopped", {"session_id": "x", "rtms_stream_id": "s"}, event_ts="1"), "event_ts"),
    (json.dumps({"event": "meeting.rtms_stopped", "payload": [1]}).encode(), "payload"),
    (json.dumps({"event": "meeting.rtms_stopped"}).encode(), "payload"),
    (body("endpoint.url_validation", {}), "plainToken"),
])
def test_wrong_types_are_422_naming_the_field(raw, field):
    with pytest.raises(WebhookPayloadError) as err:
        parse_webhook(raw)
    assert err.value.status == 422 and field in str(err.value)


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b'"event"', b'{"event": 5}', b'{"event": ""}',
                                 b'"\x80"', b'{"event": "meeting.rtms_started", "payload": {"x": "\xc4("}}'])
def test_not_an_event_is_400(raw):
    with pytest.raises(WebhookPayloadError) as err:
        parse_webhook(raw)
    assert err.value.status == 400


def test_delivery_key_is_stable_across_retries():
    raw = body("meeting.rtms_stopped", {"meeting_uuid": "m", "rtms_stream_id": "s", "stop_reason": 1})
    assert delivery_key(parse_webhook(raw)) == ("StreamStopped", "s", 1700000000123)
    interrupted = parse_webhook(body("meeting.rtms_interrupted", {"meeting_uuid": "m", "rtms_stream_id": "s"}))
    assert delivery_key(interrupted) != delivery_key(parse_webhook(raw))


def test_recent_deliveries_forget_and_lru_refresh():
    seen = RecentDeliveries(max_entries=2, ttl_s=10)
    assert not seen.seen("a", 0) and not seen.seen("b", 1)
    assert seen.seen("a", 2)  # refreshed: now the newest
    assert not seen.seen("c", 3)  # evicts "b", the least recent
    assert seen.seen("a", 4) and not seen.seen("b", 4)
    seen.forget("a")
    assert not seen.seen("a", 5)
    assert len(seen) == 2
