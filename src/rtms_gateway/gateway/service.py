"""Assembles one gateway from Settings: store, pipeline, stream manager, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from ..client.connection import TlsTrust
from ..config import Settings
from ..sinks.store import Store
from ..webhooks.dedup import Deliveries
from .manager import Credentials, StreamManager
from .pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    store: Store
    pipeline: Pipeline
    manager: StreamManager
    app: Any

    @classmethod
    async def open(cls, settings: Settings) -> Gateway:
        from ..api.app import create_app
        from .recovery import recover

        if not settings.zoom_client_id or not settings.zoom_client_secret.get_secret_value():
            raise SystemExit("ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET must be set (env or .env)")
        if not settings.zoom_secret_token.get_secret_value():
            raise SystemExit("ZOOM_SECRET_TOKEN must be set: every webhook is verified with it")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(settings.resolved_database_url, pg_schema=settings.database_schema)
        pipeline = Pipeline(store, data_dir=settings.data_dir)
        manager = StreamManager(
            credentials=Credentials(settings.zoom_client_id, settings.zoom_client_secret.get_secret_value()),
            media=settings.media_types,
            pipeline=pipeline,
            tls=TlsTrust(settings.ca_file),
            media_params=settings.media_params,
            buffer_data=None if settings.buffer_data else False,
            reconnect_backoff=lambda: settings.backoff(settings.signaling_window_s),
            media_backoff=lambda: settings.backoff(settings.media_window_s),
            silence_limit=settings.silence_limit_s,
            ended_log=store.memory,
        )
        pipeline.pause, pipeline.resume = manager.pause_reading, manager.resume_reading
        pipeline.start()
        await recover(settings.data_dir, pipeline, manager, window_s=settings.signaling_window_s)
        live_media = pipeline.media.live if pipeline.media is not None else (lambda meeting_uuid: [])
        app = create_app(settings, store=store, manager=manager, live_media=live_media,
                         deliveries=Deliveries(store.memory))
        return cls(settings, store, pipeline, manager, app)

    async def close(self, timeout: float = 10.0) -> None:
        """Let go of live streams, commit what is pending, close the store."""
        await self.manager.shutdown(timeout)
        await self.pipeline.close()
        self.pipeline.live.close()
        await self.store.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving, so callers know the port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket names it, and without it every keep-alive response waits 40 ms
    # (Nagle against delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def serve_http(gateway: Gateway, sock: socket.socket, *, log_level: str = "warning") -> uvicorn.Server:
    """Start uvicorn on a bound socket; returns once it accepts connections."""
    config = uvicorn.Config(gateway.app, log_level=log_level, lifespan="off", access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    server._task = task  # type: ignore[attr-defined]
    return server


async def stop_http(server: uvicorn.Server) -> None:
    server.should_exit = True
    await server._task  # type: ignore[attr-defined]


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM once serving stops, which would end the process
    before the gateway drains; the gateway owns the signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_server(settings: Settings, host: str, port: int) -> None:
    """`rtms-gateway serve`: until SIGINT/SIGTERM, then a graceful close."""
    gateway = await Gateway.open(settings)
    sock = bind_socket(host, port)
    config = uvicorn.Config(gateway.app, log_level=settings.log_level.lower(), lifespan="off",
                            timeout_graceful_shutdown=5)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
    log.info("gateway listening on http://%s:%d (webhook %s)", host, sock.getsockname()[1],
             settings.webhook_path)
    try:
        await server.serve(sockets=[sock])
    finally:
        await gateway.close()
        log.info("gateway stopped")
