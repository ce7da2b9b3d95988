"""Webhooks as Zoom sends them: envelope, payloads per product, headers, signature over the
exact bytes, retries, and endpoint URL validation; checked by an independent receiver."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from rtms_gateway.protocol.constants import MediaType, Product
from rtms_gateway.simulator.webhook_sender import ZOOM_RETRY_DELAYS_S, WebhookSender
from tests.peers.minimal_client import WebhookReceiver

STARTED_KEYS = {
    Product.MEETING: {"meeting_uuid", "meeting_id", "account_id", "operator_id", "is_original_host"},
    Product.WEBINAR: {"webinar_uuid", "webinar_id", "meeting_id", "account_id", "operator_id", "is_original_host"},
    Product.SESSION: {"session_id", "session_key", "account_id"},
    Product.CONTACT_CENTER: {"engagement_id"},
}
EVENT_PREFIX = {Product.MEETING: "meeting.rtms_", Product.WEBINAR: "webinar.rtms_",
                Product.SESSION: "session.rtms_", Product.CONTACT_CENTER: "contact_center.voice_rtms_"}


@pytest.fixture
async def receiver(credentials):
    r = WebhookReceiver(credentials["secret_token"])
    await r.start()
    yield r
    await r.close()


@pytest.mark.parametrize("product", list(Product))
async def test_started_and_stopped_payloads_per_product(sim_and_client, product):
    sim, client = await sim_and_client()
    handle = sim.start_meeting(duration=1.0, product=product, media=MediaType.TRANSCRIPT)
    record = await handle.wait(15)
    assert record.outcome == "completed"
    started, stopped = client.receiver.received
    assert started.event == EVENT_PREFIX[product] + "started" and stopped.event == EVENT_PREFIX[product] + "stopped"
    assert set(started.payload) == STARTED_KEYS[product] | {"rtms_stream_id", "server_urls"}
    assert isinstance(started.payload["server_urls"], str) and started.payload["server_urls"].startswith("wss://localhost:")
    id_key = product.id_key
    expected_stop = {id_key: handle.script.owner_id, "rtms_stream_id": handle.script.rtms_stream_id, "stop_reason": 6}
    if product is Product.SESSION:
        expected_stop["session_key"] = started.payload["session_key"]
    assert stopped.payload == expected_stop
    assert [d.statuses for d in record.webhooks] == [(200,), (200,)]


async def test_headers_and_signature_over_exact_bytes(sim_and_client):
    sim, client = await sim_and_client()
    await sim.start_meeting(duration=0.8, media=MediaType.TRANSCRIPT).wait(15)
    deliveries = client.receiver.received
    assert len(deliveries) == 2
    for d in deliveries:
        assert d.signature_ok and d.timestamp_ok and d.status == 200
        assert d.headers["content-type"] == "application/json"
        assert re.fullmatch(r"\d{10}", d.headers["x-zm-request-timestamp"])
        assert re.fullmatch(r"v0=[0-9a-f]{64}", d.headers["x-zm-signature"])
        uuid.UUID(d.headers["x-zm-trackingid"])
        assert isinstance(d.event_ts, int) and len(str(d.event_ts)) == 13
        assert list(json.loads(d.body)) == ["event", "event_ts", "payload"]
        assert b": " not in d.body and b", " not in d.body  # compact, as Zoom posts
    assert deliveries[0].headers["x-zm-trackingid"] != deliveries[1].headers["x-zm-trackingid"]


async def test_retries_non_2xx_then_delivers(receiver, credentials):
    receiver.scripted_statuses = [500, 503]
    sender = WebhookSender(receiver.url, credentials["secret_token"], retry_delays=(0.01, 0.01, 0.01))
    try:
        delivery = await sender.send("meeting.rtms_started", {"meeting_uuid": "u", "rtms_stream_id": "s"})
    finally:
        await sender.aclose()
    assert delivery.ok and delivery.statuses == (500, 503, 200)
    attempts = receiver.received
    assert [d.status for d in attempts] == [500, 503, 200]
    assert len({d.event_ts for d in attempts}) == 1  # the same event, retried
    assert len({d.headers["x-zm-trackingid"] for d in attempts}) == 3


async def test_gives_up_after_the_first_attempt_and_three_retries_as_zoom_does(receiver, credentials):
    receiver.scripted_statuses = [500, 500, 500, 500, 500]
    sender = WebhookSender(receiver.url, credentials["secret_token"], retry_delays=(0.01, 0.02, 0.03))
    try:
        delivery = await sender.send("meeting.rtms_stopped", {})
    finally:
        await sender.aclose()
    assert not delivery.ok and delivery.statuses == (500, 500, 500, 500)
    assert len(receiver.received) == 4


def test_zoom_retries_three_times_after_5_20_and_60_minutes_and_bad_schedules_are_refused():
    assert ZOOM_RETRY_DELAYS_S == (300.0, 1200.0, 3600.0)
    for bad in ((-1.0,), (0.0,) * 17):
        with pytest.raises(ValueError, match="retry_delays"):
            WebhookSender("http://127.0.0.1:9/", "t", retry_delays=bad)


async def test_slow_endpoint_times_out_and_is_retried(receiver, credentials):
    receiver.scripted_delay = 1.0
    sender = WebhookSender(receiver.url, credentials["secret_token"], timeout=0.2, retry_delays=(0.01,))
    try:
        delivery = await sender.send("meeting.rtms_started", {})
    finally:
        await sender.aclose()
    assert delivery.ok and delivery.statuses == ("timeout", 200)


async def test_unreachable_endpoint_is_recorded(credentials):
    sender = WebhookSender("http://127.0.0.1:9/webhook", credentials["secret_token"], retry_delays=(0.01,))
    try:
        delivery = await sender.send("meeting.rtms_started", {})
    finally:
        await sender.aclose()
    assert not delivery.ok and delivery.statuses == ("ConnectError", "ConnectError")


async def test_validate_endpoint_pass_and_fail(receiver, credentials):
    sender = WebhookSender(receiver.url, credentials["secret_token"])
    try:
        assert (await sender.validate_endpoint()).ok
        receiver.wrong_validation = True
        result = await sender.validate_endpoint()
        assert not result.ok and "encryptedToken" in result.detail
    finally:
        await sender.aclose()
    validation = receiver.received[0]
    assert validation.event == "endpoint.url_validation" and validation.signature_ok
    assert set(validation.payload) == {"plainToken"}


async def test_wrong_secret_token_is_refused_by_the_receiver(receiver):
    sender = WebhookSender(receiver.url, "not-the-token", retry_delays=())
    try:
        delivery = await sender.send("meeting.rtms_started", {})
    finally:
        await sender.aclose()
    assert delivery.statuses == (401,) and not receiver.received[0].signature_ok


async def test_ca_written_before_the_first_webhook(start_simulator, credentials, tmp_path):
    ca = tmp_path / "sub" / "ca.pem"
    seen: list[bytes] = []
    r = WebhookReceiver(credentials["secret_token"], on_event=lambda e, p: seen.append(ca.read_bytes()))
    url = await r.start()
    try:
        sim = await start_simulator(webhook_url=url, ca_out=ca, connect_timeout=0.2)
        await sim.start_meeting(duration=1).wait(10)
        assert seen and seen[0] == sim.ca_pem and seen[0].startswith(b"-----BEGIN CERTIFICATE-----")
    finally:
        await r.close()
