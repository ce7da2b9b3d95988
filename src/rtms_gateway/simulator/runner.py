"""Runs the simulator: the server, the pacer, webhooks, and each meeting's life.

A meeting: POST `*.rtms_started` → wait for the client (handshakes, CLIENT_READY_ACK) →
stream for its duration, keeping sockets alive and handling interruptions → stop →
POST `*.rtms_stopped`. `Simulator` is the library face (tests start meetings one by one
and read their records); `run_simulation` is the command's: N scripted meetings at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol.constants import (
    KEEP_ALIVE_INTERVAL_S,
    MEDIA_RECONNECT_WINDOW_S,
    SIGNALING_RECONNECT_WINDOW_S,
    MediaType,
    Product,
    StopReason,
)
from ..protocol.signature import signature
from . import tls
from .faults import Fault, FaultKind, random_faults
from .media import VideoSource
from .pacer import SLOTS as PACER_SLOTS
from .pacer import Pacer, PacerStats
from .records import HandshakeRecord, MeetingRecord
from .scenario import ALL_SINGLE_MEDIA, MeetingScript, build_meeting, build_meetings
from .servers import DuplicatePolicy, RTMSServer
from .stream import SimStream, StreamSettings, now_ms
from .webhook_sender import ValidationResult, WebhookSender

log = logging.getLogger(__name__)

_OUTCOMES = {
    StopReason.MEETING_ENDED: "completed",
    StopReason.RECEIVER_REQUEST_CLOSE: "closed by the client (STREAM_CLOSE_REQ)",
    StopReason.KEEP_ALIVE_TIMEOUT: "stopped: keep-alives unanswered",
    StopReason.AWAIT_RECONNECTION_TIMEOUT: "stopped: the client did not reconnect in time",
    StopReason.STREAM_REVOKED: "revoked: the app must delete what it kept",
}


@dataclass
class SimulatorConfig:
    client_id: str
    client_secret: str
    secret_token: str = ""
    webhook_url: str | None = None  # None: no webhooks; hand `MeetingHandle.started_payload` over yourself
    host: str = "127.0.0.1"
    port: int = 0
    public_host: str = "localhost"  # the host name put in URLs (Zoom's SDK refuses IP literals)
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_out: Path | None = None
    keepalive_interval: float = KEEP_ALIVE_INTERVAL_S
    signaling_reconnect_window: float = SIGNALING_RECONNECT_WINDOW_S
    media_reconnect_window: float = MEDIA_RECONNECT_WINDOW_S
    connect_timeout: float = 30.0  # from rtms_started to CLIENT_READY_ACK
    duplicate_signaling: DuplicatePolicy = "reject"
    webhook_timeout: float = 3.0
    # Zoom retries a failed delivery 3 times, after 5, 20 and 60 minutes; scaled down here
    # (`webhook_sender.ZOOM_RETRY_DELAYS_S` for the real schedule).
    webhook_retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0)
    webhook_verify: ssl.SSLContext | str | bool = True
    video_source: VideoSource | None = None
    timestamp_jitter_ms: int = 0  # each media packet's timestamp off its slot by up to this, seeded
    # Visits per 20 ms: each meeting sends on its own beat, as Zoom's do (`pacer`); 1 sends
    # every meeting's packets at the same moment.
    pacer_slots: int = PACER_SLOTS
    signaling_linger_s: float = 0.0  # a lost signaling socket "still closing": reconnecting meanwhile gets 8
    replay_joins: bool = False  # True: send a late join subscriber who is here (Zoom does not)
    lid_warmup_s: float = 30.0  # transcripts in the source language this long, then as detected
    ai_interpreter: bool = False  # send META_DATA_AUDIO (23) on audio sockets
    future_fields: bool = False  # transcripts, chat and events carry fields no model declares
    # The webhook's `server_urls` lists first a signaling URL that refuses connections, then
    # the live one: a client must fail over to the next URL.
    dead_first_url: bool = False


@dataclass
class SimulationConfig(SimulatorConfig):
    meetings: int = 1
    duration: float = 20.0
    media: MediaType = ALL_SINGLE_MEDIA
    faults: Sequence[Fault] = ()  # played in every meeting
    random_faults: int = 0  # this many more per meeting, drawn from the seed
    products: tuple[Product, ...] = (Product.MEETING,)
    stagger: float = 0.0
    validate_endpoint: bool = False
    seed: int = 0


@dataclass
class SimulationSummary:
    base_url: str
    records: list[MeetingRecord]
    validation: ValidationResult | None
    pacer: PacerStats
    stray_handshakes: list[HandshakeRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every client completed its handshakes (and the endpoint validated, if asked)."""
        valid = self.validation is None or self.validation.ok
        return valid and bool(self.records) and all(r.handshakes_complete for r in self.records)


class MeetingHandle:
    """A running meeting: its script, its live record, and its end."""

    def __init__(self, script: MeetingScript, stream: SimStream, signaling_url: str,
                 dead_urls: Sequence[str] = ()) -> None:
        self.script = script
        self.stream = stream
        self.signaling_url = signaling_url  # the one that answers
        # the webhook's comma-separated list: any refusing ones first, then the live one
        self.server_urls = ",".join([*dead_urls, signaling_url])
        self.started_payload = script.started_payload(self.server_urls)
        self.task: asyncio.Task[MeetingRecord] | None = None
        self.webhook_delay = 0.0
        self.faults: list[Fault] = []

    @property
    def record(self) -> MeetingRecord:
        return self.stream.record

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def signature(self, client_id: str, client_secret: str) -> str:
        return signature(client_id, client_secret, self.script.owner_id, self.script.rtms_stream_id)

    async def wait(self, timeout: float | None = None) -> MeetingRecord:
        assert self.task is not None
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)

    async def wait_streaming(self, timeout: float) -> bool:
        """Until the stream started (first CLIENT_READY_ACK); False if it did not in time."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.stream.t0 is None and not self.done:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.01)
        return self.stream.t0 is not None

    def request_stop(self, reason: StopReason = StopReason.HOST_TRIGGERED) -> None:
        """End the meeting now, as Zoom would when the host stops the app."""
        self.stream.request_stop(reason)


class Simulator:
    """Zoom's side of RTMS on loopback. `async with Simulator(config) as sim:` then
    `sim.start_meeting(...)` and `await handle.wait()`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.material: tls.TLSMaterial | None = None
        self.server: RTMSServer | None = None
        self.pacer = Pacer(slots=config.pacer_slots)
        self.sender: WebhookSender | None = None
        self.meetings: list[MeetingHandle] = []
        self._dead: list[socket.socket] = []  # bound, never listening: connections are refused
        self._settings = StreamSettings(
            keepalive_interval=config.keepalive_interval,
            signaling_reconnect_window=config.signaling_reconnect_window,
            media_reconnect_window=config.media_reconnect_window,
            timestamp_jitter_ms=config.timestamp_jitter_ms,
            signaling_linger_s=config.signaling_linger_s,
            replay_joins=config.replay_joins,
            lid_warmup_s=config.lid_warmup_s,
            ai_interpreter=config.ai_interpreter,
            future_fields=config.future_fields,
        )

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        context = None
        if cfg.tls:
            if cfg.tls_cert is not None and cfg.tls_key is not None:
                self.material = tls.load_material(cfg.tls_cert, cfg.tls_key)
            elif cfg.tls_cert is not None or cfg.tls_key is not None:
                raise ValueError("give both a TLS certificate and its key, or neither")
            else:
                self.material = tls.generate_localhost_material()
            context = tls.server_ssl_context(self.material)
        if cfg.ca_out is not None:
            if self.material is None or self.material.ca_pem is None:
                raise ValueError("there is no simulator CA to write out (plain ws:// or a supplied certificate)")
            tls.write_ca(self.material, cfg.ca_out)  # before the first webhook, so clients can trust it
        self.server = RTMSServer(client_id=cfg.client_id, client_secret=cfg.client_secret, host=cfg.host,
                                 port=cfg.port, ssl_context=context, public_host=cfg.public_host,
                                 duplicate_signaling=cfg.duplicate_signaling)
        await self.server.start()
        self.pacer.start()
        if cfg.webhook_url:
            self.sender = WebhookSender(cfg.webhook_url, cfg.secret_token, timeout=cfg.webhook_timeout,
                                        retry_delays=cfg.webhook_retry_delays,
                                        verify=cfg.webhook_verify)

    def dead_url(self, stream_id: str) -> str:
        """A signaling URL on this host whose port refuses connections (bound, not
        listening, for as long as the simulator runs, so no one else takes it)."""
        assert self.server is not None, "start() first"
        if not self._dead:
            family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
            dead = socket.socket(family, socket.SOCK_STREAM)
            dead.bind((self.config.host, 0))
            self._dead.append(dead)
            try:  # `localhost` may resolve to ::1 first: refuse there too
                dead6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                dead6.bind(("::1", dead.getsockname()[1]))
                self._dead.append(dead6)
            except OSError:
                pass
        port = self._dead[0].getsockname()[1]
        live = self.server.signaling_url(stream_id)
        return live.replace(f":{self.server.port}/", f":{port}/", 1)

    async def stop(self) -> None:
        """End running meetings (stop reason MEETING_ENDED), then shut everything down."""
        running = [m for m in self.meetings if not m.done]
        for m in running:
            m.request_stop(StopReason.MEETING_ENDED)
        tasks = [m.task for m in running if m.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=10)
            for task in late:  # e.g. still retrying a webhook nobody answers
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.pacer.stop()
        if self.server is not None:
            await self.server.close()
        if self.sender is not None:
            await self.sender.aclose()
        for dead in self._dead:
            dead.close()
        self._dead.clear()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what clients and tests need ---------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.base_url

    @property
    def port(self) -> int:
        assert self.server is not None, "start() first"
        return self.server.port

    @property
    def ca_pem(self) -> bytes | None:
        return self.material.ca_pem if self.material is not None else None

    def write_ca(self, path: str | Path) -> Path:
        assert self.material is not None, "plain ws:// has no CA"
        return tls.write_ca(self.material, path)

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting this simulator's CA (None for plain ws://)."""
        return tls.client_ssl_context(self.ca_pem) if self.ca_pem is not None else None

    def pacer_stats(self) -> PacerStats:
        return self.pacer.stats()

    @property
    def stray_handshakes(self) -> list[HandshakeRecord]:
        return self.server.stray_handshakes if self.server is not None else []

    async def validate_endpoint(self) -> ValidationResult:
        if self.sender is None:
            return ValidationResult(False, None, "no webhook URL configured")
        return await self.sender.validate_endpoint()

    def start_meeting(
        self,
        script: MeetingScript | None = None,
        *,
        product: Product = Product.MEETING,
        duration: float = 20.0,
        media: MediaType = ALL_SINGLE_MEDIA,
        seed: int = 0,
        webhook_delay: float = 0.0,
        faults: Sequence[Fault] = (),
        meeting_uuid: str | None = None,
        stream_id: str | None = None,
        dead_first_url: bool | None = None,
    ) -> MeetingHandle:
        """Register a meeting and start its life (webhook first, if a URL is configured).
        `webhook_delay`: seconds between the stream's start and the webhook's delivery;
        Zoom buffers the audio of that time and sends it in a burst once the app connects.
        `faults`: Zoom's failure cases to play, each at its time after streaming starts.
        `meeting_uuid`, `stream_id`: ids of your choosing instead of the script's (the
        meeting UUID stands for the product's id: webinar UUID, session id, ...).
        `dead_first_url`: list a refusing signaling URL first in `server_urls` (default:
        the config's `dead_first_url`)."""
        assert self.server is not None, "start() first"
        if script is None:
            script = build_meeting(seed, len(self.meetings), product=product, duration_s=duration, offered=media)
        if meeting_uuid is not None:
            script = dataclasses.replace(script, owner_id=meeting_uuid)
        if stream_id is not None:
            script = dataclasses.replace(script, rtms_stream_id=stream_id)
        if script.rtms_stream_id in self.server.streams:
            raise ValueError(f"stream {script.rtms_stream_id!r} is already running")
        stream = SimStream(script, self.pacer, self._settings, self.config.video_source)
        dead = self.config.dead_first_url if dead_first_url is None else dead_first_url
        handle = MeetingHandle(script, stream, self.server.signaling_url(script.rtms_stream_id),
                               [self.dead_url(script.rtms_stream_id)] if dead else [])
        handle.webhook_delay = webhook_delay
        handle.faults = list(faults)
        self.server.register(stream)
        handle.task = asyncio.get_running_loop().create_task(self._run_meeting(handle),
                                                             name=f"rtms-sim-{script.rtms_stream_id}")
        self.meetings.append(handle)
        return handle

    # ---- one meeting's life -----------------------------------------------------------

    async def _post(self, record: MeetingRecord, event: str, payload: dict[str, object]) -> None:
        if self.sender is not None:
            record.webhooks.append(await self.sender.send(event, payload))

    async def _run_meeting(self, handle: MeetingHandle) -> MeetingRecord:
        stream, script, record = handle.stream, handle.script, handle.record
        product = script.product
        loop = asyncio.get_running_loop()
        period = min(self.config.keepalive_interval / 4, 0.5)
        pending: list[asyncio.Task[None]] = []
        faults: asyncio.Task[None] | None = None
        try:
            record.outcome = "waiting for the client"
            stream.announced_at, stream.announced_ms = loop.time(), now_ms()
            if handle.webhook_delay:
                await asyncio.sleep(handle.webhook_delay)
            await self._post(record, product.started_event, handle.started_payload)
            faults = loop.create_task(self._play_faults(handle)) if handle.faults else None
            connect_deadline = loop.time() + self.config.connect_timeout
            reason: StopReason | None = None
            while reason is None:
                now = loop.time()
                reason = stream.poll(now)
                if reason is None and stream.t0 is None and now >= connect_deadline:
                    reason = StopReason.CONNECTION_TIMEOUT
                for _ in range(stream.session.take_interruptions()):
                    pending.append(loop.create_task(
                        self._post(record, product.interrupted_event, script.interrupted_payload())))
                if reason is None:
                    await stream.wait_change(period)
            await stream.stop(reason)
            record.outcome = self._outcome(record, reason)
            if faults is not None:
                faults.cancel()
            if pending:
                await asyncio.gather(*pending)
            await self._post(record, product.stopped_event, script.stopped_payload(int(reason)))
        except asyncio.CancelledError:
            if faults is not None:
                faults.cancel()
            record.outcome = "cancelled"
            await stream.stop(StopReason.INTERNAL_EXCEPTION)
            raise
        except Exception:
            log.exception("meeting %s failed", script.rtms_stream_id)
            record.outcome = "simulator error"
            await stream.stop(StopReason.INTERNAL_EXCEPTION)
        finally:
            assert self.server is not None
            self.server.unregister(stream)
        return record

    async def _play_faults(self, handle: MeetingHandle) -> None:
        """Each fault at its time after streaming started (the first time)."""
        stream, loop = handle.stream, asyncio.get_running_loop()
        if not await handle.wait_streaming(self.config.connect_timeout):
            return
        for fault in sorted(handle.faults, key=lambda f: f.at_s):
            assert stream.t0 is not None
            await asyncio.sleep(max(0.0, stream.t0 + fault.at_s - loop.time()))
            if stream.ended:
                return
            if fault.kind is FaultKind.INTERRUPTED_WEBHOOK:
                handle.record.faults.append(str(fault))
                await self._post(handle.record, handle.script.product.interrupted_event,
                                 handle.script.interrupted_payload())
            elif fault.kind is FaultKind.MOVE:
                handle.record.faults.append(str(fault))
                moved = dict(handle.started_payload, server_urls=self._other_host(handle.signaling_url))
                await self._post(handle.record, handle.script.product.started_event, moved)
            else:
                stream.inject(fault)

    def _other_host(self, url: str) -> str:
        """The same server under its other name: what a failover to a new server looks like."""
        host = self.config.public_host
        other = "127.0.0.1" if host != "127.0.0.1" else "localhost"
        return url.replace(f"//{host}:", f"//{other}:", 1)

    @staticmethod
    def _outcome(record: MeetingRecord, reason: StopReason) -> str:
        if reason == StopReason.CONNECTION_TIMEOUT:
            if not record.signaling_ok:
                return "client never connected"
            if not record.media_ok:
                return "client never completed a media handshake"
            return "client never sent CLIENT_READY_ACK"
        return _OUTCOMES.get(reason, f"stopped: {reason.name}")


async def run_simulation(
    config: SimulationConfig,
    *,
    on_record: Callable[[MeetingRecord], None] | None = None,
    on_ready: Callable[[Simulator], None] | None = None,
) -> SimulationSummary:
    """Run `config.meetings` scripted meetings concurrently; one record per meeting."""
    async with Simulator(config) as sim:
        if on_ready is not None:
            on_ready(sim)
        validation = await sim.validate_endpoint() if config.validate_endpoint else None
        scripts = build_meetings(config.seed, config.meetings, products=config.products,
                                 duration_s=config.duration, offered=config.media)
        handles: list[MeetingHandle] = []
        for i, script in enumerate(scripts):
            if i and config.stagger > 0:
                await asyncio.sleep(config.stagger)
            faults = list(config.faults)
            if config.random_faults:
                faults += random_faults(config.seed, i, config.random_faults, config.duration)
            handles.append(sim.start_meeting(script, faults=faults))

        async def finish(handle: MeetingHandle) -> MeetingRecord:
            record = await handle.wait()
            if on_record is not None:
                on_record(record)
            return record

        records = list(await asyncio.gather(*(finish(h) for h in handles)))
        return SimulationSummary(sim.base_url, records, validation, sim.pacer_stats(),
                                 list(sim.stray_handshakes))
