"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against `serve`
in its own process, fed by the simulator over loopback TLS."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtms_gateway.simulator import Simulator

from ..serve_process import free_port, serve_env, simulator_for, start_serve

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = Path(os.environ.get("RTMS_TEST_CHROMIUM", "/usr/bin/chromium"))
ADMIN_KEY = "dashboard-admin-key-0123456789abcdef"
# What the gateway asks the simulator for: audio for the players, the share for the strip;
# no video, which would cost the shared CPU an encoder.
MEDIA = "transcript,chat,audio,deskshare"


@dataclass
class Dashboard:
    base: str
    port: int
    sim: Simulator
    admin_key: str
    read_key: str
    tmp_path: Path

    def api(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, headers={"Authorization": f"Bearer {key or self.admin_key}"})


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    port = free_port()
    sim = await simulator_for(port)
    proc = None
    try:
        env = serve_env(sim, tmp_path, RTMS_API_KEYS=ADMIN_KEY, RTMS_MEDIA=MEDIA, RTMS_WEBHOOK_ALLOW_PRIVATE="true")
        proc = await start_serve(tmp_path, port, env)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            made = await http.post("/api/keys", json={"name": "viewer", "scope": "read"})
            assert made.status_code == 201, made.text
        yield Dashboard(base, port, sim, ADMIN_KEY, made.json()["key"], tmp_path)
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await sim.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=[*args, "--autoplay-policy=no-user-gesture-required"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: `RTMS_SCREENSHOTS_DIR` (`make screenshots` sets docs/screenshots),
    else the test's own directory."""
    chosen = os.environ.get("RTMS_SCREENSHOTS_DIR")
    where = Path(chosen) if chosen else tmp_path / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where
