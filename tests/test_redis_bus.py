"""The Redis bus against the real Redis on this machine (RTMS_TEST_REDIS_URL): every feed
item reaches the streams, readable by a consumer group; Redis cut away (a TCP proxy in
between) makes items wait in the store, counted, and they all arrive once it is back; a
restart resumes where the store says. Each test uses stream names of its own."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as redis

from rtms_gateway.sinks.bus import RedisBus, entry
from rtms_gateway.sinks.feed import FeedItem
from rtms_gateway.sinks.store import Store

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually
from .store_cases import chat_msg, seed, seg
from .stores import DATABASES, a_store
from .tcp_proxy import TcpProxy

URL = os.environ.get("RTMS_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not URL, reason="RTMS_TEST_REDIS_URL is not set")
pytestmark = pytest.mark.timeout(120)
GROUP = "readers"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Stream names no other test uses; deleted afterwards."""
    assert URL is not None
    name = f"rtms-test-{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.Redis.from_url(URL)
    try:
        keys = [k async for k in client.scan_iter(match=name + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=DATABASES)
async def opened(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        yield opened


def via(port: int) -> str:
    assert URL is not None
    parts = urlsplit(URL)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def redis_target() -> tuple[str, int]:
    assert URL is not None
    parts = urlsplit(URL)
    return parts.hostname or "127.0.0.1", parts.port or 6379


class Reader:
    """A consumer in a group on one stream: reads what is new, acknowledges it."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        self.entries: list[dict[bytes, bytes]] = []

    async def create(self) -> None:
        await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    async def read(self) -> list[str]:
        """Everything read so far, as cursors."""
        got = await self.client.xreadgroup(GROUP, "c1", {self.stream: ">"}, count=1000)
        for _, rows in got:
            for entry_id, fields in rows:
                self.entries.append(fields)
                await self.client.xack(self.stream, GROUP, entry_id)
        return [e[b"cursor"].decode() for e in self.entries]


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    assert URL is not None
    c = redis.Redis.from_url(URL)
    yield c
    await c.aclose()


async def write_some(store: Store, uuid_: str, n: int) -> None:
    await store.write_batch(segments=[seg(i, uuid_) for i in range(n)], chats=[chat_msg(uuid_)])


def test_a_redis_url_is_checked_and_never_repeated(monkeypatch, tmp_path):
    from rtms_gateway.config import Settings, load_settings
    from rtms_gateway.protocol.errors import StartupError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RTMS_REDIS_URL", "http://user:hunter2@host/")
    with pytest.raises(StartupError, match="RTMS_REDIS_URL: not a Redis URL") as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)
    assert Settings(_env_file=None, RTMS_REDIS_URL="rediss://:pw@host:6380/1").redis_url


def test_an_entry_holds_the_live_feeds_fields():
    import msgspec

    from rtms_gateway.sinks.feed import FeedKind

    item = FeedItem(7, FeedKind.CHAT, "chat.message", "m\ud800/1", 1_700_000_000_123,
                    msgspec.Raw(b'{"text":"hi"}'))
    assert entry(item) == {"cursor": item.cursor, "kind": "chat", "type": "chat.message",
                           "meeting_uuid": b"m\\ud800/1", "stored_at_ms": 1_700_000_000_123,
                           "stored_at_iso": "2023-11-14T22:13:20.123Z", "data": b'{"text":"hi"}'}


@pytest.mark.redis
@needs_redis
async def test_items_reach_both_streams_and_a_consumer_group_reads_them_in_order(opened, prefix, client):
    store = opened.store
    await seed(store, "before")  # stored before the bus: not sent (it starts at the head)
    everything = Reader(client, prefix + "all")
    one = Reader(client, prefix + "meeting:m1")
    await everything.create()
    await one.create()
    assert URL is not None
    bus = RedisBus(store, URL, maxlen=10_000, prefix=prefix)
    await bus.start()
    try:
        await seed(store, "m1")
        await write_some(store, "m1", 5)
        await seed(store, "m2")
        await write_some(store, "m2", 3)
        await store.mark_meeting_stopped("m1", 9, 6)
        stored = [i for i in await store.feed() if i.meeting_uuid != "before"]

        async def read_all() -> bool:
            return len(await everything.read()) >= len(stored)

        assert await eventually(read_all, 30)
        assert await eventually(lambda: _read(one, 8), 30)
        assert bus.metrics()["redis_backlog"] == 0 and bus.metrics()["redis_items_sent"] == len(stored)
    finally:
        await bus.close()
    assert await everything.read() == [i.cursor for i in stored]  # each once, in order
    assert await one.read() == [i.cursor for i in stored if i.meeting_uuid == "m1"]
    for fields, item in zip(everything.entries, stored, strict=True):
        assert fields[b"kind"].decode() == item.kind and fields[b"type"].decode() == item.type
        assert fields[b"meeting_uuid"].decode() == item.meeting_uuid
        assert json.loads(fields[b"data"]) == json.loads(bytes(item.data))
        assert int(fields[b"stored_at_ms"]) == item.stored_at_ms


async def _read(reader: Reader, n: int) -> bool:
    return len(await reader.read()) >= n


@pytest.mark.redis
@needs_redis
async def test_redis_away_items_wait_counted_and_all_arrive_when_it_is_back_also_across_a_restart(
        opened, prefix, client):
    store = opened.store
    proxy = TcpProxy(*redis_target())
    port = await proxy.start()
    everything = Reader(client, prefix + "all")
    await everything.create()
    bus = RedisBus(store, via(port), maxlen=10_000, prefix=prefix)
    await bus.start()
    try:
        await seed(store, "m1")
        assert await eventually(lambda: _read(everything, 2), 30)
        await proxy.switch_off()
        await write_some(store, "m1", 20)  # ingest goes on: nothing waits on Redis
        assert await eventually(lambda: bus.metrics()["redis_errors"] >= 1, 30)
        assert bus.metrics()["redis_backlog"] >= 21 and bus.metrics()["redis_connected"] == 0
        await proxy.switch_on()
        assert await eventually(lambda: bus.metrics()["redis_backlog"] == 0, 60)
        assert bus.metrics()["redis_connected"] == 1
        await bus.close()
        await write_some(store, "m2", 4)  # stored while no bus runs
        store = await opened.reopen()
        bus = RedisBus(store, via(port), maxlen=10_000, prefix=prefix)
        await bus.start()
        await store.mark_meeting_stopped("m1", 9, 6)
        stored = await store.feed()
        assert await eventually(lambda: _read(everything, len(stored)), 30)
    finally:
        await bus.close()
        await proxy.close()
    cursors = await everything.read()
    # At least once: a batch cut mid-way may come again; by cursor, exactly the feed.
    assert list(dict.fromkeys(cursors)) == [i.cursor for i in stored]


@pytest.mark.redis
@needs_redis
async def test_the_gateway_sends_a_simulated_meeting_to_redis(tmp_path, prefix, client):
    reader = Reader(client, prefix + "all")
    await reader.create()
    async with GatewayWithSimulator(tmp_path, RTMS_REDIS_URL=URL, RTMS_REDIS_PREFIX=prefix,
                                    RTMS_REDIS_MAXLEN="1000") as run:
        handle = run.simulator.start_meeting(duration=3.0)
        await handle.wait(30)
        await run.settle()
        stored = await run.gateway.store.feed()
        assert await eventually(lambda: _read(reader, len(stored)), 30)
        async with run.http() as http:
            metrics = (await http.get("/metrics")).text
    assert list(dict.fromkeys(await reader.read())) == [i.cursor for i in stored]
    assert any(i.type == "transcript.segment" for i in stored)
    assert "rtms_redis_backlog 0.0" in metrics and "rtms_redis_connected 1.0" in metrics
    length = await client.xlen(f"{prefix}meeting:{handle.script.owner_id}")
    assert length == len([i for i in stored if i.meeting_uuid == handle.script.owner_id])
