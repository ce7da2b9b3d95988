"""Shared fixtures: a running RTMS simulator on loopback (TLS, throwaway CA) and the
independent test client that drives it through its webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rtms_gateway.simulator import Simulator, SimulatorConfig
from tests.peers.minimal_client import MinimalClient

CLIENT_ID = "sim-test-client-id"
CLIENT_SECRET = "sim-test-client-secret"
SECRET_TOKEN = "sim-test-secret-token"


@pytest.fixture
def credentials() -> dict[str, str]:
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "secret_token": SECRET_TOKEN}


@pytest.fixture
async def start_simulator() -> AsyncIterator[Callable[..., Awaitable[Simulator]]]:
    """`await start_simulator(**SimulatorConfig overrides)`: started now, stopped at teardown."""
    started: list[Simulator] = []

    async def factory(**overrides: Any) -> Simulator:
        options: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                   "secret_token": SECRET_TOKEN, "connect_timeout": 10.0}
        options.update(overrides)
        sim = Simulator(SimulatorConfig(**options))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim_and_client(
    start_simulator: Callable[..., Awaitable[Simulator]],
) -> AsyncIterator[Callable[..., Awaitable[tuple[Simulator, MinimalClient]]]]:
    """`await sim_and_client(sim={...config overrides}, **MinimalClient options)`: a client
    whose webhook URL the simulator posts to, trusting the simulator's CA."""
    clients: list[MinimalClient] = []

    async def factory(sim: dict[str, Any] | None = None, **client_options: Any) -> tuple[Simulator, MinimalClient]:
        client = MinimalClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN,
                               **client_options)
        clients.append(client)
        url = await client.start()
        simulator = await start_simulator(webhook_url=url, **(sim or {}))
        client.ca = simulator.ca_pem
        return simulator, client

    yield factory
    for client in clients:
        await client.close()
