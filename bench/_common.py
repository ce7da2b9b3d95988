"""What the benchmarks share: credentials, a free port, waiting for HTTP, percentiles."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx

from rtms_gateway.simulator import Simulator, SimulatorConfig

CLIENT_ID, CLIENT_SECRET, TOKEN = "bench-client", "bench-secret", "bench-token"
API_KEY = "bench-admin-api-key-000001"  # given to the gateways as RTMS_API_KEYS
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_http(url: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < end:
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"gateway did not come up at {url}")


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def simulator_for(workdir: Path, name: str, webhook_port: int | None) -> tuple[Simulator, Path, Path]:
    """A started simulator posting to the gateway on `webhook_port` (None: no webhooks),
    a fresh data folder `workdir/name`, and the simulator's CA written in it."""
    data = workdir / name
    data.mkdir()
    url = f"http://127.0.0.1:{webhook_port}/webhook" if webhook_port is not None else None
    sim = Simulator(SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=TOKEN,
                                    webhook_url=url, connect_timeout=120))
    await sim.start()
    return sim, data, sim.write_ca(data / "ca.pem")
