"""The stream manager's reconnect decisions over the in-memory transport and a virtual
clock, with a real pipeline and SQLite store: Zoom's side scripted with real protocol
messages and webhook events, time moved on by hand. No socket, no sleep."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from rtms_gateway.client.lifecycle import StreamState
from rtms_gateway.client.memory import MemoryTransport, VirtualClock
from rtms_gateway.client.policy import ReconnectPolicy
from rtms_gateway.gateway.manager import Credentials, StreamManager
from rtms_gateway.gateway.pipeline import Pipeline
from rtms_gateway.protocol.constants import MediaType, Product, StatusCode, StopReason
from rtms_gateway.sinks import schema
from rtms_gateway.sinks.records import StreamRecord
from rtms_gateway.sinks.store import Store
from rtms_gateway.webhooks.events import StreamInterrupted, StreamStarted, StreamStopped

from .memory_zoom import (
    AUDIO_URL,
    SIGNALING_URL,
    TRANSCRIPT_URL,
    accept_media,
    accept_signaling,
    accept_stream,
    terminated,
    transcript,
    until,
)

S = StreamState
STREAM, MEETING = "stream-1", "meeting/1+=="
MOVED_URL = "wss://zoom-other.test/signaling"


@dataclass
class Gateway:
    clock: VirtualClock
    transport: MemoryTransport
    store: Store
    pipeline: Pipeline
    manager: StreamManager

    @property
    def state(self) -> StreamState | None:
        return self.manager.state_of(STREAM)

    async def stored(self) -> StreamRecord:
        await self.pipeline.flush()  # the manager's updates are written in order, by the writer
        record = await self.store.stream(STREAM)
        assert record is not None
        return record

    async def start(self, server_urls: str = SIGNALING_URL) -> None:
        await self.manager.handle(StreamStarted(Product.MEETING, MEETING, STREAM, server_urls,
                                                event_ts=int(time.time() * 1000)))


async def open_gateway(tmp_path: Path, **pipeline_options: int) -> Gateway:
    store = await Store.open(f"sqlite:///{tmp_path / 'rtms.sqlite3'}")
    pipeline = Pipeline(store, data_dir=tmp_path, **pipeline_options)  # its writer not started:
    clock = VirtualClock(start=0.0)                                   # `stored()` flushes it
    transport = MemoryTransport(clock)
    manager = StreamManager(
        credentials=Credentials("client-id", "client-secret"),
        media=MediaType.AUDIO | MediaType.TRANSCRIPT,
        pipeline=pipeline, transport=transport, clock=clock, silence_limit=1e9,
        policy=ReconnectPolicy(random=lambda: 0.5), ended_log=store.memory,
    )
    pipeline.set_pause(manager.pause_reading, manager.resume_reading)
    return Gateway(clock, transport, store, pipeline, manager)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    g = await open_gateway(tmp_path)
    yield g
    await g.manager.shutdown()
    await g.pipeline.close()
    await g.store.close()


@pytest.fixture
async def ready(gateway: Gateway) -> Gateway:
    """A gateway holding one stream, its signaling and media handshakes accepted."""
    await gateway.start()
    await accept_stream(gateway.transport)
    await until(lambda: gateway.state is S.READY)
    return gateway


async def test_a_started_stream_is_recorded_connecting_then_ready(gateway):
    await gateway.start()
    assert gateway.state is S.CONNECTING
    assert (await gateway.stored()).state == "connecting"
    await accept_stream(gateway.transport)
    await until(lambda: gateway.state is S.READY)
    assert (await gateway.stored()).state == "ready"


async def test_a_lost_signaling_socket_redoes_the_whole_stream_after_the_backoff(ready):
    signaling, audio, transcripts = ready.transport.opened
    signaling.close(1011)
    await until(lambda: ready.state is S.RECONNECTING)
    assert audio.closed and transcripts.closed
    stored = await ready.stored()
    assert stored.state == "reconnecting"
    assert stored.status_reason == "signaling socket closed (1011)"
    assert stored.stopped_at_ms is None
    await until(lambda: 3.0 in ready.clock.deadlines)
    ready.clock.advance(3.0)
    await accept_stream(ready.transport)
    await until(lambda: ready.state is S.READY)
    assert ready.manager.reconnects == {"lost": 1}
    urls = [end.url for end in ready.transport.opened]
    assert urls[3:] == urls[:3]  # signaling and media, all again


async def test_a_dropped_media_socket_is_the_streams_business_not_the_managers(ready):
    signaling, audio, _ = ready.transport.opened
    audio.drop()
    await until(lambda: 3.0 in ready.clock.deadlines)
    ready.clock.advance(3.0)
    assert (await accept_media(ready.transport)).url == AUDIO_URL
    await until(lambda: ready.manager.streams[STREAM].media_reconnects == 1)
    assert ready.manager.reconnects == {} and ready.state is S.READY and not signaling.closed


async def test_rtms_interrupted_makes_a_new_connection_at_once(ready):
    later = int(time.time() * 1000) + 60_000  # stamped after this connection began
    notice = StreamInterrupted(Product.MEETING, MEETING, STREAM, event_ts=later)
    await ready.manager.handle(notice)
    await accept_stream(ready.transport)
    await until(lambda: ready.state is S.READY)
    assert ready.clock.now() == 0.0 and ready.manager.reconnects == {"interrupted": 1}
    assert [end.closed for end in ready.transport.opened] == [True] * 3 + [False] * 3


async def test_an_interruption_older_than_the_connection_is_ignored(ready):
    await ready.manager.handle(StreamInterrupted(Product.MEETING, MEETING, STREAM, event_ts=1))
    assert ready.manager.reconnects == {} and not any(end.closed for end in ready.transport.opened)


async def test_a_new_rtms_started_moves_the_stream_to_its_new_servers_at_once(ready):
    await ready.start(server_urls=MOVED_URL)
    moved = await accept_signaling(ready.transport)
    assert moved.url == MOVED_URL
    await accept_media(ready.transport)
    await accept_media(ready.transport)
    await until(lambda: ready.state is S.READY)
    assert ready.clock.now() == 0.0 and ready.manager.reconnects == {"moved": 1}
    assert (await ready.stored()).server_urls == MOVED_URL  # a later rejoin goes there


async def test_the_same_rtms_started_again_opens_no_second_connection(ready):
    await ready.start()
    assert len(ready.transport.urls) == 3 and ready.manager.reconnects == {}


@pytest.mark.parametrize("reason", [StopReason.SIGNAL_CONNECTION_INTERRUPTED,
                                    StopReason.KEEP_ALIVE_TIMEOUT])
async def test_a_stop_webhook_for_a_failure_reason_connects_again_at_once(ready, reason):
    stopped = StreamStopped(Product.MEETING, MEETING, STREAM, int(reason), event_ts=5)
    await ready.manager.handle(stopped)
    await accept_stream(ready.transport)
    await until(lambda: ready.state is S.READY)
    assert ready.manager.reconnects == {"interrupted": 1}


async def test_a_stop_webhook_for_a_normal_reason_ends_the_stream_for_good(ready):
    reason = int(StopReason.HOST_TRIGGERED)
    await ready.manager.handle(StreamStopped(Product.MEETING, MEETING, STREAM, reason, event_ts=5))
    await ready.manager.wait_idle()
    stored = await ready.stored()
    assert (stored.state, stored.stop_reason) == ("stopped", reason) and stored.stopped_at_ms
    assert ready.manager.outcomes == {"stopped": 1} and ready.manager.reconnects == {}
    assert await ready.store.memory.ended_state(STREAM) == "stopped"
    await ready.start()  # Zoom's late retry of the start webhook
    assert len(ready.transport.urls) == 3 and ready.state is None


async def test_zoom_terminating_the_stream_on_signaling_ends_it_stopped(ready):
    signaling = ready.transport.opened[0]
    signaling.send(terminated(int(StopReason.MEETING_ENDED)))
    await ready.manager.wait_idle()
    assert ((await ready.stored()).state, ready.manager.reconnects) == ("stopped", {})


async def test_a_stream_zoom_terminates_for_a_failure_reason_reconnects_after_the_backoff(ready):
    ready.transport.opened[0].send(terminated(int(StopReason.KEEP_ALIVE_TIMEOUT)))
    await until(lambda: ready.state is S.RECONNECTING)
    await until(lambda: 3.0 in ready.clock.deadlines)
    ready.clock.advance(3.0)
    await accept_stream(ready.transport)
    await until(lambda: ready.state is S.READY)
    assert ready.manager.reconnects == {"stopped": 1}


async def test_a_stream_not_back_within_zoom_window_ends_lost_with_the_reason(ready):
    ready.transport.refuse(SIGNALING_URL)
    ready.transport.opened[0].close(1011)
    # Waits of 3, 6, 12 and 24 s, then the 15 s left of the 60 s window: an attempt as it closes.
    for attempt, at in enumerate([3.0, 9.0, 21.0, 45.0, 60.0], start=1):
        await until(lambda at=at: at in ready.clock.deadlines)
        assert ready.state is S.RECONNECTING, f"gave up before the attempt at {at} s"
        ready.clock.advance(at - ready.clock.now())
        await until(lambda attempt=attempt:
                    ready.transport.urls.count(SIGNALING_URL) == 1 + attempt)
    await ready.manager.wait_idle()
    stored = await ready.stored()
    assert stored.state == "lost" and stored.stopped_at_ms is not None
    assert stored.status_reason == (f"signaling: cannot connect: {SIGNALING_URL} refused; "
                                    "no connection within 60 s")
    assert ready.manager.outcomes == {"lost": 1} and ready.manager.reconnects == {"lost": 5}


async def test_a_reconnect_zoom_rejects_ends_the_stream_with_zoom_status(ready):
    ready.transport.opened[0].close(1011)
    await until(lambda: 3.0 in ready.clock.deadlines)
    ready.clock.advance(3.0)
    await accept_signaling(ready.transport, status=int(StatusCode.INVALID_RTMS_STREAM_ID))
    await ready.manager.wait_idle()
    stored = await ready.stored()
    assert (stored.state, stored.status_code) == ("rejected", 2) and stored.stopped_at_ms
    assert ready.manager.outcomes == {"rejected": 1}


async def test_a_duplicate_signal_request_is_retried_with_the_backoff_until_zoom_lets_go(gateway):
    # Zoom still holds the socket a blip left behind: it answers 8 until it lets go of it.
    await gateway.start()
    await accept_signaling(gateway.transport, status=int(StatusCode.DUPLICATE_SIGNAL_REQUEST))
    await until(lambda: gateway.state is S.RECONNECTING)
    stored = await gateway.stored()
    assert (stored.state, stored.status_code, stored.stopped_at_ms) == ("reconnecting", 8, None)
    await until(lambda: 3.0 in gateway.clock.deadlines)
    gateway.clock.advance(3.0)
    await accept_signaling(gateway.transport, status=int(StatusCode.DUPLICATE_SIGNAL_REQUEST))
    await until(lambda: 9.0 in gateway.clock.deadlines)  # the next wait, doubled
    gateway.clock.advance(6.0)
    await accept_stream(gateway.transport)
    await until(lambda: gateway.state is S.READY)
    assert gateway.manager.reconnects == {"rejected": 2}
    assert (await gateway.stored()).state == "ready"


async def test_a_stop_webhook_while_reconnecting_ends_the_stream_stopped_with_zoom_reason(ready):
    ready.transport.opened[0].close(1011)
    await until(lambda: ready.state is S.RECONNECTING)
    reason = int(StopReason.MEETING_ENDED)
    await ready.manager.handle(StreamStopped(Product.MEETING, MEETING, STREAM, reason, event_ts=5))
    await ready.manager.wait_idle()
    stored = await ready.stored()
    assert (stored.state, stored.stop_reason) == ("stopped", reason) and stored.stopped_at_ms
    ready.clock.advance(60.0)
    assert len(ready.transport.urls) == 3  # never connected again


async def test_shutting_down_while_reconnecting_leaves_the_stream_to_rejoin(ready):
    ready.transport.opened[0].close(1011)
    await until(lambda: ready.state is S.RECONNECTING)
    await ready.manager.shutdown()
    stored = await ready.stored()
    assert stored.state == "detached" and stored.stopped_at_ms is None
    assert await ready.store.memory.ended_state(STREAM) is None


async def test_shutting_down_detaches_a_ready_stream_without_ending_it_at_zoom(ready):
    await ready.manager.shutdown()
    stored = await ready.stored()
    assert stored.state == "detached" and stored.stopped_at_ms is None
    assert ready.manager.outcomes == {"detached": 1}
    assert [end.client.close_code for end in ready.transport.opened] == [1000, 1000, 1000]


async def test_a_flooding_stream_has_its_sockets_paused_until_its_records_are_committed(tmp_path):
    g = await open_gateway(tmp_path, stream_high_watermark=5)
    try:
        await g.start()
        _, media = await accept_stream(g.transport)
        await until(lambda: g.state is S.READY)
        for i in range(5):
            media[TRANSCRIPT_URL].send(transcript(f"words {i}", timestamp=1_700_000_000_000 + i))
        assert [end.paused for end in g.transport.opened] == [True, True, True]
        await g.pipeline.flush()
        assert [end.paused for end in g.transport.opened] == [False, False, False]
        assert len(await g.store.transcript(MEETING)) == 5
    finally:
        await g.manager.shutdown()
        await g.pipeline.close()
        await g.store.close()


async def test_the_pipeline_pausing_every_stream_reaches_every_socket(ready):
    ready.pipeline.intake.pause()
    assert all(end.paused for end in ready.transport.opened)
    ready.pipeline.intake.resume()
    assert not any(end.paused for end in ready.transport.opened)


async def test_the_heartbeat_keeps_the_held_streams_fresh_for_a_restart(ready):
    await ready.pipeline.flush()
    async with ready.store.engine.begin() as conn:  # as if last touched long ago
        await conn.execute(update(schema.streams).values(updated_at_ms=0))
    assert [updated for _, _, updated in await ready.store.streams_to_rejoin()] == [0]
    await until(lambda: 5.0 in ready.clock.deadlines)
    ready.clock.advance(5.0)
    await until(lambda: 10.0 in ready.clock.deadlines)  # the beat is queued, the next one armed
    await ready.pipeline.flush()
    assert [updated for _, _, updated in await ready.store.streams_to_rejoin()] != [0]
