"""API keys: every route but the webhook, /healthz and the docs needs one; scopes; the
first key a gateway makes for itself; the `keys` commands."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys

import httpx
import pytest
from fastapi import HTTPException

from rtms_gateway.api.app import create_app
from rtms_gateway.api.auth import OUTAGE_GRACE_S, Authenticator, Principal
from rtms_gateway.gateway.service import Gateway
from rtms_gateway.protocol.errors import StoreUnavailable
from rtms_gateway.sinks.keys import KEY_FILE, ApiKey, Scope, key_hash, read_key_file
from rtms_gateway.sinks.store import Store

from .gateway_harness import API_KEY, GatewayWithSimulator, make_settings

OPEN_ROUTES = {"/webhook", "/healthz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}


class IdleManager:
    async def handle(self, event):
        pass

    def health(self):
        return {"streams_live": 0}

    def metrics(self):
        return {"streams_live": 0}


@pytest.fixture
async def gateway_app(tmp_path):
    """`build(**env)` -> (app, client without a key, store), over a real SQLite store."""
    stores, clients = [], []

    async def build(**env):
        store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
        stores.append(store)
        app = create_app(make_settings(tmp_path, **env), store=store, manager=IdleManager(), keys=store.keys)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        clients.append(http)
        return app, http, store

    yield build
    for http in clients:
        await http.aclose()
    for store in stores:
        await store.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def guarded_routes(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(method, concrete path) for every route the app documents that is not open to all."""
    out = []
    for path, operations in (await http.get("/openapi.json")).json()["paths"].items():
        if path in OPEN_ROUTES:
            continue
        path = re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) == "{file_id}" else "x", path)
        out.extend((method.upper(), path) for method in operations)
    return out


async def test_every_route_but_the_open_ones_refuses_a_request_without_a_valid_key(gateway_app):
    _, http, _ = await gateway_app()
    routes = await guarded_routes(http)
    assert ("GET", "/api/media/1") in routes and ("GET", "/metrics") in routes and ("POST", "/api/keys") in routes
    for method, path in routes:
        for headers in ({}, bearer("not-a-key-at-all-000"), {"Authorization": f"Basic {API_KEY}"}):
            response = await http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/openapi.json")).status_code == 200


async def test_a_configured_key_reads_and_administers(gateway_app):
    _, http, _ = await gateway_app()
    assert (await http.get("/api/meetings", headers=bearer(API_KEY))).json() == {"meetings": []}
    assert (await http.get("/metrics", headers=bearer(API_KEY))).status_code == 200
    assert (await http.get("/api/keys", headers=bearer(API_KEY))).json() == {"keys": []}


async def test_stored_keys_have_scopes_and_a_revoked_key_is_refused_at_once(gateway_app):
    _, http, store = await gateway_app()
    admin = bearer(API_KEY)
    made = await http.post("/api/keys", json={"name": "dashboard", "scope": "read"}, headers=admin)
    assert made.status_code == 201 and made.json()["key"].startswith("rtms_")
    reader = bearer(made.json()["key"])
    assert (await http.get("/api/meetings", headers=reader)).status_code == 200
    refused = await http.get("/api/keys", headers=reader)
    assert refused.status_code == 403 and 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert (await http.post("/api/keys", json={"name": "dashboard"}, headers=admin)).status_code == 409
    listed = (await http.get("/api/keys", headers=admin)).json()["keys"]
    assert [(k["name"], k["scope"]) for k in listed] == [("dashboard", "read")]
    assert made.json()["key"] not in str(listed) and listed[0]["last_used_at_ms"] is not None

    ops_key = await store.keys.create("ops", Scope.ADMIN)
    assert (await http.get("/api/keys", headers=bearer(ops_key))).status_code == 200
    assert (await http.delete("/api/keys/dashboard", headers=bearer(ops_key))).status_code == 204
    after = await http.get("/api/meetings", headers=reader)
    assert after.status_code == 401 and 'error="invalid_token"' in after.headers["www-authenticate"]
    assert (await http.delete("/api/keys/dashboard", headers=admin)).status_code == 404
    # The name is free again once revoked.
    assert (await http.post("/api/keys", json={"name": "dashboard"}, headers=admin)).status_code == 201


async def test_metrics_can_be_made_public(gateway_app):
    _, http, _ = await gateway_app(RTMS_METRICS_PUBLIC="true")
    response = await http.get("/metrics")
    assert response.status_code == 200 and "rtms_streams_live" in response.text
    assert (await http.get("/api/meetings")).status_code == 401


async def test_refusals_are_counted_and_never_log_the_key(gateway_app, caplog):
    _, http, _ = await gateway_app()
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        await http.get("/api/meetings", headers=bearer("rtms_wrong-key-that-is-long-enough"))
    metrics = (await http.get("/metrics", headers=bearer(API_KEY))).text
    assert re.search(r"^rtms_api_requests_refused_total 3\.0$", metrics, re.M)
    assert "wrong-key" not in caplog.text and API_KEY not in caplog.text


async def test_the_openapi_document_declares_the_scheme_and_docs_need_no_cdn(gateway_app):
    _, http, _ = await gateway_app()
    spec = (await http.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    assert spec["paths"]["/api/meetings"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in spec["paths"]["/webhook"]["post"] and "security" not in spec["paths"]["/healthz"]["get"]
    page = (await http.get("/docs")).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert (await http.get(asset)).status_code == 200, asset
    assert "cdn" not in page.lower()


async def test_the_first_gateway_without_keys_makes_an_admin_key_in_a_private_file(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, RTMS_API_KEYS="")
    gateway = await Gateway.open(settings)
    try:
        key = read_key_file(tmp_path)
        assert key is not None and key.startswith("rtms_")
        assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
        assert str((tmp_path / KEY_FILE).resolve()) in caplog.text and key not in caplog.text
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw")
        async with http:
            assert (await http.get("/api/keys", headers=bearer(key))).status_code == 200
            assert (await http.get("/api/keys")).status_code == 401
    finally:
        await gateway.close()
    again = await Gateway.open(settings)  # keys exist now: nothing new is made
    try:
        assert read_key_file(tmp_path) == key and len(await again.store.keys.list()) == 1
    finally:
        await again.close()


async def test_a_recording_is_not_served_without_a_key_over_real_http(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        async with httpx.AsyncClient(base_url=run.base_url, timeout=10) as anonymous:
            assert (await anonymous.get("/api/media/1")).status_code == 401
            assert (await anonymous.get("/api/meetings")).status_code == 401
        async with run.http() as http:
            assert (await http.get("/api/media/1")).status_code == 404


def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env["RTMS_DATA_DIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", "rtms_gateway", "keys", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


async def test_keys_commands_create_list_and_revoke(tmp_path):
    made = _cli(tmp_path, "create", "--name", "reporting", "--read-only")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("rtms_") and "\n" not in key and "not shown again" in made.stderr
    listed = _cli(tmp_path, "list")
    assert listed.returncode == 0 and "reporting" in listed.stdout and "read" in listed.stdout
    assert key[:12] in listed.stdout and key not in listed.stdout
    assert _cli(tmp_path, "create", "--name", "reporting").returncode == 1
    assert _cli(tmp_path, "create", "--name", "bad name!").returncode == 2

    store = await Store.open(f"sqlite:///{tmp_path / 'rtms.sqlite3'}")
    try:
        app = create_app(make_settings(tmp_path, RTMS_API_KEYS=""), store=store, manager=IdleManager(),
                         keys=store.keys)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
            assert (await http.get("/api/meetings", headers=bearer(key))).status_code == 200
            assert (await http.get("/api/keys", headers=bearer(key))).status_code == 403
            revoked = _cli(tmp_path, "revoke", "reporting")
            assert revoked.returncode == 0, revoked.stderr
            assert (await http.get("/api/meetings", headers=bearer(key))).status_code == 401
    finally:
        await store.close()
    assert _cli(tmp_path, "revoke", "reporting").returncode == 1


class FlakyKeys:
    """A key store that answers, then is away."""

    def __init__(self, key: str):
        self.hashed, self.away = key_hash(key), False

    async def find(self, hashed):
        if self.away:
            raise StoreUnavailable("the database is away")
        return ApiKey(name="ops", scope=Scope.READ, shown="rtms_x", created_at_ms=1) if hashed == self.hashed else None


async def test_while_the_store_is_away_a_recently_confirmed_key_still_opens_and_others_get_503():
    now = [1000.0]
    keys = FlakyKeys("rtms_known-key-000000000000")
    auth = Authenticator([], keys, clock=lambda: now[0])
    assert await auth.principal("rtms_known-key-000000000000") == Principal("ops", Scope.READ)
    keys.away = True
    now[0] += OUTAGE_GRACE_S - 1
    assert await auth.principal("rtms_known-key-000000000000") == Principal("ops", Scope.READ)
    with pytest.raises(HTTPException) as never_seen:
        await auth.principal("rtms_other-key-000000000000")
    assert never_seen.value.status_code == 503
    now[0] += 2  # past the grace: the store must confirm it again
    with pytest.raises(HTTPException):
        await auth.principal("rtms_known-key-000000000000")
