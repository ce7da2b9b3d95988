"""`rtms-gateway serve` in a process of its own, fed by a simulator in the test's process:
what the tests of the command line, the lock, the logs and crash recovery share."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx

from rtms_gateway.simulator import Simulator, SimulatorConfig

from .gateway_harness import CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any gateway setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(settings)
    return env


async def simulator_for(port: int, **config: Any) -> Simulator:
    """A started simulator whose webhooks go to a gateway on `port`."""
    sim = Simulator(SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN,
                                    webhook_url=f"http://127.0.0.1:{port}/webhook", **config))
    await sim.start()
    return sim


def serve_env(sim: Simulator, tmp_path: Path, **settings: str) -> dict[str, str]:
    """A gateway's environment that trusts `sim` and shares its credentials."""
    return clean_env(ZOOM_CLIENT_ID=CLIENT_ID, ZOOM_CLIENT_SECRET=CLIENT_SECRET, ZOOM_SECRET_TOKEN=SECRET_TOKEN,
                     RTMS_CA_FILE=str(sim.write_ca(tmp_path / "ca.pem")), **settings)


async def start_serve(tmp_path: Path, port: int, env: dict[str, str], log: str = "gateway.log",
                      timeout: float = 20.0) -> asyncio.subprocess.Process:
    """`serve` on `port`, its stderr in `tmp_path/log`; returns once /healthz answers."""
    with open(tmp_path / log, "ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port), cwd=tmp_path, env=env, stderr=stderr)
    if not await eventually(lambda: _healthy(port), timeout):
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the gateway did not come up: {(tmp_path / log).read_text()[-2000:]}")
    return proc


async def health(port: int) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        body: dict[str, Any] = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        return body


async def no_stream_live(port: int) -> bool:
    return (await health(port))["streams_live"] == 0


async def _healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def eventually(check: Any, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Whether `check()` (sync or async) came true within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if loop.time() >= end:
            return False
        await asyncio.sleep(step)
