"""The live feeds over real HTTP: SSE and WebSocket subscribers of a real gateway fed by
the simulator, resuming by cursor (after a disconnect, and after a SIGKILL and restart)
with exactly the stored sequence; an overflowing subscriber told where to resume; filters
and keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote, urlencode

import h11
import httpx
import msgspec
import pytest
import websockets

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.sinks.cursors import format_cursor, parse_cursor
from rtms_gateway.sinks.feed import FeedItem, FeedKind
from rtms_gateway.sinks.live import OVERFLOWED, HubFull, LiveFilter, LiveHub
from rtms_gateway.sinks.records import TranscriptSegment
from rtms_gateway.sinks.store import Store

from . import postgres
from .gateway_harness import API_KEY, AUTH, GatewayWithSimulator
from .serve_process import (
    eventually,
    free_port,
    no_stream_live,
    serve_env,
    simulator_for,
    start_serve,
)

STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)  # a live feed is quiet for as long as it likes


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


def parse_events(text: str) -> tuple[list[Event], int]:
    """SSE text as its events, and how many comment lines it held."""
    events, comments = [], 0
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
        if "data" in fields:
            events.append(Event(fields.get("id"), fields.get("event", "message"),
                                json.loads(fields["data"])))
    return events, comments


class Sse:
    """One SSE subscription over httpx; `events` fills as they arrive."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
                 ) -> None:
        self.http, self.url, self.headers = http, url, headers or {}
        self.events: list[Event] = []
        self.comments = 0
        self.ended = False
        self.status: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._opened.wait(), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async with self.http.stream("GET", self.url, headers=self.headers,
                                        timeout=STREAM_TIMEOUT) as response:
                self.status = response.status_code
                self._opened.set()
                if response.status_code != 200:
                    await response.aread()
                    return
                buffer = ""
                async for chunk in response.aiter_text():
                    buffer += chunk
                    *blocks, buffer = buffer.split("\n\n")
                    events, comments = parse_events("\n\n".join(blocks) + "\n\n")
                    self.events += events
                    self.comments += comments
        finally:
            self.ended = True
            self._opened.set()

    async def until(self, check: Any, timeout: float = 60.0) -> None:
        assert await eventually(lambda: check(self) or self.ended, timeout), "no such event came"
        assert check(self), f"the stream ended first ({len(self.events)} events)"

    def has(self, cursor: str) -> bool:
        return any(e.id == cursor for e in self.events)


def stored(items: list[FeedItem]) -> list[Event]:
    """Feed items as an SSE subscriber sees them."""
    return [Event(i.cursor, i.kind.value, json.loads(i.to_json())) for i in items]


async def whole_feed(store: Store, **filters: Any) -> list[FeedItem]:
    items: list[FeedItem] = []
    after = filters.pop("after", None)
    while page := await store.feed(after=items[-1].seq if items else after, limit=500, **filters):
        items += page
    return items


def live_url(uuid: str, **params: str) -> str:
    return f"/api/meetings/{quote(uuid, safe='')}/live" + (f"?{urlencode(params)}" if params else "")


DATABASES = ["sqlite", pytest.param("postgres", marks=postgres.needs_postgres)]


@pytest.mark.parametrize("database", DATABASES)
async def test_a_subscriber_that_leaves_mid_meeting_and_resumes_has_exactly_the_stored_feed(
        tmp_path, database):
    async with contextlib.AsyncExitStack() as stack:
        env = {}
        if database == "postgres":
            schema = await stack.enter_async_context(postgres.own_schema())
            env.update(RTMS_DATABASE_URL=postgres.URL, RTMS_DATABASE_SCHEMA=schema)
        run = await stack.enter_async_context(GatewayWithSimulator(tmp_path, **env))
        # PostgreSQL keeps a NUL in an id as U+FFFD: the live filter finds the meeting still.
        handle = run.simulator.start_meeting(duration=8.0, meeting_uuid="live/\x00meeting==")
        uuid = handle.script.owner_id
        async with run.http() as http:
            async with Sse(http, live_url(uuid, after="")) as first:
                await first.until(lambda s: sum(e.event == "transcript" for e in s.events) >= 2)
            seen = list(first.events)
            left_at = seen[-1].id
            # Items go on being stored while nobody listens.
            assert await eventually(
                lambda: _head_past(run.gateway.store, left_at, uuid), 30)
            async with Sse(http, live_url(uuid), {"Last-Event-ID": left_at}) as second:
                record = await handle.wait(40)
                await run.settle()
                assert record.outcome == "completed", record.summary_line()
                expected = stored(await whole_feed(run.gateway.store, meeting_uuid=uuid))
                await second.until(lambda s: s.has(expected[-1].id))
                got = seen + second.events
            assert got == expected
            kinds = {e.event for e in got}
            assert {"meeting", "transcript", "chat", "participant"} <= kinds
            # The same cursors as the REST API's pages.
            rest = (await http.get(f"/api/meetings/{quote(uuid, safe='')}/transcript",
                                   params={"limit": 1000, "after": ""})).json()["segments"]
            assert [e.data["cursor"] for e in got if e.event == "transcript"] == \
                [s["cursor"] for s in rest]
            assert [e.data["data"]["text"] for e in got if e.event == "transcript"] == \
                [t.data for t in record.transcripts]


async def _head_past(store: Store, cursor: str | None, uuid: str) -> bool:
    items = await store.feed(meeting_uuid=uuid, limit=1000)
    return bool(items) and items[-1].cursor > (cursor or "")


async def test_resume_across_a_gateway_sigkill_and_restart(tmp_path):
    port = free_port()
    sim = await simulator_for(port)
    env = serve_env(sim, tmp_path, RTMS_DATA_DIR=str(tmp_path / "data"), RTMS_API_KEYS=API_KEY,
                    RTMS_RECONNECT_INITIAL_S="0.2")
    gateway = await start_serve(tmp_path, port, env, "gateway-1.log")
    try:
        handle = sim.start_meeting(duration=12.0)
        uuid = handle.script.owner_id
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            async with Sse(http, live_url(uuid, after="")) as first:
                await first.until(lambda s: sum(e.event == "transcript" for e in s.events) >= 2)
                gateway.send_signal(signal.SIGKILL)
                await gateway.wait()
                assert await eventually(lambda: first.ended, 20)
            seen = list(first.events)
            gateway = await start_serve(tmp_path, port, env, "gateway-2.log")
            async with Sse(http, live_url(uuid), {"Last-Event-ID": seen[-1].id}) as second:
                record = await handle.wait(60)
                assert await eventually(lambda: no_stream_live(port), 20)
                store = await Store.open(f"sqlite:///{tmp_path / 'data' / 'rtms.sqlite3'}")
                try:
                    expected = stored(await whole_feed(store, meeting_uuid=uuid))
                finally:
                    await store.close()
                await second.until(lambda s: s.has(expected[-1].id))
                got = seen + second.events
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 30)
        await sim.stop()
    assert record.outcome == "completed" and record.interruptions == 1, record.summary_line()
    assert got == expected
    texts = [e.data["data"]["text"] for e in got if e.event == "transcript"]
    assert len(texts) == len(set(texts)) and set(texts) <= {t.data for t in record.transcripts}
    # The restarted gateway's items (its rejoin, the meeting's end) came after the seam.
    assert "meeting.ended" in [e.data["type"] for e in got[len(seen):]]


def _stalled_request(port: int, path: str) -> socket.socket:
    """A subscriber that sends its request and reads nothing: its receive window is as
    small as the system allows, so the gateway's writes to it soon block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
                 "Connection: close\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Everything the gateway sends until it closes: status and body (chunking undone)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))  # in step with it
    conn.send(h11.EndOfMessage())
    loop = asyncio.get_running_loop()
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 30))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, body


async def test_a_stalled_subscriber_is_told_where_to_resume_and_closed_while_others_get_all(
        tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_LIVE_QUEUE_SIZE="16") as run:
        store, hub = run.gateway.store, run.gateway.live
        start = format_cursor(await store.feed_head() or 0)
        port = int(run.base_url.rsplit(":", 1)[1])
        stalled = _stalled_request(port, f"/api/live?kinds=transcript&after={start}")
        try:
            async with run.http() as http, \
                    Sse(http, f"/api/live?after={start}") as fast, \
                    Sse(http, f"/api/live?kinds=transcript&after={start}") as fast_too:
                assert await eventually(lambda: hub.subscribers == 3, 20)
                # Big segments, one write each, until the stalled subscriber's queue is full.
                written = 0
                while hub.counters["overflowed"] == 0 and written < 1000:
                    written += 1
                    await store.write_batch([TranscriptSegment(
                        meeting_uuid="busy-meeting", rtms_stream_id="s1", user_id=1,
                        user_name="Ada", text=f"{written} " + "word " * 6000,
                        timestamp=1_700_000_000_000 + written)])
                assert hub.counters["overflowed"] == 1, "the stalled subscriber overflowed"
                last = format_cursor(await store.feed_head() or 0)
                await fast.until(lambda s: s.has(last))
                await fast_too.until(lambda s: s.has(last))
                everything = stored(await whole_feed(store, after=parse_cursor(start)))
                assert fast.events == everything and fast_too.events == everything
                assert hub.counters["overflowed"] == 1, "no one else fell behind"
                metrics = (await http.get("/metrics")).text
                assert "rtms_live_subscribers_overflowed_total 1.0" in metrics
                assert "rtms_live_subscribers 2.0" in metrics

            status, body = await _read_response(stalled)
            events, _ = parse_events(body.decode())
            assert status == 200 and events[-1].event == "overflow"
            got, overflow = events[:-1], events[-1]
            assert got == everything[:len(got)], "what it got before overflowing, in order"
            assert overflow.id == overflow.data["cursor"] == (got[-1].id if got else start)
            async with run.http() as http, \
                    Sse(http, "/api/live?kinds=transcript", {"Last-Event-ID": overflow.id}) as back:
                await back.until(lambda s: s.has(last))
                assert got + back.events == everything
        finally:
            stalled.close()


def _ws_url(run: Any, **params: str) -> str:
    return run.base_url.replace("http://", "ws://") + "/api/live/ws?" + urlencode(params)


async def _ws_until(ws: Any, cursor: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1]["cursor"] != cursor:
            got.append(json.loads(await ws.recv()))
    return got


async def test_the_websocket_carries_the_same_items_as_sse_and_both_need_a_key(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        handle = run.simulator.start_meeting(duration=4.0)
        uuid = handle.script.owner_id
        by_subprotocol = websockets.connect(
            _ws_url(run, meeting=uuid, after=""),
            subprotocols=["rtms.live", f"bearer.{API_KEY}"])  # type: ignore[list-item]
        by_header = websockets.connect(_ws_url(run, meeting=uuid, after=""),
                                       additional_headers=AUTH)
        async with run.http() as http, Sse(http, live_url(uuid, after="")) as sse, \
                by_subprotocol as ws, by_header as ws_too:
            assert ws.subprotocol == "rtms.live"
            record = await handle.wait(40)
            await run.settle()
            assert record.outcome == "completed", record.summary_line()
            expected = stored(await whole_feed(run.gateway.store, meeting_uuid=uuid))
            await sse.until(lambda s: s.has(expected[-1].id))
            assert sse.events == expected
            assert await _ws_until(ws, expected[-1].id) == [e.data for e in expected]
            assert await _ws_until(ws_too, expected[-1].id) == [e.data for e in expected]
            # Resumed from a cursor, as SSE is.
            middle = expected[len(expected) // 2]
            async with websockets.connect(_ws_url(run, meeting=uuid, after=middle.id),
                                          additional_headers=AUTH) as resumed:
                assert await _ws_until(resumed, expected[-1].id) == \
                    [e.data for e in expected[len(expected) // 2 + 1:]]

            for headers in ({}, {"Authorization": "Bearer not-a-key-of-this-gateway"}):
                async with httpx.AsyncClient(base_url=run.base_url, headers=headers) as anyone:
                    refused = await anyone.get(live_url(uuid, after=""))
                    assert refused.status_code == 401
                    assert (await anyone.get("/api/live")).status_code == 401
                with pytest.raises(websockets.InvalidStatus) as denied:
                    async with websockets.connect(_ws_url(run), additional_headers=headers):
                        pass
                assert denied.value.response.status_code == 401
            with pytest.raises(websockets.InvalidStatus) as denied:
                async with websockets.connect(_ws_url(run), subprotocols=[
                        "rtms.live", "bearer.not-a-key-of-this-gateway"]):  # type: ignore[list-item]
                    pass
            assert denied.value.response.status_code == 401
            assert run.gateway.live.subscribers == 3  # the refused ones never subscribed


async def test_filters_by_kind_and_meeting(tmp_path):
    async with GatewayWithSimulator(tmp_path) as run:
        one = run.simulator.start_meeting(duration=4.0, seed=1)
        other = run.simulator.start_meeting(duration=4.0, seed=2)
        a, b = one.script.owner_id, other.script.owner_id
        asked = {  # url -> the store's filter
            f"/api/live?kinds=transcript,chat&meeting={quote(a, safe='')}&after=":
                {"meeting_uuid": a, "kinds": [FeedKind.TRANSCRIPT, FeedKind.CHAT]},
            "/api/live?kinds=participant&after=": {"kinds": [FeedKind.PARTICIPANT]},
            live_url(b, kinds="meeting", after=""): {"meeting_uuid": b, "kinds": [FeedKind.MEETING]},
            "/api/live?after=": {},
        }
        async with run.http() as http:
            subscribers = [Sse(http, url) for url in asked]
            for sub in subscribers:
                await sub.__aenter__()
            try:
                for handle in (one, other):
                    assert (await handle.wait(40)).outcome == "completed"
                await run.settle()
                for sub, filters in zip(subscribers, asked.values(), strict=True):
                    expected = stored(await whole_feed(run.gateway.store, **filters))
                    await sub.until(lambda s, last=expected[-1].id: s.has(last))
                    assert sub.events == expected, sub.url
                assert {e.data["meeting_uuid"] for e in subscribers[1].events} == {a, b}
            finally:
                for sub in subscribers:
                    await sub.close()
            for bad in ("/api/live?kinds=transcript,gossip", "/api/live?after=c123",
                        live_url(a, kinds="")):
                answer = await http.get(bad)
                assert answer.status_code == 400, bad
            answer = await http.get(live_url(a), headers={"Last-Event-ID": "yesterday"})
            assert answer.status_code == 400 and "Last-Event-ID" in answer.text
            with pytest.raises(websockets.InvalidStatus) as denied:
                async with websockets.connect(_ws_url(run, kinds="gossip"), additional_headers=AUTH):
                    pass
            assert denied.value.response.status_code == 400


async def test_idle_subscribers_get_keep_alives_and_the_subscriber_bound_is_kept(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_LIVE_HEARTBEAT_S="0.1",
                                    RTMS_LIVE_MAX_SUBSCRIBERS="1") as run, run.http() as http:
        async with Sse(http, "/api/live") as idle:
            await idle.until(lambda s: s.comments >= 2)
            assert idle.events == []
            busy = await http.get("/api/live")
            assert busy.status_code == 503 and busy.headers["retry-after"]
            with pytest.raises(websockets.InvalidStatus) as denied:
                async with websockets.connect(_ws_url(run), additional_headers=AUTH):
                    pass
            assert denied.value.response.status_code == 503
        assert await eventually(lambda: run.gateway.live.subscribers == 0, 20)
        async with Sse(http, "/api/live") as again:
            assert again.status == 200


async def test_media_items_carry_their_download_url_as_the_rest_api_lists_them(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript") as run:
        handle = run.simulator.start_meeting(duration=3.0,
                                             media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        uuid = handle.script.owner_id
        async with run.http() as http, Sse(http, live_url(uuid, kinds="media", after="")) as sse, \
                websockets.connect(_ws_url(run, meeting=uuid, kinds="media", after=""),
                                   additional_headers=AUTH) as ws:
            assert (await handle.wait(40)).outcome == "completed"
            await run.settle()
            expected = await whole_feed(run.gateway.store, meeting_uuid=uuid,
                                        kinds=[FeedKind.MEDIA])
            assert [i.type for i in expected] == ["media.new", "media.ready"]
            await sse.until(lambda s: s.has(expected[-1].cursor))
            listed = (await http.get(f"/api/meetings/{quote(uuid, safe='')}/media")).json()
            urls = {f["id"]: f["url"] for f in listed["files"]}
            assert [e.id for e in sse.events] == [i.cursor for i in expected]
            for event in sse.events:
                assert event.data["data"]["url"] == urls[event.data["data"]["id"]]
            assert (await http.get(sse.events[-1].data["data"]["url"])).status_code == 200
            assert await _ws_until(ws, expected[-1].cursor) == [e.data for e in sse.events]


# ---- the hub alone ---------------------------------------------------------------------


def _item(seq: int, kind: FeedKind = FeedKind.TRANSCRIPT, meeting: str = "m") -> FeedItem:
    return FeedItem(seq, kind, "x.y", meeting, 0, msgspec.Raw(b"{}"))


async def test_the_hub_hands_a_full_subscriber_its_queue_then_overflowed_and_lets_it_go():
    hub = LiveHub(queue_size=2, max_subscribers=2)
    slow, other = hub.subscribe(), hub.subscribe(LiveFilter(kinds=[FeedKind.CHAT]))
    with pytest.raises(HubFull):
        hub.subscribe()
    hub.publish([_item(1), _item(2), _item(3, FeedKind.CHAT)])
    assert hub.subscribers == 1 and hub.counters["overflowed"] == 1
    assert [await slow.get(), await slow.get()] == [_item(1), _item(2)]
    assert await slow.get() is OVERFLOWED
    with pytest.raises(StopAsyncIteration):
        await slow.get()
    other.drop_through(3)  # a replay from the store sent it: room for two again
    hub.publish([_item(4, FeedKind.CHAT), _item(5, FeedKind.CHAT)])
    other.drop_through(4)
    assert hub.subscribers == 1 and await other.get() == _item(5, FeedKind.CHAT)
    assert await other.get(timeout=0) is None  # nothing more: a heartbeat's turn
    hub.subscribe()  # room again
    hub.close()
    with pytest.raises(StopAsyncIteration):
        await other.get()


def test_the_meeting_filter_knows_an_id_as_postgresql_stores_it():
    wanted = LiveFilter("a\x00b", [FeedKind.TRANSCRIPT])
    assert wanted.matches(_item(1, meeting="a\x00b")) and wanted.matches(_item(1, meeting="a\ufffdb"))
    assert not wanted.matches(_item(1, meeting="ab"))
    assert not wanted.matches(_item(1, FeedKind.CHAT, meeting="a\x00b"))
