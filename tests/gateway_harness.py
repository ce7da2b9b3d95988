"""A real gateway (store on a SQLite file, HTTP on loopback) wired to a real simulator."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rtms_gateway.config import Settings
from rtms_gateway.gateway.service import Gateway, bind_socket, serve_http, stop_http
from rtms_gateway.protocol.constants import ChatOperation
from rtms_gateway.simulator import Simulator, SimulatorConfig

CLIENT_ID = "gw-test-client-id"
CLIENT_SECRET = "gw-test-client-secret"
SECRET_TOKEN = "gw-test-secret-token"
API_KEY = "gw-test-admin-api-key-0001"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def make_settings(data_dir: Path, **env: Any) -> Settings:
    values: dict[str, Any] = {
        "ZOOM_CLIENT_ID": CLIENT_ID,
        "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
        "ZOOM_SECRET_TOKEN": SECRET_TOKEN,
        "RTMS_DATA_DIR": str(data_dir),
        "RTMS_DATABASE_URL": f"sqlite:///{data_dir / 'rtms.sqlite3'}",
        "RTMS_API_KEYS": API_KEY,
    }
    values.update(env)
    return Settings(_env_file=None, **values)


@dataclass
class Running:
    gateway: Gateway
    simulator: Simulator
    base_url: str
    server: Any

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.gateway.settings.webhook_path

    def http(self) -> httpx.AsyncClient:
        """A client of the gateway's API, with an admin key."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=10, headers=AUTH)

    async def settle(self, timeout: float = 20.0) -> None:
        """Until no stream runs and everything pending is committed."""
        await asyncio.wait_for(self.gateway.manager.wait_idle(), timeout)
        await asyncio.wait_for(self.gateway.pipeline.files_finished(), timeout)


class GatewayWithSimulator:
    """`async with GatewayWithSimulator(tmp_path) as run:` — simulator first (its CA is
    handed to the gateway as RTMS_CA_FILE), then the gateway's HTTP server, whose webhook
    URL the simulator posts to."""

    def __init__(self, data_dir: Path, *, simulator: dict[str, Any] | None = None, **env: Any) -> None:
        self.data_dir = data_dir
        self.sim_options = simulator or {}
        self.env = env
        self.running: Running | None = None

    async def __aenter__(self) -> Running:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sock = bind_socket("127.0.0.1", 0)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        options: dict[str, Any] = {
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "secret_token": SECRET_TOKEN,
            "webhook_url": base + "/webhook", "connect_timeout": 15.0,
        }
        options.update(self.sim_options)
        simulator = Simulator(SimulatorConfig(**options))
        await simulator.start()
        if simulator.ca_pem is not None:  # plain ws:// (tls=False) has no CA
            self.env.setdefault("RTMS_CA_FILE", str(simulator.write_ca(self.data_dir / "sim-ca.pem")))
        settings = make_settings(self.data_dir, **self.env)
        gateway = await Gateway.open(settings)
        server = await serve_http(gateway, sock)
        self.running = Running(gateway, simulator, base, server)
        return self.running

    async def __aexit__(self, *exc: object) -> None:
        assert self.running is not None
        await stop_http(self.running.server)
        await self.running.gateway.close()
        await self.running.simulator.stop()


def chat_as_it_stands(sent: Any) -> list[str]:
    """The texts of the chat messages the simulator sent (a record's `chat`), one per
    message as it stands once its updates and deletion apply ("" once deleted), in the
    order the messages were first sent: what the store lists."""
    texts: dict[object, str] = {}
    deleted: set[object] = set()
    for c in sent:
        key = c.message_id if c.message_id is not None else id(c)
        if c.operation_type == ChatOperation.DELETE:
            deleted.add(key)
            texts[key] = ""
        elif key not in deleted:
            texts[key] = str(c.data)
    return list(texts.values())

