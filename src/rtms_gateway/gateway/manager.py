"""Many streams at once: one supervised task per `rtms_stream_id`.

Starting is idempotent: Zoom allows one connection per stream, so a webhook delivered
twice must not open a second connection that would evict the first. Streams that ended
are remembered (bounded) so a late retry of their start webhook does not reopen them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..client.connection import TlsTrust
from ..client.stream import RtmsStream, StreamOutcome, StreamSpec
from ..protocol.constants import MediaType, status_name
from ..protocol.messages import MediaParams
from ..sinks.records import MeetingRecord, StreamRecord
from ..webhooks.events import StreamInterrupted, StreamStarted, StreamStopped
from .pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(client_id={self.client_id!r}, client_secret=***)"


class StreamManager:
    def __init__(
        self,
        *,
        credentials: Credentials,
        media: MediaType,
        pipeline: Pipeline,
        tls: TlsTrust,
        media_params: MediaParams | None = None,
        buffer_data: bool | None = None,
        connect_timeout: float = 10.0,
        ended_memory: int = 10_000,
    ) -> None:
        self.credentials = credentials
        self.media = media
        self.pipeline = pipeline
        self.tls = tls
        self.media_params = media_params
        self.buffer_data = buffer_data
        self.connect_timeout = connect_timeout
        self.streams: dict[str, RtmsStream] = {}
        self._tasks: dict[str, asyncio.Task[StreamOutcome]] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._ended_memory = ended_memory
        self.outcomes: dict[str, int] = {}
        self._closing = False

    # ---- webhook events -----------------------------------------------------------------

    async def handle(self, event: object) -> None:
        """Act on a verified webhook event; returns at once (connecting runs in background)."""
        if isinstance(event, StreamStarted):
            self.start(event)
        elif isinstance(event, StreamStopped):
            self.stop(event.rtms_stream_id, event.stop_reason, stopped_by_zoom=True,
                      meeting_uuid=event.owner_id)
        elif isinstance(event, StreamInterrupted):
            log.info("stream %s interrupted by Zoom", event.rtms_stream_id)

    def start(self, event: StreamStarted) -> bool:
        stream_id = event.rtms_stream_id
        if self._closing:
            return False
        if stream_id in self._tasks:
            log.info("stream %s already running; start ignored", stream_id)
            return False
        if stream_id in self._ended:
            log.info("stream %s already ended (%s); late start ignored", stream_id, self._ended[stream_id])
            return False
        spec = StreamSpec(event.product, event.owner_id, stream_id, event.server_urls)
        stream = RtmsStream(
            spec,
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            media=self.media,
            observer=self,
            ssl_context=self.tls.context(),
            media_params=self.media_params,
            buffer_data=self.buffer_data,
            connect_timeout=self.connect_timeout,
        )
        self.streams[stream_id] = stream
        now = int(time.time() * 1000)
        meeting = MeetingRecord(
            meeting_uuid=event.owner_id, product=event.product.value, meeting_id=event.meeting_id,
            account_id=event.account_id, operator_id=event.operator_id, session_key=event.session_key,
            started_at_ms=event.event_ts or now,
        )
        record = StreamRecord(
            rtms_stream_id=stream_id, meeting_uuid=event.owner_id, server_urls=event.server_urls,
            state="connecting", started_at_ms=event.event_ts or now,
        )

        async def record_start() -> None:
            await self.pipeline.store.upsert_meeting(meeting)
            await self.pipeline.store.upsert_stream(record)

        self.pipeline.run_in_order(record_start)
        self._tasks[stream_id] = asyncio.get_running_loop().create_task(
            self._supervise(stream), name=f"stream-{stream_id}"
        )
        log.info("stream %s (%s %s) starting", stream_id, event.product.value, _short(event.owner_id))
        return True

    def stop(self, stream_id: str, reason: int | None, *, stopped_by_zoom: bool = False,
             meeting_uuid: str | None = None) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.stop(reason)
        elif stopped_by_zoom and meeting_uuid:
            # Zoom's word on a stream we do not hold: keep how it ended for us (rejected,
            # lost...) and add Zoom's stop reason; a stream never seen is simply stopped.
            state = None if stream_id in self._ended else "stopped"
            self._remember_ended(stream_id, "stopped")
            now = int(time.time() * 1000)

            async def record() -> None:
                await self.pipeline.store.mark_stream(stream_id, state=state, stopped_at_ms=now,
                                                      stop_reason=reason)
                await self.pipeline.store.mark_meeting_stopped(meeting_uuid, now, reason)

            self.pipeline.run_in_order(record)

    async def _supervise(self, stream: RtmsStream) -> StreamOutcome:
        stream_id = stream.stream_id
        try:
            outcome = await stream.run()
        except Exception as exc:  # a bug in one stream must not touch the others
            log.exception("stream %s failed", stream_id)
            outcome = StreamOutcome("failed", status_reason=f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(stream_id, None)
            self.streams.pop(stream_id, None)
            self.pipeline.end_stream(stream_id)
        if outcome.state != "detached":
            self._remember_ended(stream_id, outcome.state)
        self.outcomes[outcome.state] = self.outcomes.get(outcome.state, 0) + 1
        return outcome

    def _remember_ended(self, stream_id: str, state: str) -> None:
        self._ended[stream_id] = state
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)

    # ---- observer hooks (called by RtmsStream) -------------------------------------------

    def on_message(self, stream: RtmsStream, msg: object) -> None:
        self.pipeline.on_message(stream, msg)

    def on_lifecycle(self, stream: RtmsStream, state: str, detail: dict[str, Any]) -> None:
        store = self.pipeline.store
        stream_id, meeting_uuid = stream.stream_id, stream.meeting_uuid
        if state == "rejected":
            code = detail.get("status_code")
            log.warning("stream %s: signaling handshake rejected: %s %s: %s", stream_id, code,
                        status_name(code) if isinstance(code, int) else "?", detail.get("status_reason"))
        elif state in ("stopped", "lost", "failed", "cancelled", "detached"):
            log.info("stream %s %s (stop reason %s%s)", stream_id, state, detail.get("stop_reason"),
                     f", {detail['status_reason']}" if detail.get("status_reason") else "")
        if state in ("connecting", "connected"):
            return  # recorded at start; the interesting transitions follow
        now = int(time.time() * 1000)
        ended = state in ("stopped", "lost", "failed", "cancelled", "rejected")

        async def record() -> None:
            await store.mark_stream(
                stream_id, state=state,
                stopped_at_ms=now if ended else None,
                stop_reason=detail.get("stop_reason"),
                status_code=detail.get("status_code"),
                status_reason=detail.get("status_reason") or detail.get("reason"),
            )
            if ended and state != "cancelled":
                await store.mark_meeting_stopped(meeting_uuid, now, detail.get("stop_reason"))

        self.pipeline.run_in_order(record)

    # ---- running ------------------------------------------------------------------------

    def pause_reading(self) -> None:
        for stream in self.streams.values():
            stream.pause_reading()

    def resume_reading(self) -> None:
        for stream in self.streams.values():
            stream.resume_reading()

    def health(self) -> dict[str, Any]:
        return {
            "streams_live": len(self._tasks),
            "streams_ended": dict(self.outcomes),
            "pending_records": self.pipeline.pending,
        }

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Close every socket (without ending the Zoom streams) and wait for the tasks."""
        self._closing = True
        for stream in list(self.streams.values()):
            stream.stop(None, state="detached")
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)


def _short(uuid: str) -> str:
    return uuid[:8] + "…" if len(uuid) > 10 else uuid
