"""The HTTP app over a real SQLite store; the manager records what it is handed."""

import json
import logging
import time

import httpx
import pytest

from rtms_gateway.api.app import create_app
from rtms_gateway.protocol.signature import url_validation_response, webhook_signature
from rtms_gateway.sinks.store import Store
from rtms_gateway.webhooks.events import StreamStarted

from . import store_cases
from .gateway_harness import SECRET_TOKEN, make_settings


class RecordingManager:
    def __init__(self):
        self.events = []

    async def handle(self, event):
        self.events.append(event)

    def health(self):
        return {"streams_live": 0}


@pytest.fixture
async def api(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manager = RecordingManager()
    app = create_app(make_settings(tmp_path), store=store, manager=manager)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        yield http, store, manager
    await store.close()


def signed_post(http, payload_obj, *, event="meeting.rtms_started", ts=None, token=SECRET_TOKEN, raw=None):
    body = raw if raw is not None else json.dumps({"event": event, "event_ts": 1, "payload": payload_obj}).encode()
    stamp = ts if ts is not None else int(time.time())
    headers = {"x-zm-request-timestamp": str(stamp), "x-zm-signature": webhook_signature(token, stamp, body),
               "content-type": "application/json"}
    return http.post("/webhook", content=body, headers=headers)


STARTED = {"meeting_uuid": "m/1+=", "rtms_stream_id": "s1", "server_urls": "wss://localhost:1"}


async def test_verified_start_reaches_the_manager_once(api):
    http, _, manager = api
    first = await signed_post(http, STARTED)
    again = await signed_post(http, STARTED)  # Zoom's retry of the same delivery
    assert (first.status_code, first.json()) == (200, {"status": "ok"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(manager.events) == 1 and isinstance(manager.events[0], StreamStarted)


@pytest.mark.parametrize("kwargs, status", [
    ({"token": "wrong"}, 401),
    ({"ts": 1}, 401),
    ({"raw": b"{nope"}, 400),
])
async def test_rejections(api, kwargs, status):
    http, _, manager = api
    response = await signed_post(http, STARTED, **kwargs)
    assert response.status_code == status and response.json()["detail"]
    assert manager.events == []


async def test_missing_field_is_422_naming_it(api):
    http, _, _ = api
    response = await signed_post(http, {"meeting_uuid": "m", "server_urls": "wss://x"})
    assert response.status_code == 422 and "rtms_stream_id" in response.json()["detail"]


async def test_unsigned_is_401_and_unhandled_is_200(api):
    http, _, manager = api
    assert (await http.post("/webhook", content=b"{}")).status_code == 401
    assert (await signed_post(http, {}, event="meeting.participant_joined")).status_code == 200
    assert manager.events == []


async def test_url_validation(api):
    http, _, _ = api
    response = await signed_post(http, {"plainToken": "abc"}, event="endpoint.url_validation")
    assert response.json() == url_validation_response(SECRET_TOKEN, "abc")


async def test_oversized_bodies_are_413(api):
    http, _, manager = api
    big = b"x" * (2 * 1024 * 1024)
    assert (await http.post("/webhook", content=big)).status_code == 413

    async def chunks():
        for _ in range(64):
            yield b"y" * 65536

    assert (await http.post("/webhook", content=chunks())).status_code == 413
    assert manager.events == []


async def test_secrets_never_reach_the_log(api, caplog):
    http, _, _ = api
    caplog.set_level(logging.DEBUG)
    await signed_post(http, STARTED, token="wrong")
    await signed_post(http, STARTED)
    text = caplog.text
    assert SECRET_TOKEN not in text and "v0=" not in text and "wss://localhost:1" not in text


async def test_meetings_detail_and_transcripts(api):
    http, store, _ = api
    uuid = store_cases.UUID  # contains "/", "+" and "="
    await store_cases.seed(store, uuid)
    await store.write_batch(segments=[store_cases.seg(i) for i in range(3)])
    enc = uuid.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")

    listing = (await http.get("/api/meetings")).json()["meetings"]
    assert [m["meeting_uuid"] for m in listing] == [uuid] and listing[0]["segment_count"] == 3
    assert (await http.get(f"/api/meetings/{enc}")).json()["meeting_uuid"] == uuid
    data = (await http.get(f"/api/meetings/{enc}/transcript")).json()
    assert data["meeting_uuid"] == uuid
    assert [s["text"] for s in data["segments"]] == [store_cases.seg(i).text for i in range(3)]
    for fmt, media, start in (("vtt", "text/vtt", "WEBVTT"), ("srt", "application/x-subrip", "1\n"),
                              ("txt", "text/plain", "[00:00:00]")):
        r = await http.get(f"/api/meetings/{enc}/transcript?format={fmt}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media) and r.text.startswith(start)
    assert (await http.get(f"/api/meetings/{enc}/transcript?format=doc")).status_code == 422
    assert (await http.get("/api/meetings/nope")).status_code == 404
    assert (await http.get("/api/meetings/nope/transcript")).status_code == 404


async def test_health_and_openapi(api):
    http, store, _ = api
    health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["store"] is True
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/webhook", "/healthz", "/api/meetings", "/api/meetings/{meeting_uuid}",
            "/api/meetings/{meeting_uuid}/transcript"} <= set(paths)
