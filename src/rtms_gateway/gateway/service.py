"""Assembles one gateway from Settings: store, pipeline, stream manager, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from ..api.http_limits import LimitedH11Protocol
from ..client.connection import PicowsTransport, TlsTrust
from ..client.control import StreamControl, VideoFollower
from ..client.policy import ReconnectPolicy
from ..client.stream import RtmsStream
from ..config import Settings
from ..metrics import GatewayMetrics
from ..protocol.constants import MediaType
from ..protocol.errors import StartupError, StoreUnavailable
from ..protocol.messages import ReceivedMessage
from ..sinks.bus import RedisBus
from ..sinks.journal import Journal
from ..sinks.keys import ensure_first_key
from ..sinks.live import LiveHub
from ..sinks.outbox import Outbox, OutboxConfig, RetryPolicy
from ..sinks.revoke import Revocations
from ..sinks.store import Store
from ..webhooks.concurrency import ConcurrencyWatch
from ..webhooks.dedup import Deliveries
from .heap import settle_after_start
from .lock import DataDirLock
from .loop_lag import LoopLagMonitor
from .manager import Credentials, StreamManager
from .pipeline import Pipeline, journal_path
from .revoked import RevokedStreams

log = logging.getLogger(__name__)
WS_MAX_MESSAGE = 64 * 1024


@dataclass
class Gateway:
    settings: Settings
    store: Store
    pipeline: Pipeline
    manager: StreamManager
    app: Any
    lock: DataDirLock
    live: LiveHub
    metrics: GatewayMetrics
    outbox: Outbox
    bus: RedisBus | None
    loop_lag: asyncio.Task[None]
    revoked: RevokedStreams

    @classmethod
    async def open(cls, settings: Settings, lock: DataDirLock | None = None) -> Gateway:
        """The gateway holds its data directory's lock from here to `close()`: the one
        handed over, or one taken now (before any file or the store is touched)."""
        lock = lock or DataDirLock.acquire(settings.data_dir)
        try:
            return await cls._open(settings, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    async def _open(cls, settings: Settings, lock: DataDirLock) -> Gateway:
        from ..api.app import create_app
        from .recovery import recover

        if not settings.zoom_client_id or not settings.zoom_client_secret.get_secret_value():
            raise StartupError("ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET must be set (environment or .env): "
                               "the app's credentials sign every handshake")
        if not settings.zoom_secret_token.get_secret_value():
            raise StartupError("ZOOM_SECRET_TOKEN must be set (environment or .env): every webhook is "
                               "verified with it")
        tls = TlsTrust(settings.ca_file)
        try:
            tls.context(strict=True)
        except (ssl.SSLError, OSError) as exc:
            raise StartupError(f"RTMS_CA_FILE: {settings.ca_file} holds no usable CA certificate "
                               f"({exc}); give a PEM file, or unset it") from exc
        store = await open_store(settings)
        if not settings.configured_api_keys:
            made = await ensure_first_key(store.keys, settings.data_dir)
            if made is not None:
                log.info("no API key was configured: an admin key was made and written to %s "
                         "(send it as `Authorization: Bearer <key>`; `rtms-gateway keys` manages keys)",
                         made.resolve())
        # Fed by the store once each write commits: what the live feeds hand out is durable.
        live = LiveHub(queue_size=settings.live_queue_size,
                       max_subscribers=settings.live_max_subscribers)
        store.on_items(live.publish)
        metrics = GatewayMetrics.create()
        metrics.nul_replaced.read_from(lambda: store.counters["nul_replaced"])
        journal = await asyncio.to_thread(Journal, journal_path(settings.data_dir))  # read whole: off the loop
        pipeline = Pipeline(store, metrics=metrics, journal=journal, data_dir=settings.data_dir)
        revocations = Revocations(store)
        revoked = RevokedStreams(revocations, pipeline, settings.data_dir,
                                 erase=settings.on_revoked == "delete")
        policy = ReconnectPolicy(initial_s=settings.reconnect_initial_s,
                                 cap_s=settings.reconnect_max_s,
                                 media_window_s=settings.media_window_s,
                                 signaling_window_s=settings.signaling_window_s)
        manager = StreamManager(
            credentials=Credentials(settings.zoom_client_id, settings.zoom_client_secret.get_secret_value()),
            media=settings.media_types,
            pipeline=pipeline,
            transport=PicowsTransport(tls, proxy=settings.proxy),
            policy=policy,
            media_params=settings.media_params,
            buffer_data=None if settings.buffer_data else False,
            events=settings.product_events,
            silence_limit=settings.silence_limit_s,
            allow_insecure_ws=settings.allow_insecure_ws,
            ended_log=store.memory,
            on_revoked=revoked.revoked,
        )
        control = StreamControl(manager.streams.get)
        follower = None
        if settings.video_stream == "individual" and MediaType.VIDEO in settings.media_types:
            follower = VideoFollower(control, settings.video_follow)

        def on_control(stream: RtmsStream, msg: ReceivedMessage) -> None:
            control.answered(stream.stream_id, msg)
            if follower is not None:
                follower.on_message(stream, msg)

        manager.on_control = on_control
        pipeline.set_pause(manager.pause_reading, manager.resume_reading)
        metrics.frames_rejected.read_from(lambda: manager.frames_rejected)
        metrics.streams_live.set_function(lambda: manager.streams_live)
        metrics.reconnects.read_from(lambda: manager.reconnects)
        metrics.streams_ended.read_from(lambda: manager.outcomes)
        metrics.streams_revoked.read_from(lambda: revoked.counters["streams_revoked"])
        metrics.streams_erased.read_from(lambda: revoked.counters["streams_erased"])
        metrics.close_requests.read_from(lambda: control.counters["close_requests"])
        metrics.video_requests.read_from(lambda: control.counters["video_requests"])
        pipeline.start()
        await recover(settings.data_dir, store, pipeline, manager, window_s=policy.signaling_window_s)
        outbox = Outbox(store, OutboxConfig(
            retry=RetryPolicy(initial_s=settings.webhook_retry_initial_s,
                              cap_s=settings.webhook_retry_max_s,
                              max_age_s=settings.webhook_max_age_s),
            timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private))
        await outbox.start()
        metrics.webhooks_delivered.read_from(lambda: outbox.counters.delivered)
        metrics.webhook_attempts_failed.read_from(lambda: outbox.counters.failed_attempts)
        metrics.webhooks_dead.read_from(lambda: outbox.counters.dead)
        metrics.webhook_subscriptions.read_from(lambda: outbox.subscribed)
        bus = None
        if settings.redis_url.get_secret_value():
            redis = bus = RedisBus(store, settings.redis_url.get_secret_value(), maxlen=settings.redis_maxlen,
                                   prefix=settings.redis_prefix)
            await redis.start()
            metrics.redis_items_sent.read_from(lambda: redis.sent)
            metrics.redis_errors.read_from(lambda: redis.errors)
            metrics.redis_backlog.read_from(lambda: redis.backlog)
            metrics.redis_connected.read_from(lambda: redis.connected)
        loop_lag = asyncio.create_task(LoopLagMonitor(metrics.event_loop_lag.observe).run(), name="loop-lag")

        live_media = pipeline.media.live if pipeline.media is not None else (lambda meeting_uuid: [])
        app = create_app(settings, store=store, manager=manager, keys=store.keys, live_media=live_media,
                         deliveries=Deliveries(store.memory), live=live, outbox=outbox, metrics=metrics,
                         concurrency=ConcurrencyWatch(keep=store.add_account_item),
                         revocations=revocations, control=control)
        return cls(settings, store, pipeline, manager, app, lock, live, metrics, outbox, bus, loop_lag,
                   revoked)

    async def close(self, timeout: float = 10.0) -> None:
        """Let go of live streams, commit what is pending, close the store, then the lock."""
        try:
            self.loop_lag.cancel()
            await self.manager.shutdown(timeout)
            if self.revoked is not None:  # erasures under way finish (or wait for the next start)
                try:
                    await asyncio.wait_for(self.revoked.settled(), timeout)
                except TimeoutError:
                    await self.revoked.close()
            await self.pipeline.close()
            self.live.close()
            await self.outbox.close()
            if self.bus is not None:
                await self.bus.close()
            await self.store.close()
        finally:
            self.lock.release()


async def open_store(settings: Settings) -> Store:
    try:
        return await Store.open(settings.resolved_database_url, pg_schema=settings.database_schema)
    except StoreUnavailable as exc:
        raise StartupError(f"RTMS_DATABASE_URL: {exc}; start the database or correct the setting") from exc


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving, so callers know the port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket names it, and without it every keep-alive response waits 40 ms
    # (Nagle against delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        why = exc.strerror or str(exc)
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise StartupError(f"PORT: cannot listen on {where} ({why}); stop what holds it or choose "
                               "another port (--port or PORT)") from exc
        raise StartupError(f"HOST: cannot listen on {where} ({why}); give an address of this machine "
                           "(--host or HOST)") from exc
    sock.set_inheritable(True)
    return sock


def http_config(gateway: Gateway) -> uvicorn.Config:
    """uvicorn as the gateway runs it: HTTP/1.1 with the request deadline and connection
    bound of the settings; WebSocket messages (live feed clients') of 64 KiB at most; its
    loggers left to the gateway's logging setup (no handlers of its own, no access log:
    request lines would carry meeting UUIDs)."""
    settings = gateway.settings
    protocol = LimitedH11Protocol.with_limits(request_timeout=settings.http_request_timeout_s,
                                              max_connections=settings.http_max_connections)
    # A live feed's WebSocket client has nothing to say: what it sends is read and dropped.
    return uvicorn.Config(gateway.app, http=protocol, lifespan="off", log_config=None, log_level=None,
                          access_log=False, timeout_graceful_shutdown=5, ws_max_size=WS_MAX_MESSAGE)


class HttpServer(uvicorn.Server):
    """uvicorn serving in a task of its own: started by `serve_http`, ended by `stop_http`."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.task: asyncio.Task[None] | None = None

    async def wait_stopped(self) -> None:
        if self.task is not None:
            await self.task


async def serve_http(gateway: Gateway, sock: socket.socket) -> HttpServer:
    """Start uvicorn on a bound socket; returns once it accepts connections."""
    server = HttpServer(http_config(gateway))
    task = server.task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server


async def stop_http(server: HttpServer) -> None:
    server.should_exit = True
    await server.wait_stopped()


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM once serving stops, which would end the process
    before the gateway drains; the gateway owns the signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_server(settings: Settings, host: str, port: int) -> None:
    """`rtms-gateway serve`: until SIGINT/SIGTERM, then a graceful close. The data
    directory is locked and the port bound before the store or any file is touched."""
    lock = DataDirLock.acquire(settings.data_dir)
    try:
        sock = bind_socket(host, port)
    except BaseException:
        lock.release()
        raise
    try:
        gateway = await Gateway.open(settings, lock)
    except BaseException:
        sock.close()
        raise
    settle_after_start()
    server = _Server(http_config(gateway))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True
        # Live feeds never end on their own: ended now, so that the server need not wait
        # for them (their clients resume from the store once a gateway is back).
        gateway.live.close()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    log.info("gateway listening on http://%s:%d (webhook %s)", host, sock.getsockname()[1],
             settings.webhook_path)
    try:
        await server.serve(sockets=[sock])
    finally:
        await gateway.close()
        log.info("gateway stopped")
