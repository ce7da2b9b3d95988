"""A signed webhook replayed after a restart reopens nothing: the deliveries taken and the
streams that ended are remembered in the store (sinks/delivery_memory.py), not only in the
process. The store's own cases are in store_cases.py::case_delivery_memory."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtms_gateway.gateway.service import Gateway, bind_socket, serve_http, stop_http
from rtms_gateway.protocol.constants import (
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MediaType,
    Product,
    StopReason,
)
from rtms_gateway.protocol.signature import webhook_signature
from rtms_gateway.simulator import Simulator, SimulatorConfig
from rtms_gateway.simulator.scenario import build_meeting
from rtms_gateway.simulator.webhook_sender import envelope
from rtms_gateway.sinks.store import Store
from rtms_gateway.webhooks.dedup import Deliveries

from . import postgres
from .gateway_harness import CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN, Running, make_settings

DATABASES = ["sqlite", pytest.param("postgres", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not postgres.URL, reason="RTMS_TEST_POSTGRES_URL is not set")])]


def signed(body: bytes) -> dict[str, str]:
    """Zoom's headers for `body`, signed now (valid for 5 minutes)."""
    stamp = str(int(time.time()))
    return {"content-type": "application/json", HEADER_TIMESTAMP: stamp,
            HEADER_SIGNATURE: webhook_signature(SECRET_TOKEN, stamp, body)}


async def deliver(run: Running, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(run.webhook_url, content=body, headers=headers)
    assert response.status_code == 200
    return response.json()


@contextlib.asynccontextmanager
async def gateway(data_dir: Path, simulator: Simulator, **env: Any) -> AsyncIterator[Running]:
    sock = bind_socket("127.0.0.1", 0)
    gw = await Gateway.open(make_settings(data_dir, **env))
    server = await serve_http(gw, sock)
    try:
        yield Running(gw, simulator, f"http://127.0.0.1:{sock.getsockname()[1]}", server)
    finally:
        await stop_http(server)
        await gw.close()


@pytest.mark.parametrize("database", DATABASES)
async def test_a_signed_start_replayed_after_a_restart_reopens_nothing(tmp_path, database):
    # The simulator posts no webhooks here: the test delivers them, and keeps their bytes.
    sim = Simulator(SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN))
    await sim.start()
    env = {"RTMS_CA_FILE": str(sim.write_ca(tmp_path / "ca.pem")), "RTMS_MEDIA": "transcript"}
    try:
        async with contextlib.AsyncExitStack() as stack:
            if database == "postgres":
                schema = await stack.enter_async_context(postgres.own_schema())
                env.update(RTMS_DATABASE_URL=postgres.URL, RTMS_DATABASE_SCHEMA=schema)
            handle = sim.start_meeting(build_meeting(31, 0, duration_s=3.0, offered=MediaType.TRANSCRIPT))
            started = envelope(Product.MEETING.started_event, handle.started_payload)
            started_headers = signed(started)
            async with gateway(tmp_path, sim, **env) as run:
                assert await deliver(run, started, started_headers) == {"status": "ok"}
                record = await handle.wait(30)
                stopped = envelope(Product.MEETING.stopped_event,
                                   handle.script.stopped_payload(int(StopReason.MEETING_ENDED)))
                assert await deliver(run, stopped, signed(stopped)) == {"status": "ok"}
                await run.settle()
            assert record.outcome == "completed" and record.sent.transcripts > 0

            async with gateway(tmp_path, sim, **env) as run:  # the same data dir and database
                # The very bytes and signature, still inside Zoom's 5-minute window.
                assert await deliver(run, started, started_headers) == {"status": "duplicate"}
                assert run.gateway.manager.health()["streams_live"] == 0
                # A new delivery of the start (Zoom's later copy) for the stream that ended.
                late = envelope(Product.MEETING.started_event, handle.started_payload,
                                event_ts=time.time_ns() // 1_000_000 + 1)
                assert await deliver(run, late, signed(late)) == {"status": "ok"}
                assert run.gateway.manager.health()["streams_live"] == 0  # nothing was started
                meeting = await run.gateway.store.get_meeting(handle.script.owner_id)
                stream = await run.gateway.store.stream(handle.script.rtms_stream_id)
                transcript = await run.gateway.store.transcript(handle.script.owner_id)
    finally:
        await sim.stop()
    assert sim.stray_handshakes == []  # the simulator saw no new connection
    assert [h.socket for h in record.handshakes].count("signaling") == 1
    assert meeting.state == "stopped" and stream.state == "stopped"
    assert [s.text for s in transcript] == [t.data for t in record.transcripts]


async def test_when_the_store_cannot_answer_a_delivery_is_taken_and_said_so(tmp_path, caplog):
    """This process's memory still catches a retry; the store's is skipped, with a line."""
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    deliveries = Deliveries(store.memory)
    key = ("StreamStarted", "s1", 1_700_000_000_123)
    assert not await deliveries.seen(key, 1_000.0)
    await store.close()  # the store is away from here on
    caplog.set_level(logging.WARNING, logger="rtms_gateway.webhooks.dedup")
    assert await deliveries.seen(key, 1_001.0)  # a retry: this process remembers
    other = ("StreamStarted", "s2", 1_700_000_000_456)
    assert not await deliveries.seen(other, 1_002.0)  # taken
    assert "stream s2: the store cannot say whether it was taken before (StoreUnavailable); acting on it" \
        in caplog.text
    await deliveries.forget(other)  # and forgetting goes on in this process
    assert not await deliveries.seen(other, 1_003.0)
