"""The HTTP app over a real SQLite store; the manager records what it is handed."""

import json
import logging
import time
from dataclasses import asdict, dataclass, field

import httpx
import pytest

from rtms_gateway.api.app import create_app
from rtms_gateway.protocol.constants import Product
from rtms_gateway.protocol.signature import url_validation_response, webhook_signature
from rtms_gateway.sinks.cursors import Cursored, format_cursor
from rtms_gateway.sinks.exports import iso_utc
from rtms_gateway.sinks.store import Store
from rtms_gateway.webhooks.events import StreamInterrupted, StreamStarted, StreamStopped

from . import store_cases
from .gateway_harness import AUTH, SECRET_TOKEN, make_settings
from .stores import DATABASES, a_store


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
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=AUTH) as http:
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
    http, _, _ = api
    health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["store"] is True
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/webhook", "/healthz", "/api/meetings", "/api/meetings/{meeting_uuid}",
            "/api/meetings/{meeting_uuid}/transcript"} <= set(paths)


# ---- route shapes over an in-memory store -------------------------------------------------

FAKE_UUID = "ab/c+d=="
ENCODED = "ab%2Fc%2Bd%3D%3D"
NOW = 1_800_000_000


@dataclass
class FakeMeeting:
    meeting_uuid: str
    topic: str = "demo"

    def to_dict(self):
        return asdict(self)


@dataclass
class FakeSegment:
    meeting_uuid: str = FAKE_UUID
    rtms_stream_id: str = "s1"
    user_id: int = 16778240
    user_name: str = "Ada"
    text: str = "hello there"
    timestamp: int = 1_700_000_000_000
    start_time: int | None = 1_700_000_000_000
    end_time: int | None = 1_700_000_001_500
    language: int | None = 9
    attribute: int = 0
    received_at_ms: int = 1_700_000_000_100
    speaker_inferred: bool = False
    raw: dict | None = None


@dataclass
class FakeStore:
    meetings: dict = field(default_factory=lambda: {FAKE_UUID: FakeMeeting(FAKE_UUID)})
    segments: dict = field(default_factory=lambda: {FAKE_UUID: [FakeSegment(), FakeSegment(
        text="second", timestamp=1_700_000_002_000, start_time=1_700_000_002_000, end_time=1_700_000_003_000)]})
    healthy: object = True
    calls: list = field(default_factory=list)

    async def list_meetings(self, limit, offset):
        self.calls.append((limit, offset))
        return list(self.meetings.values())[offset:offset + limit]

    async def get_meeting(self, uuid):
        return self.meetings.get(uuid)

    async def transcript(self, uuid):
        return self.segments.get(uuid, [])

    async def transcript_page(self, uuid, *, after=None, limit=None):
        rows = [Cursored(n, s) for n, s in enumerate(self.segments.get(uuid, []), 1)]
        if limit is None:
            return rows
        return [row for row in rows if row.seq > (after or 0)][:limit]

    async def ping(self):
        if isinstance(self.healthy, Exception):
            raise self.healthy
        return self.healthy


class FlakyManager(RecordingManager):
    def __init__(self, failures=0):
        super().__init__()
        self.failures = failures

    async def handle(self, event):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("manager is down")
        await super().handle(event)


@pytest.fixture
async def fake(tmp_path):
    """`fake(store=..., manager=..., clock=..., **env)` -> (client, store, manager)."""
    clients = []

    def build(store=None, manager=None, clock=time.time, **env):
        store = store or FakeStore()
        manager = manager or RecordingManager()
        app = create_app(make_settings(tmp_path, **env), store=store, manager=manager, clock=clock)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://gw", headers=AUTH)
        clients.append(http)
        return http, store, manager

    yield build
    for http in clients:
        await http.aclose()


def signed_headers(body, *, ts, token=SECRET_TOKEN):
    return {"x-zm-request-timestamp": str(ts), "x-zm-signature": webhook_signature(token, ts, body),
            "x-zm-trackingid": "track-123"}


@pytest.mark.parametrize("mutate, why", [
    (lambda h: {}, "missing x-zm-request-timestamp"),
    (lambda h: {k: v for k, v in h.items() if k != "x-zm-signature"}, "missing x-zm-signature"),
    (lambda h: {**h, "x-zm-request-timestamp": str(NOW - 301)}, "window"),
    (lambda h: {**h, "x-zm-request-timestamp": str(NOW + 301)}, "window"),
    (lambda h: {**h, "x-zm-request-timestamp": "soon"}, "not a number"),
    (lambda h: {**h, "x-zm-signature": "v0=" + "0" * 64}, "does not match"),
])
async def test_webhook_verification_over_http(fake, caplog, mutate, why):
    http, _, manager = fake(clock=lambda: NOW)
    raw = json.dumps({"event": "meeting.rtms_started", "event_ts": 1, "payload": STARTED}).encode()
    caplog.set_level(logging.WARNING, logger="rtms_gateway.api.app")
    response = await http.post("/webhook", content=raw, headers=mutate(signed_headers(raw, ts=NOW)))
    assert response.status_code == 401 and why in response.json()["detail"]
    assert manager.events == []
    [record] = [r for r in caplog.records if r.name == "rtms_gateway.api.app"]
    assert record.levelno == logging.WARNING and "401" in record.getMessage()


async def test_empty_secret_token_rejects_even_url_validation(fake):
    http, _, _ = fake(clock=lambda: NOW, ZOOM_SECRET_TOKEN="")
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "p"}}).encode()
    response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW, token=""))
    assert response.status_code == 401


async def test_url_validation_answer_is_exact(fake):
    http, _, manager = fake(clock=lambda: NOW)
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}).encode()
    response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))
    assert response.status_code == 200
    assert response.json() == url_validation_response(SECRET_TOKEN, "qgg8vlvZRS6UYooatFL8Aw")
    assert set(response.json()) == {"plainToken", "encryptedToken"} and manager.events == []
    unsigned = await http.post("/webhook", content=raw)
    assert unsigned.status_code == 401


@pytest.mark.parametrize("raw, status, field", [
    (b"{nope", 400, "JSON"),
    (b"[]", 400, "object"),
    (b'{"payload": {}}', 400, "event"),
    (json.dumps({"event": "meeting.rtms_started", "payload": {"meeting_uuid": "m", "server_urls": "w"}}).encode(),
     422, "rtms_stream_id"),
])
async def test_malformed_bodies_over_http(fake, caplog, raw, status, field):
    http, _, manager = fake(clock=lambda: NOW)
    caplog.set_level(logging.WARNING)
    response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))
    assert response.status_code == status and field in response.json()["detail"]
    assert manager.events == []
    assert "track-123" in caplog.text


@pytest.mark.parametrize("product", list(Product))
async def test_every_product_reaches_the_manager(fake, product):
    http, _, manager = fake(clock=lambda: NOW)
    ids = {product.id_key: "id/1", "rtms_stream_id": "s1"}
    for name, payload in ((product.started_event, {**ids, "server_urls": "wss://x"}),
                          (product.interrupted_event, ids),
                          (product.stopped_event, {**ids, "stop_reason": 6})):
        raw = json.dumps({"event": name, "event_ts": 5, "payload": payload}).encode()
        response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert [type(e) for e in manager.events] == [StreamStarted, StreamInterrupted, StreamStopped]
    assert {e.product for e in manager.events} == {product}
    assert {e.owner_id for e in manager.events} == {"id/1"}


async def test_duplicate_reaches_manager_once_and_failed_delivery_is_retried(fake):
    http, _, manager = fake(manager=FlakyManager(failures=1), clock=lambda: NOW)
    raw = json.dumps({"event": "meeting.rtms_started", "event_ts": 9, "payload": STARTED}).encode()
    failed = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))
    assert failed.status_code == 500 and manager.events == []
    for expected in ("ok", "duplicate", "duplicate"):
        # a retry carries a fresh timestamp and signature but the same business key
        response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW - 1))
        assert response.json() == {"status": expected}
    assert len(manager.events) == 1


async def test_unhandled_event_is_200_and_logged_at_debug(fake, caplog):
    http, _, manager = fake(clock=lambda: NOW)
    caplog.set_level(logging.DEBUG, logger="rtms_gateway.api.app")
    raw = json.dumps({"event": "meeting.participant_joined", "payload": {"x": 1}}).encode()
    response = await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))
    assert response.status_code == 200 and manager.events == []
    assert any(r.levelno == logging.DEBUG and "meeting.participant_joined" in r.getMessage()
               for r in caplog.records)


async def test_nothing_secret_is_logged_at_debug(fake, caplog):
    http, _, _ = fake(clock=lambda: NOW)
    caplog.set_level(logging.DEBUG)
    raw = json.dumps({"event": "meeting.rtms_started", "event_ts": 1,
                      "payload": {**STARTED, "rtms_stream_id": "private-s"}}).encode()
    headers = signed_headers(raw, ts=NOW)
    bad = {**headers, "x-zm-signature": webhook_signature("wrong", NOW, raw)}
    for h in (headers, bad, {**headers, "x-zm-request-timestamp": "1"}):
        await http.post("/webhook", content=raw, headers=h)
    await http.post("/webhook", content=b"{secret-body", headers=signed_headers(b"{secret-body", ts=NOW))
    text = caplog.text
    for forbidden in (SECRET_TOKEN, headers["x-zm-signature"], bad["x-zm-signature"], "v0=",
                      "secret-body", "wss://localhost:1"):
        assert forbidden not in text


async def test_oversized_bodies_stop_being_read(fake):
    http, _, manager = fake(clock=lambda: NOW)
    big = b"x" * (2 * 1024 * 1024)
    response = await http.post("/webhook", content=big, headers=signed_headers(big, ts=NOW))
    assert response.status_code == 413
    sent = []

    async def chunks():
        for i in range(32):
            sent.append(i)
            yield b"y" * 65536

    response = await http.post("/webhook", content=chunks(), headers=signed_headers(b"", ts=NOW))
    assert response.status_code == 413 and manager.events == []
    assert len(sent) < 32  # the app stopped reading just past 1 MiB
    exact = b" " * (1024 * 1024)
    response = await http.post("/webhook", content=exact, headers=signed_headers(exact, ts=NOW))
    assert response.status_code == 400  # at the limit: read, verified, then not JSON


async def test_configured_webhook_path(fake):
    http, _, _ = fake(clock=lambda: NOW, WEBHOOK_PATH="hooks/zoom")
    raw = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "p"}}).encode()
    assert (await http.post("/hooks/zoom", content=raw, headers=signed_headers(raw, ts=NOW))).status_code == 200
    assert (await http.post("/webhook", content=raw, headers=signed_headers(raw, ts=NOW))).status_code in (404, 405)


async def test_health_ok_and_degraded(fake):
    http, store, _ = fake()
    ok = await http.get("/healthz")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "store": True, "streams_live": 0})
    store.healthy = False
    assert (await http.get("/healthz")).status_code == 503
    store.healthy = ConnectionError("db gone")
    degraded = await http.get("/healthz")
    assert degraded.status_code == 503
    assert degraded.json() == {"status": "degraded", "store": False, "streams_live": 0}


async def test_listing_and_detail_with_encoded_uuid(fake):
    http, store, _ = fake()
    assert (await http.get("/api/meetings")).json() == {"meetings": [{"meeting_uuid": FAKE_UUID, "topic": "demo"}]}
    assert (await http.get("/api/meetings?limit=5&offset=1")).json() == {"meetings": []}
    assert store.calls[-1] == (5, 1)
    assert (await http.get("/api/meetings?limit=0")).status_code == 422
    detail = await http.get(f"/api/meetings/{ENCODED}")
    assert (detail.status_code, detail.json()["meeting_uuid"]) == (200, FAKE_UUID)
    missing = await http.get("/api/meetings/no%2Fsuch%3D")
    assert missing.status_code == 404 and "no/such=" in missing.json()["detail"]


async def test_transcript_json_shape(fake):
    http, _, _ = fake()
    response = await http.get(f"/api/meetings/{ENCODED}/transcript")
    assert response.status_code == 200
    data = response.json()
    assert data["meeting_uuid"] == FAKE_UUID
    assert data["segments"][0] == {
        "cursor": format_cursor(1), "user_id": 16778240, "user_name": "Ada", "text": "hello there",
        "start_time": 1_700_000_000_000, "end_time": 1_700_000_001_500,
        "timestamp": 1_700_000_000_000, "language": 9, "rtms_stream_id": "s1",
        "speaker_inferred": False,
        "start_time_iso": "2023-11-14T22:13:20.000Z", "end_time_iso": "2023-11-14T22:13:21.500Z",
        "timestamp_iso": "2023-11-14T22:13:20.000Z"}
    assert data["next"] is None
    assert [s["text"] for s in data["segments"]] == ["hello there", "second"]
    assert (await http.get(f"/api/meetings/{ENCODED}/transcript?format=json")).json() == data
    assert (await http.get("/api/meetings/nope/transcript")).status_code == 404
    assert (await http.get("/api/meetings/nope/transcript?format=vtt")).status_code == 404
    assert (await http.get(f"/api/meetings/{ENCODED}/transcript?format=docx")).status_code == 422


@pytest.mark.parametrize("fmt, media", [("txt", "text/plain"), ("vtt", "text/vtt"),
                                        ("srt", "application/x-subrip")])
async def test_transcript_text_formats(fake, fmt, media):
    from rtms_gateway.sinks import exports
    http, _, _ = fake()
    response = await http.get(f"/api/meetings/{ENCODED}/transcript?format={fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.headers["content-type"].split(";")[0] == exports.TRANSCRIPT_FORMATS[fmt].split(";")[0]
    assert "hello there" in response.text and "second" in response.text
    if fmt == "vtt":
        assert response.text.startswith("WEBVTT")


async def test_openapi_documents_every_route(fake):
    http, _, _ = fake()
    spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/webhook", "/healthz", "/api/meetings", "/api/meetings/{meeting_uuid}",
            "/api/meetings/{meeting_uuid}/transcript"} <= set(paths)
    operations = [op for path in paths.values() for op in path.values()]
    assert all(op.get("summary") for op in operations)
    assert {"401", "413", "400", "422"} <= set(paths["/webhook"]["post"]["responses"])
    params = {p["name"] for p in paths["/api/meetings/{meeting_uuid}/transcript"]["get"]["parameters"]}
    assert params == {"meeting_uuid", "format", "after", "limit"}


async def test_a_store_that_is_away_answers_503(api):
    http, store, _ = api
    await store_cases.seed(store)
    assert (await http.get("/api/meetings")).status_code == 200
    await store.close()  # every store call is StoreUnavailable from here on
    response = await http.get("/api/meetings")
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
    assert (await http.get(f"/api/meetings/{store_cases.UUID.replace('/', '%2F')}/transcript")).status_code == 503


async def test_a_media_file_is_served_only_from_inside_the_data_dir(tmp_path):
    import os

    from rtms_gateway.sinks.records import MediaFile

    data = tmp_path / "data"
    (data / "m%3D%3D").mkdir(parents=True)
    (data / "m%3D%3D" / "s-audio-mixed.wav").write_bytes(b"RIFF as an earlier version named it")
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"RIFF not the gateway's to serve")
    os.symlink(outside, data / "link.wav")
    paths = {"inside": "m%3D%3D/s-audio-mixed.wav", "up": "../outside.wav", "absolute": str(outside),
             "symlink": "link.wav", "nul": "m%3D%3D/s\x00.wav", "root": "."}
    store = await Store.open(f"sqlite:///{data / 'rtms.sqlite3'}")
    try:
        for user_id, path in enumerate(paths.values()):
            await store.upsert_media_file(MediaFile(
                meeting_uuid="m==", rtms_stream_id="s", kind="audio", user_id=user_id + 1, user_name=None,
                codec="l16", format="wav", path=path, origin_ms=0, complete=True))
        ids = {f.path: f.id for f in await store.media_files("m==")}
        app = create_app(make_settings(data), store=store, manager=RecordingManager())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                     headers=AUTH) as http:
            got = {name: await http.get(f"/api/media/{ids[path]}") for name, path in paths.items()}
    finally:
        await store.close()
    assert got["inside"].status_code == 200 and got["inside"].content == b"RIFF as an earlier version named it"
    for name in ("up", "absolute", "symlink", "nul", "root"):
        assert got[name].status_code == 404, name
        assert b"not the gateway's" not in got[name].content


# ---- times: every ms field with its ISO-8601 twin, over a real store on each database ------

_NAMED_TIMES = {"timestamp", "start_time", "end_time", "joins", "leaves"}


def _times(value, where=""):
    """Every field holding a time in ms, with the object holding it: (path, object, name)."""
    found = []
    if isinstance(value, dict):
        for name, inner in value.items():
            if (name.endswith("_ms") or name in _NAMED_TIMES) and name != "talk_time_ms":
                found.append((f"{where}.{name}", value, name))
            found += _times(inner, f"{where}.{name}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            found += _times(inner, f"{where}[{n}]")
    return found


@pytest.mark.parametrize("database", DATABASES)
async def test_every_time_in_ms_comes_with_its_utc_iso_twin(database, tmp_path):
    from rtms_gateway.protocol.constants import EventType
    from rtms_gateway.sinks.keys import Scope
    from rtms_gateway.sinks.records import MediaFile, TimelineEvent

    async with a_store(database, tmp_path) as opened:
        store = opened.store
        await store_cases.seed(store)
        joined = TimelineEvent(meeting_uuid=store_cases.UUID, rtms_stream_id="stream-a",
                               event_type=EventType.PARTICIPANT_JOIN, timestamp=1_700_000_000_000,
                               user_id=1, user_name="Ann")
        await store.write_batch(segments=[store_cases.seg(i) for i in range(3)],
                                chats=[store_cases.chat_msg()], events=[joined])
        await store.upsert_media_file(MediaFile(
            meeting_uuid=store_cases.UUID, rtms_stream_id="stream-a", kind="audio", user_id=0,
            user_name=None, codec="l16", format="wav", path="x/a.wav", origin_ms=1_700_000_000_000))
        await store.keys.create("reader", Scope.READ)
        app = create_app(make_settings(tmp_path), store=store, manager=RecordingManager(),
                         keys=store.keys)
        checked = 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                     headers=AUTH) as http:
            meeting = f"/api/meetings/{store_cases.UUID.replace('/', '%2F')}"
            for path in ("/api/meetings", meeting, f"{meeting}/transcript", f"{meeting}/chat",
                         f"{meeting}/events", f"{meeting}/participants", f"{meeting}/media",
                         "/api/keys", "/api/search?q=segment"):
                body = (await http.get(path)).json()
                for where, holder, name in _times(body):
                    twin = name.removesuffix("_ms") + "_iso"
                    value = holder[name]
                    expected = [iso_utc(v) for v in value] if isinstance(value, list) \
                        else iso_utc(value)
                    assert holder.get(twin, "absent") == expected, (path, where)
                    checked += 1
        assert checked > 30
