"""What the benchmarks share: credentials, a free port, waiting for HTTP, percentiles, the
gateway's metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx

from rtms_gateway.simulator import Simulator, SimulatorConfig
from rtms_gateway.simulator.pacer import SLOTS as PACER_SLOTS

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


async def simulator_for(workdir: Path, name: str, webhook_port: int | None,
                        pacer_slots: int = PACER_SLOTS) -> tuple[Simulator, Path, Path]:
    """A started simulator posting to the gateway on `webhook_port` (None: no webhooks),
    a fresh data folder `workdir/name`, and the simulator's CA written in it
    (`pacer_slots=1`: every meeting sends on the same beat)."""
    data = workdir / name
    data.mkdir()
    url = f"http://127.0.0.1:{webhook_port}/webhook" if webhook_port is not None else None
    sim = Simulator(SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=TOKEN,
                                    webhook_url=url, connect_timeout=120,
                                    pacer_slots=pacer_slots))
    await sim.start()
    return sim, data, sim.write_ca(data / "ca.pem")


async def metrics(port: int) -> dict[str, float]:
    """The gateway's /metrics, sample by sample."""
    async with httpx.AsyncClient(headers=AUTH) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def histogram_quantile(before: dict[str, float], after: dict[str, float], name: str, q: float) -> float:
    """The q-quantile (in the histogram's unit) of what `name` observed between two scrapes:
    the upper bound of the bucket it falls in (NaN if it observed nothing)."""
    prefix = f'{name}_bucket{{le="'
    bounds = sorted((float(key[len(prefix):-2]), after[key] - before.get(key, 0.0))
                    for key in after if key.startswith(prefix))
    total = bounds[-1][1] if bounds else 0.0
    for bound, count in bounds:
        if total and count >= q * total:
            return bound
    return float("nan")
