"""Many streams at once: one supervised task per `rtms_stream_id`.

Starting is idempotent: Zoom allows one connection per stream, so a webhook delivered
twice must not open a second connection that would evict the first. Streams that ended
are remembered (bounded) so a late retry of their start webhook does not reopen them:
in memory, and in the store (`ended_log`), which outlives a restart.

The supervisor connects again, as Zoom's failover guide asks, when signaling is lost,
when Zoom reports the stream interrupted (`rtms_interrupted`), when it stops the stream
for a failure reason, and at once when a new `rtms_started` moves the stream to new
servers; with backoff, inside Zoom's window. Whether and when is the reconnect policy's
(`client.policy`); each held stream moves along the lifecycle table (`client.lifecycle`),
and what the store records is its state. The stream's files and records carry on across
reconnects (replayed frames are dropped there).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from ..client.lifecycle import (
    TERMINAL,
    Ended,
    Lifecycle,
    LifecycleChange,
    MediaRejected,
    Ready,
    StreamOutcome,
    StreamState,
)
from ..client.policy import Backoff, ReconnectPolicy, Retry, Stop
from ..client.spec import StreamSpec
from ..client.stream import RtmsStream
from ..client.transport import SYSTEM_CLOCK, Clock, Transport, until_set
from ..protocol.constants import (
    CLIENT_SILENCE_LIMIT_S,
    MediaType,
    Product,
    SessionState,
    StopReason,
    status_name,
)
from ..protocol.errors import StoreError
from ..protocol.messages import (
    EventUpdate,
    MediaParams,
    ReceivedMessage,
    SessionStateResp,
    SessionStateUpdate,
    StreamCloseResp,
    VideoSubscriptionResp,
)
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


HEARTBEAT_S = 5.0

# How long Zoom may take between losing a connection and stamping the webhook about it.
INTERRUPTION_NOTICE_DELAY_MS = 2_000

# How long a webhook waits for the store to say whether its stream ended already; past
# that the stream is started (keeping meetings flowing beats refusing Zoom).
ENDED_LOOKUP_TIMEOUT_S = 2.0


_CONTROL_MESSAGES = frozenset({StreamCloseResp, VideoSubscriptionResp, EventUpdate})


class EndedLog(Protocol):
    """The store's memory of ended streams (`sinks.delivery_memory`)."""

    async def remember_ended(self, rtms_stream_id: str, state: str, now_ms: int) -> None: ...
    async def ended_state(self, rtms_stream_id: str) -> str | None: ...


@dataclass
class _Held:
    """One stream we hold, across the connections made for it."""

    spec: StreamSpec
    backoff: Backoff
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    stream: RtmsStream | None = None
    ending: bool = False  # Zoom stopped it: connect no more
    stop_reason: int | None = None  # Zoom's, when it stopped it
    next_spec: StreamSpec | None = None  # a new rtms_started moved it here
    connections: int = 0  # made so far (a rejoin after a restart starts at 1)
    session_id: str | None = None  # Zoom's rtms_session_id, once a connection learned it
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class StreamManager:
    def __init__(
        self,
        *,
        credentials: Credentials,
        media: MediaType,
        pipeline: Pipeline,
        transport: Transport,
        policy: ReconnectPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        media_params: MediaParams | None = None,
        buffer_data: bool | None = None,
        connect_timeout: float = 10.0,
        ended_memory: int = 10_000,
        silence_limit: float = CLIENT_SILENCE_LIMIT_S,
        allow_insecure_ws: bool = False,
        ended_log: EndedLog | None = None,
        on_revoked: Callable[[str, str | None, int], None] | None = None,
        on_control: Callable[[RtmsStream, ReceivedMessage], None] | None = None,
        events: Mapping[Product, Sequence[int]] | None = None,
    ) -> None:
        self.credentials = credentials
        # Each product's event subscription (RTMS_EVENTS); a product not named: all it offers.
        self.events = events or {}
        self.allow_insecure_ws = allow_insecure_ws
        self.media = media
        self.pipeline = pipeline
        self.transport = transport
        self.policy = policy or ReconnectPolicy()
        self.clock = clock
        self.media_params = media_params
        self.buffer_data = buffer_data
        self.connect_timeout = connect_timeout
        self.silence_limit = silence_limit
        self._held: dict[str, _Held] = {}
        self.streams: dict[str, RtmsStream] = {}
        self._tasks: dict[str, asyncio.Task[StreamOutcome]] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._ended_memory = ended_memory
        self.ended_log = ended_log
        # Told (stream id, meeting, reason) of a stream Zoom revoked, once it ended here.
        self.on_revoked = on_revoked
        # Told of the signaling messages stream control acts on (answers, events).
        self.on_control = on_control
        self.outcomes: dict[str, int] = {}
        self.reconnects: dict[str, int] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.frames_rejected_ended = 0
        self._closing = False

    def state_of(self, stream_id: str) -> StreamState | None:
        """Where a stream held now is in its lifecycle (None if not held)."""
        held = self._held.get(stream_id)
        return None if held is None else held.lifecycle.state

    # ---- webhook events -----------------------------------------------------------------

    async def handle(self, event: object) -> None:
        """Act on a verified webhook event; returns at once (connecting runs in background)."""
        if isinstance(event, StreamStarted):
            if not await self._ended_before(event.rtms_stream_id):
                self.start(event)
        elif isinstance(event, StreamStopped):
            self.stop(event.rtms_stream_id, event.stop_reason, stopped_by_zoom=True,
                      meeting_uuid=event.owner_id)
        elif isinstance(event, StreamInterrupted):
            held = self._held.get(event.rtms_stream_id)
            if held is None or held.stream is None:
                return
            # A notice about a connection before this one is old news: we came back from
            # that drop already. Zoom stamps the notice when it sends it, a while after
            # the drop: allow for that.
            if held.stream.newer_than(event.event_ts - INTERRUPTION_NOTICE_DELAY_MS):
                log.info("stream %s: interruption at %d is older than our connection; ignored",
                         event.rtms_stream_id, event.event_ts)
                return
            log.info("stream %s interrupted by Zoom; connecting again", event.rtms_stream_id)
            held.stream.stop(None, state=StreamState.INTERRUPTED)

    def start(self, event: StreamStarted) -> bool:
        stream_id = event.rtms_stream_id
        if self._closing:
            return False
        spec = StreamSpec(event.product, event.owner_id, stream_id, event.server_urls)
        held = self._held.get(stream_id)
        if held is not None:
            if event.server_urls == held.spec.server_urls or held.ending:
                log.info("stream %s already running; start ignored", stream_id)
                return False
            # Zoom moved the stream (its server failed): leave the old sockets, go to the new.
            log.info("stream %s moved to new servers; reconnecting", stream_id)
            held.next_spec = spec
            if held.stream is not None:
                held.stream.stop(None, state=StreamState.MOVED)
            held.changed.set()
            return True
        if stream_id in self._ended:
            log.info("stream %s already ended (%s); late start ignored", stream_id,
                     self._ended[stream_id])
            return False
        now = int(time.time() * 1000)
        meeting = MeetingRecord(
            meeting_uuid=event.owner_id, product=event.product.value, meeting_id=event.meeting_id,
            account_id=event.account_id, operator_id=event.operator_id,
            session_key=event.session_key, started_at_ms=event.event_ts or now,
        )
        record = StreamRecord(
            rtms_stream_id=stream_id, meeting_uuid=event.owner_id, server_urls=event.server_urls,
            state=StreamState.CONNECTING.value, started_at_ms=event.event_ts or now,
        )
        self._record_start(meeting, record)
        self._hold(spec)
        log.info("stream %s (%s %s) starting", stream_id, event.product.value,
                 _short(event.owner_id))
        return True

    async def _ended_before(self, stream_id: str) -> bool:
        """Whether the store knows `stream_id` ended (before a restart, say). Asked only of a
        stream neither held nor remembered here; if the store cannot say in time, no."""
        if self.ended_log is None or stream_id in self._held or stream_id in self._ended:
            return False
        try:
            state = await asyncio.wait_for(self.ended_log.ended_state(stream_id),
                                           ENDED_LOOKUP_TIMEOUT_S)
        except (TimeoutError, StoreError) as exc:
            log.warning("stream %s: the store cannot say whether it ended (%s); starting it",
                        stream_id, type(exc).__name__)
            return False
        if state is None:
            return False
        self._ended[stream_id] = state
        log.info("stream %s already ended (%s, before this start of the gateway); "
                 "late start ignored", stream_id, state)
        return True

    def rejoin(self, spec: StreamSpec) -> bool:
        """Connect again to a stream held before a restart (its records are stored)."""
        if self._closing or spec.rtms_stream_id in self._held:
            return False
        self._hold(spec, rejoined=True)
        log.info("stream %s (%s %s) rejoining", spec.rtms_stream_id, spec.product.value,
                 _short(spec.owner_id))
        return True

    def _hold(self, spec: StreamSpec, *, rejoined: bool = False) -> None:
        held = self._held[spec.rtms_stream_id] = _Held(spec, self.policy.stream_backoff(),
                                                       connections=int(rejoined))
        loop = asyncio.get_running_loop()
        self._tasks[spec.rtms_stream_id] = loop.create_task(
            self._supervise(held), name=f"stream-{spec.rtms_stream_id}")
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = loop.create_task(self._beat(), name="streams-heartbeat")

    async def _beat(self) -> None:
        """Keep the held streams' `updated_at_ms` fresh: after a crash, a restart rejoins
        the streams held within Zoom's reconnection window."""
        while self._held and not self._closing:
            await self.clock.sleep(HEARTBEAT_S)
            self._record_touch(list(self._held))

    def stop(self, stream_id: str, reason: int | None, *, stopped_by_zoom: bool = False,
             meeting_uuid: str | None = None) -> None:
        held = self._held.get(stream_id)
        if held is not None:
            if stopped_by_zoom and held.stream is not None \
                    and self.policy.after_stop(reason) is StreamState.INTERRUPTED:
                log.info("stream %s stopped by Zoom for failure reason %s; connecting again",
                         stream_id, reason)
                held.stream.stop(reason, state=StreamState.INTERRUPTED)
                return
            held.ending, held.stop_reason = True, reason
            if held.stream is not None:
                held.stream.stop(reason)
            held.changed.set()
        elif stopped_by_zoom and meeting_uuid:
            # Zoom's word on a stream we do not hold: keep how it ended for us (rejected,
            # lost...) and add Zoom's stop reason; a stream never seen is simply stopped.
            state = None if stream_id in self._ended else StreamState.STOPPED
            self._remember_ended(stream_id, StreamState.STOPPED)
            self._record_stopped_elsewhere(stream_id, meeting_uuid, state, reason)
            self._revoked(stream_id, meeting_uuid, reason)

    def _connect(self, spec: StreamSpec, *, reconnection: bool = False,
                 session_id: str | None = None) -> RtmsStream:
        return RtmsStream(
            spec,
            client_id=self.credentials.client_id,
            client_secret=self.credentials.client_secret,
            media=self.media,
            observer=self,
            transport=self.transport,
            policy=self.policy,
            clock=self.clock,
            media_params=self.media_params,
            events=self.events.get(spec.product),
            buffer_data=self.buffer_data,
            connect_timeout=self.connect_timeout,
            silence_limit=self.silence_limit,
            allow_insecure_ws=self.allow_insecure_ws,
            reconnection=reconnection,
            session_id=session_id,
        )

    # ---- supervising one stream ---------------------------------------------------------

    async def _supervise(self, held: _Held) -> StreamOutcome:
        """Connect, and connect again as the policy says, until the stream ends."""
        stream_id = held.spec.rtms_stream_id
        try:
            while True:
                if held.next_spec is not None:
                    self._go_to_new_servers(held, held.next_spec)
                stream = held.stream = self._connect(held.spec, reconnection=held.connections > 0,
                                                     session_id=held.session_id)
                held.connections += 1
                self.streams[stream_id] = stream
                try:
                    outcome = await stream.run()
                except Exception as exc:  # a bug in one stream must not touch the others
                    log.exception("stream %s failed", stream_id)
                    outcome = StreamOutcome(StreamState.FAILED,
                                            status_reason=f"{type(exc).__name__}: {exc}")
                finally:
                    self.frames_rejected_ended += stream.frames_rejected
                    held.session_id = stream.session_id
                decision = self._decide(held, outcome)
                if isinstance(decision, Stop):
                    final = decision.outcome
                    break
                cause = decision.cause
                self._count_reconnect(cause)
                why = outcome.status_reason or f"stop reason {outcome.stop_reason}"
                log.info("stream %s %s (%s); connecting again in %.1f s", stream_id, cause.value,
                         why, decision.delay)
                held.lifecycle.move(StreamState.RECONNECTING)
                self._record_state(stream, StreamState.RECONNECTING, outcome)
                held.changed.clear()
                await until_set(self.clock, held.changed, decision.delay)
                if self._closing or held.ending:
                    final = self._cut_short(held, outcome)
                    break
                held.lifecycle.move(StreamState.CONNECTING)
        finally:
            self._tasks.pop(stream_id, None)
            self._held.pop(stream_id, None)
            self.streams.pop(stream_id, None)
            self.pipeline.end_stream(stream_id)
        if final.state is not StreamState.DETACHED:
            self._remember_ended(stream_id, final.state)
        self.outcomes[final.state.value] = self.outcomes.get(final.state.value, 0) + 1
        self._record_state(stream, final.state, final)
        self._revoked(stream_id, held.spec.owner_id, final.stop_reason)
        return final

    def _decide(self, held: _Held, outcome: StreamOutcome) -> Retry | Stop:
        """Follow how the connection ended, then ask the policy whether to go on."""
        if held.next_spec is not None and not (self._closing or held.ending):
            outcome = replace(outcome, state=StreamState.MOVED)  # whatever ended it, it moved
        held.lifecycle.move(outcome.state)
        if self._closing or held.ending:
            return Stop(self._cut_short(held, outcome))
        return self.policy.classify(outcome, held.backoff, self.clock.now())

    def _cut_short(self, held: _Held, outcome: StreamOutcome) -> StreamOutcome:
        """How the stream ends when Zoom stopped it or we shut down: as its connection
        ended if that is an end (stopped, lost...), else stopped or detached."""
        state = held.lifecycle.state
        target = StreamState.DETACHED if self._closing else StreamState.STOPPED
        if state in TERMINAL or state is target:
            return outcome
        held.lifecycle.move(target)
        if target is StreamState.STOPPED:
            return StreamOutcome(target, stop_reason=held.stop_reason)
        return StreamOutcome(target)

    def _go_to_new_servers(self, held: _Held, spec: StreamSpec) -> None:
        held.spec, held.next_spec = spec, None
        held.backoff.reset()
        self._record_servers(spec.rtms_stream_id, spec.server_urls)

    def _revoked(self, stream_id: str, meeting_uuid: str, reason: int | None) -> None:
        if reason == StopReason.STREAM_REVOKED and self.on_revoked is not None:
            self.on_revoked(stream_id, meeting_uuid, reason)

    def _count_reconnect(self, cause: StreamState) -> None:
        self.reconnects[cause.value] = self.reconnects.get(cause.value, 0) + 1

    def _remember_ended(self, stream_id: str, state: StreamState) -> None:
        self._ended[stream_id] = state.value
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)
        if self.ended_log is not None:  # in order with the stream's records; waits out an outage
            now = int(time.time() * 1000)
            self.pipeline.run_in_order(partial(self.ended_log.remember_ended, stream_id,
                                               state.value, now))

    # ---- observer hooks (called by RtmsStream) -------------------------------------------

    def on_message(self, stream: RtmsStream, msg: ReceivedMessage) -> None:
        self.pipeline.on_message(stream, msg)  # session states and msg 23 become timeline rows
        kind = type(msg)
        if self.on_control is not None and kind in _CONTROL_MESSAGES:
            self.on_control(stream, msg)
        elif kind is SessionStateUpdate or kind is SessionStateResp:
            _log_session_state(stream.stream_id, msg)  # type: ignore[arg-type]

    def on_lifecycle(self, stream: RtmsStream, change: LifecycleChange) -> None:
        stream_id = stream.stream_id
        match change:
            case Ready():
                held = self._held.get(stream_id)
                if held is not None and held.stream is stream:
                    held.lifecycle.move(StreamState.READY)
                    held.backoff.reset()  # connected: a later drop starts the backoff over
                self._record_update(stream, StreamState.READY)
            case MediaRejected(media=media, status_code=code, reason=reason):
                self._record_update(stream, None, status_code=code,
                                    status_reason=f"{media} media rejected: {reason}")
            case Ended(outcome=outcome):
                _log_end(stream_id, outcome)
            case _:
                pass  # connecting, connected: nothing to record

    # ---- recording (in order with the stream's records) -----------------------------------

    def _record_start(self, meeting: MeetingRecord, record: StreamRecord) -> None:
        self.pipeline.record_start(meeting, record)

    def _record_touch(self, stream_ids: list[str]) -> None:
        self.pipeline.record_alive(stream_ids)

    def _record_servers(self, stream_id: str, server_urls: str) -> None:
        self.pipeline.record_stream(stream_id, server_urls=server_urls)

    def _record_state(self, stream: RtmsStream, state: StreamState, outcome: StreamOutcome) -> None:
        self._record_update(stream, state, stop_reason=outcome.stop_reason,
                            status_code=outcome.status_code, status_reason=outcome.status_reason)

    def _record_update(self, stream: RtmsStream, state: StreamState | None, *,
                       stop_reason: int | None = None, status_code: int | None = None,
                       status_reason: str | None = None) -> None:
        """Put the stream's state in the store; a terminal state also ends the meeting
        (unless the task was cancelled)."""
        now = int(time.time() * 1000)
        ended = state in TERMINAL
        self.pipeline.record_stream(stream.stream_id, state=None if state is None else state.value,
                                    stopped_at_ms=now if ended else None, stop_reason=stop_reason,
                                    status_code=status_code, status_reason=status_reason)
        if ended and state is not StreamState.CANCELLED:
            self.pipeline.record_meeting_stopped(stream.meeting_uuid, now, stop_reason)

    def _record_stopped_elsewhere(self, stream_id: str, meeting_uuid: str,
                                  state: StreamState | None, reason: int | None) -> None:
        now = int(time.time() * 1000)
        self.pipeline.record_stream(stream_id, state=None if state is None else state.value,
                                    stopped_at_ms=now, stop_reason=reason)
        self.pipeline.record_meeting_stopped(meeting_uuid, now, reason)

    # ---- running ------------------------------------------------------------------------

    def pause_reading(self) -> None:
        for stream in self.streams.values():
            stream.pause_reading()

    def resume_reading(self) -> None:
        for stream in self.streams.values():
            stream.resume_reading()

    def health(self) -> dict[str, Any]:
        return {
            "streams_live": self.streams_live,
            "streams_ended": dict(self.outcomes),
            "reconnects": dict(self.reconnects),
            **self.pipeline.health(),
        }

    @property
    def frames_rejected(self) -> int:
        """Malformed frames counted and skipped, on every stream held or ended."""
        return sum(s.frames_rejected for s in self.streams.values()) + self.frames_rejected_ended

    @property
    def streams_live(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Close every socket (without ending the Zoom streams) and wait for the tasks."""
        self._closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for held in list(self._held.values()):
            if held.stream is not None:
                held.stream.stop(None, state=StreamState.DETACHED)
            held.changed.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)


def _log_end(stream_id: str, outcome: StreamOutcome) -> None:
    state = outcome.state
    if state is StreamState.REJECTED:
        code = outcome.status_code
        log.warning("stream %s: signaling handshake rejected: %s %s: %s", stream_id, code,
                    "?" if code is None else status_name(code), outcome.status_reason)
    elif state is StreamState.REFUSED:
        log.warning("stream %s refused: %s", stream_id, outcome.status_reason)
    else:
        log.info("stream %s %s (stop reason %s%s)", stream_id, state.value, outcome.stop_reason,
                 f", {outcome.status_reason}" if outcome.status_reason else "")


def _log_session_state(stream_id: str, msg: SessionStateUpdate | SessionStateResp) -> None:
    try:
        state = SessionState(msg.state).name.lower()
    except ValueError:
        state = f"in state {msg.state}"
    reason = msg.any_reason if isinstance(msg, SessionStateUpdate) else None
    log.info("stream %s: session %s%s", stream_id, state,
             f" (reason {reason})" if reason else "")


def _short(uuid: str) -> str:
    return uuid[:8] + "…" if len(uuid) > 10 else uuid
