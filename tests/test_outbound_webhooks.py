"""Outbound webhooks: a real receiver on loopback (uvicorn), real stores, the simulator as
Zoom. Every event arrives, signed as Standard Webhooks says, each webhook-id once after
dedup, in cursor order, through failed attempts, dead letters, replays and a SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator import build_meeting
from rtms_gateway.simulator.scenario import CHAT_KINDS
from rtms_gateway.sinks.cursors import parse_cursor
from rtms_gateway.sinks.outbox import (
    EVENT_TYPES,
    Outbox,
    OutboxConfig,
    RetryPolicy,
    UnknownEventType,
    parse_events,
)
from rtms_gateway.sinks.outbox_store import DEAD, DELIVERED, PENDING, Delivery, OutboxStore
from rtms_gateway.sinks.revoke import Revocations
from rtms_gateway.sinks.store import Store
from rtms_gateway.sinks.webhook_signing import new_secret, sign
from rtms_gateway.sinks.webhook_targets import guarded_transport, is_public

from .gateway_harness import API_KEY, AUTH, GatewayWithSimulator
from .serve_process import eventually, free_port, serve_env, simulator_for, start_serve
from .store_cases import seed
from .stores import DATABASES, a_store

pytestmark = pytest.mark.timeout(180)
FAST_RETRY = {"RTMS_WEBHOOK_ALLOW_PRIVATE": "true", "RTMS_WEBHOOK_RETRY_INITIAL_S": "0.05",
              "RTMS_WEBHOOK_RETRY_MAX_S": "0.3"}


# ---- the receiver -----------------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers `fail_with` to the first `fail_first` requests and to every request while
    `failing`, 204 otherwise; keeps every request."""

    fail_first: int = 0
    failing: bool = False
    fail_with: int = 503
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    held: int = 0  # requests to /slow, each held until `release`
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, request: Request) -> Response:
        self.held += 1
        await self.release.wait()
        return Response(status_code=204)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        fail = self.failing or len(self.requests) < self.fail_first
        code = self.fail_with if fail else 204
        self.requests.append(Received(request.headers.get("webhook-id", ""),
                                      request.headers.get("webhook-timestamp", ""),
                                      request.headers.get("webhook-signature", ""), body, code))
        return Response(status_code=code)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> dict[str, Received]:
        """Each webhook-id answered 2xx, once (the receiver's dedup), first arrival kept."""
        out: dict[str, Received] = {}
        for r in self.requests:
            if r.answered < 300:
                out.setdefault(r.webhook_id, r)
        return out


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.handle, methods=["POST"]),
                            Route("/slow", rec.hold, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    rec.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    assert await eventually(lambda: server.started or task.done(), 10) and server.started
    yield rec
    rec.release.set()
    server.should_exit = True
    await task
    sock.close()


# ---- verification, as a receiver does it (independently of the gateway's code) -----------


def verify(secret: str, r: Received, now: float | None = None) -> dict[str, Any]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{r.webhook_id}.{r.timestamp}.".encode() + r.body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert any(hmac.compare_digest(expected, s) for s in r.signature.split(" ")), "signature"
    assert abs((now or time.time()) - int(r.timestamp)) < 300, "timestamp within tolerance"
    body: dict[str, Any] = json.loads(r.body)
    assert set(body) == {"type", "timestamp", "data"}
    return body


def test_signatures_match_the_standard_webhooks_reference_example():
    # From the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_are_whsec_and_24_random_bytes():
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and a != b and len(base64.b64decode(a[6:])) == 24


def test_event_types_are_checked_and_kept_in_one_order():
    assert parse_events(["meeting.ended,transcript.segment", "chat.message"]) == (
        "transcript.segment", "chat.message", "meeting.ended")
    with pytest.raises(UnknownEventType, match=r"'meeting\.exploded'"):
        parse_events(["meeting.exploded"])
    with pytest.raises(UnknownEventType, match="no event type"):
        parse_events([" , "])


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True), ("224.0.0.1", False),
])
def test_only_public_addresses_are_targets(address, public):
    import ipaddress

    assert is_public(ipaddress.ip_address(address)) is public


async def test_the_guarded_transport_connects_to_what_it_checked_and_refuses_the_rest(receiver):
    """Through real sockets: the address policy here accepts 127.0.0.1 alone (the gateway's
    accepts public addresses alone); what it accepts is reached, anything else refused
    before a connection is made."""
    import ipaddress

    def only_v4_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address == ipaddress.ip_address("127.0.0.1")

    async with httpx.AsyncClient(transport=guarded_transport(only_v4_loopback)) as http:
        assert (await http.post(receiver.url, content=b"{}")).status_code == 204
        for url in (f"http://[::1]:{receiver.port}/hook", f"http://127.0.0.2:{receiver.port}/hook"):
            with pytest.raises(httpx.ConnectError, match=r"refused: .*private or link-local"):
                await http.post(url, content=b"{}")
    async with httpx.AsyncClient(transport=guarded_transport()) as http:  # the gateway's policy
        with pytest.raises(httpx.ConnectError, match="refused"):
            await http.post(receiver.url, content=b"{}")
    assert len(receiver.requests) == 1


def test_backoff_doubles_with_jitter_and_the_last_attempt_is_made_at_the_max_age():
    policy = RetryPolicy(initial_s=1.0, cap_s=8.0, max_age_s=60.0)

    def after(attempts: int, at_ms: int) -> int | None:
        d = Delivery(id=1, subscription_id=1, seq=1, type="t", status=PENDING, attempts=attempts,
                     created_at_ms=0, next_attempt_at_ms=0)
        return policy.next_attempt_ms(d, at_ms)

    for attempts, base in ((0, 1000), (1, 2000), (2, 4000), (3, 8000), (9, 8000)):
        waits = {after(attempts, 1000)  - 1000 for _ in range(50)}  # type: ignore[operator]
        assert all(base / 2 <= w <= base for w in waits) and len(waits) > 1
    assert after(5, 59_000) == 60_000  # never past the deadline
    assert after(5, 60_000) is None  # the deadline passed: dead


# ---- the outbox's tables, on SQLite and PostgreSQL -------------------------------------------


@pytest.fixture(params=DATABASES)
async def opened(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        yield opened


async def test_deliveries_keep_their_attempts_and_move_the_position_once_done(opened):
    store: Store = opened.store
    await seed(store, "m1")
    outbox = OutboxStore(store)
    sub = await outbox.add("https://example.com/hook", ("meeting.started",), new_secret())
    assert sub.position == (await store.feed_head()) and await outbox.live() == [sub]
    await store.mark_meeting_stopped("m1", 9, 6)
    (item,) = await store.feed(after=sub.position)
    assert await outbox.begun(sub.id, [item.seq]) == {}
    fresh = Delivery(id=0, subscription_id=sub.id, seq=item.seq, type=item.type, status=PENDING,
                     attempts=0, created_at_ms=item.stored_at_ms, next_attempt_at_ms=1)
    failed = await outbox.record_attempt(fresh, at_ms=5, status=PENDING, status_code=500,
                                         error="HTTP 500", next_attempt_at_ms=99)
    assert failed.id > 0 and failed.attempts == 1
    store = await opened.reopen()
    outbox = OutboxStore(store)
    again = (await outbox.begun(sub.id, [item.seq, item.seq + 1]))[item.seq]
    assert again == failed and again.next_attempt_at_ms == 99 and again.last_error == "HTTP 500"
    assert await outbox.position(sub.id) == sub.position  # not done yet
    dead = await outbox.record_attempt(again, at_ms=7, status=DEAD, status_code=None,
                                       error="ConnectError", next_attempt_at_ms=7)
    assert await outbox.position(sub.id) == item.seq and dead.attempts == 2 and dead.id == failed.id
    assert await outbox.begun(sub.id, [item.seq]) == {item.seq: dead}
    assert await outbox.replay(sub.id, dead.id + 1) is None
    assert await outbox.replay(sub.id + 1, dead.id) is None
    replayed = await outbox.replay(sub.id, dead.id)
    assert replayed is not None and replayed.status == PENDING and replayed.attempts == 0
    (sub_now,) = await outbox.live()
    assert await outbox.replays(sub_now) == [replayed]
    await outbox.record_attempt(replayed, at_ms=8, status=DELIVERED, status_code=204,
                                       error=None, next_attempt_at_ms=8)
    assert await outbox.replays(sub_now) == [] and await outbox.position(sub.id) == item.seq
    assert [d.status for d in await outbox.deliveries(sub.id)] == [DELIVERED]
    assert await outbox.prune(delivered_before_ms=8, dead_before_ms=9) == 0
    assert await outbox.prune(delivered_before_ms=9, dead_before_ms=0) == 1
    assert await outbox.deliveries(sub.id) == []
    # Deliveries that succeeded at once, written together: rows and the position.
    await store.mark_meeting_stopped("m1", 10, 6)
    await seed(store, "m2")
    later = [i for i in await store.feed(after=item.seq) if i.type == "meeting.started"]
    assert len(later) == 1
    both = [Delivery(id=0, subscription_id=sub.id, seq=seq, type="meeting.started",
                     status=DELIVERED, attempts=1, created_at_ms=1, next_attempt_at_ms=2,
                     last_attempt_at_ms=2, last_status_code=200, done_at_ms=2)
            for seq in (item.seq, later[0].seq)]  # the first was pruned: written anew
    await outbox.record_delivered(both)
    assert await outbox.position(sub.id) == later[0].seq
    assert [(d.seq, d.status, d.last_status_code) for d in await outbox.deliveries(sub.id)] == [
        (later[0].seq, DELIVERED, 200), (item.seq, DELIVERED, 200)]
    assert await outbox.remove(sub.id) and not await outbox.remove(sub.id)
    assert await outbox.live() == [] and await outbox.get(sub.id) is None


async def test_a_caught_up_deliverer_takes_committed_items_as_they_come_and_never_an_erased_one(
        opened, receiver):
    store: Store = opened.store
    reads = 0
    read_feed = store.feed

    async def counted(**kw: Any) -> Any:  # the real store's feed, counted
        nonlocal reads
        reads += 1
        return await read_feed(**kw)

    store.feed = counted  # type: ignore[method-assign]
    outbox = Outbox(store, OutboxConfig(retry=RetryPolicy(initial_s=0.05, cap_s=0.1), allow_private=True))
    await outbox.add(receiver.url, ["meeting.started"])
    await outbox.start()
    try:
        await seed(store, "m0")
        assert await eventually(lambda: len(receiver.delivered()) == 1, 20)
        before = reads
        for i in range(1, 21):  # twenty commits, each an item
            await seed(store, f"m{i}")
        assert await eventually(lambda: len(receiver.delivered()) == 21, 20)
        assert reads == before  # caught up: each item came with its commit, none read back
        # An item waiting behind a failing one when its stream is erased (revoked) is not sent.
        receiver.failing = True
        await seed(store, "held")
        assert await eventually(lambda: len(receiver.requests) > 21, 20)  # "held" is being retried
        await seed(store, "gone")
        await Revocations(store).erase_stream("stream-gone", "gone", stop_reason=8, now_ms=1)
        receiver.failing = False
        await seed(store, "after")
        assert await eventually(lambda: len(receiver.delivered()) == 23, 20)  # held, after
        sent = [json.loads(r.body)["data"]["meeting_uuid"] for r in receiver.delivered().values()]
        assert sent[-2:] == ["held", "after"] and "gone" not in sent
    finally:
        await outbox.close()


# ---- end to end ---------------------------------------------------------------------------


async def subscribe(http: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    answer = await http.post("/api/webhooks", json={"url": url, "events": events})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def expected_items(store: Store, after_cursor: str, events: list[str]) -> list[Any]:
    return [i for i in await store.feed(after=parse_cursor(after_cursor), limit=100_000)
            if i.type in events]


async def test_a_receiver_that_fails_its_first_attempts_gets_every_event_signed_once_in_order(
        tmp_path, receiver):
    receiver.fail_first = 3
    events = list(EVENT_TYPES)
    async with GatewayWithSimulator(tmp_path, **FAST_RETRY) as run, run.http() as http:
        sub = await subscribe(http, receiver.url, events)
        assert sub["secret"].startswith("whsec_")
        listed = (await http.get("/api/webhooks")).json()["webhooks"]
        assert [w["id"] for w in listed] == [sub["id"]] and "secret" not in listed[0]
        handle = run.simulator.start_meeting(duration=4.0)
        await handle.wait(30)
        await run.settle()
        expected = await expected_items(run.gateway.store, sub["position"], events)
        ids = [f"msg_{sub['id']}_{i.cursor}" for i in expected]
        assert await eventually(lambda: set(receiver.delivered()) >= set(ids), 60), \
                f"{len(receiver.delivered())} of {len(ids)} delivered"
        deliveries: list[dict] = []

        async def all_recorded() -> bool:  # deliveries are written together, within FLUSH_S
            deliveries[:] = (await http.get(f"/api/webhooks/{sub['id']}/deliveries",
                                            params={"limit": 1000})).json()["deliveries"]
            return {d["webhook_id"] for d in deliveries if d["status"] == "delivered"} >= set(ids)

        assert await eventually(all_recorded, 30)
        metrics = (await http.get("/metrics")).text
    assert {"transcript.segment", "meeting.started", "meeting.ended",
            "participant.joined"} <= {i.type for i in expected}
    delivered = receiver.delivered()
    assert set(delivered) == set(ids)  # nothing else, nothing missing
    # In cursor order: each item's first 2xx came after every earlier item's.
    order = [r.webhook_id for r in receiver.requests if r.answered < 300]
    assert list(dict.fromkeys(order)) == ids
    for item, webhook_id in zip(expected, ids, strict=True):
        body = verify(sub["secret"], delivered[webhook_id])
        assert body["type"] == item.type
        assert body["data"]["cursor"] == item.cursor
        assert body["data"]["meeting_uuid"] == item.meeting_uuid
        assert {k: v for k, v in body["data"].items() if k not in ("cursor", "meeting_uuid")} \
            == json.loads(bytes(item.data))
    # The first item took four attempts, every one with the same webhook-id and body.
    first = [r for r in receiver.requests if r.webhook_id == ids[0]]
    assert [r.answered for r in first] == [503, 503, 503, 204]
    assert len({r.body for r in first}) == 1
    by_id = {d["webhook_id"]: d for d in deliveries}
    assert by_id[ids[0]]["attempts"] == 4 and by_id[ids[0]]["status"] == "delivered"
    assert by_id[ids[0]]["last_error"] is None and by_id[ids[0]]["last_status_code"] == 204
    assert all(by_id[i]["status"] == "delivered" for i in ids)
    assert f"rtms_webhooks_delivered_total {float(len(ids))}" in metrics


async def test_chat_edits_and_deletions_are_delivered_as_chat_message_events(tmp_path, receiver):
    """Each version of a chat message (new, update, delete) is a `chat.message` delivery:
    the message as it stands once applied, with the version's `operation`."""
    script = build_meeting(5, duration_s=4.0, offered=MediaType.TRANSCRIPT | MediaType.CHAT,
                           chat_lines=len(CHAT_KINDS))
    async with GatewayWithSimulator(tmp_path, **FAST_RETRY) as run, run.http() as http:
        sub = await subscribe(http, receiver.url, ["chat.message"])
        await run.simulator.start_meeting(script).wait(30)
        await run.settle()
        assert await eventually(lambda: len(receiver.delivered()) >= len(script.chat), 60)
    bodies = [verify(sub["secret"], r)["data"] for r in receiver.delivered().values()]
    assert [(b["message_id"], b["operation"]) for b in bodies] == [
        (c.message_id, c.operation.name.lower()) for c in script.chat]
    update, delete = bodies[-2:]
    assert (update["text"], update["edited"]) == (script.chat[-2].text, True)
    assert (delete["text"], delete["deleted"]) == ("", True)


async def test_an_endpoint_that_hangs_delays_neither_the_other_endpoints_nor_ingest(
        tmp_path, receiver):
    events = ["transcript.segment", "meeting.started", "meeting.ended"]
    async with GatewayWithSimulator(tmp_path, **FAST_RETRY, RTMS_WEBHOOK_TIMEOUT_S="600") as run, \
            run.http() as http:
        slow = await subscribe(http, f"http://127.0.0.1:{receiver.port}/slow", events)
        fast = await subscribe(http, receiver.url, events)
        handle = run.simulator.start_meeting(duration=3.0)
        await handle.wait(30)
        await run.settle()  # ingest finished while the slow endpoint holds its first item
        expected = await expected_items(run.gateway.store, fast["position"], events)
        ids = {f"msg_{fast['id']}_{i.cursor}" for i in expected}
        assert await eventually(lambda: set(receiver.delivered()) == ids, 60)
        assert receiver.held == 1  # still the first item, in flight
        pending = (await http.get(f"/api/webhooks/{slow['id']}/deliveries")).json()["deliveries"]
    assert pending == []  # not one attempt finished
    assert slow["position"] == fast["position"]


async def test_a_delivery_past_its_max_age_is_dead_the_next_ones_go_and_it_can_be_replayed(
        tmp_path, receiver):
    receiver.failing = True
    env = {**FAST_RETRY, "RTMS_WEBHOOK_MAX_AGE_S": "0.5"}
    async with GatewayWithSimulator(tmp_path, **env) as run:
        store = run.gateway.store
        async with run.http() as http:
            sub = await subscribe(http, receiver.url, ["meeting.started", "meeting.ended"])
            path = f"/api/webhooks/{sub['id']}/deliveries"

            async def listed(status: str | None = None) -> list[dict[str, Any]]:
                params = {"status": status} if status else {}
                found: list[dict[str, Any]] = (await http.get(path, params=params)).json()["deliveries"]
                return found

            await seed(store, "m1")
            assert await eventually(lambda: _count(listed("dead"), 1), 30)
            (dead,) = await listed("dead")
            assert dead["attempts"] >= 1 and dead["last_error"] == "HTTP 503"
            assert dead["last_status_code"] == 503 and dead["next_attempt_at_ms"] is None
            receiver.failing = False
            await store.mark_meeting_stopped("m1", 9, 6)  # the next item goes through
            assert await eventually(lambda: _count(listed("delivered"), 1), 30)
            assert dead["webhook_id"] not in receiver.delivered()
            refused = await http.post(f"{path}/{(await listed('delivered'))[0]['id']}/replay")
            assert refused.status_code == 409
            assert (await http.post(f"/api/webhooks/999/deliveries/{dead['id']}/replay")).status_code == 404
            answer = await http.post(f"{path}/{dead['id']}/replay")
            assert answer.status_code == 202 and answer.json()["status"] == "pending"
            assert await eventually(lambda: _count(listed("delivered"), 2), 30)
            assert await listed("dead") == []
            # No key, or a read-only one: refused.
            assert (await http.get("/api/webhooks", headers={"Authorization": ""})).status_code == 401
    delivered = receiver.delivered()
    assert dead["webhook_id"] in delivered
    body = verify(sub["secret"], delivered[dead["webhook_id"]])
    assert body["type"] == "meeting.started" and body["data"]["meeting_uuid"] == "m1"


async def _count(found: Any, n: int) -> bool:
    return len(await found) == n


async def test_private_targets_are_refused_on_add_and_at_every_connection(tmp_path, receiver):
    async with GatewayWithSimulator(tmp_path) as run, run.http() as http:
        for url, why in ((receiver.url, "private"), (f"http://localhost:{receiver.port}/", "private"),
                         ("http://[::1]/", "private"), ("http://169.254.169.254/latest", "private"),
                         ("ftp://example.com/", "http"), ("http://u:p@example.com/", "credentials"),
                         ("http://no-such-host.invalid/", "does not resolve")):
            answer = await http.post("/api/webhooks", json={"url": url, "events": ["chat.message"]})
            assert answer.status_code == 400 and why in answer.json()["detail"], (url, answer.text)
        answer = await http.post("/api/webhooks", json={"url": "https://example.com/",
                                                        "events": ["chat.exploded"]})
        assert answer.status_code == 400 and "chat.exploded" in answer.text
        assert (await http.get("/api/webhooks")).json() == {"webhooks": []}
        # A name that resolved to a public address when added and to a private one now
        # (the subscription made behind the check, as a DNS change would): still refused.
        store = run.gateway.store
        sub = await OutboxStore(store).add(receiver.url, ("meeting.started",), new_secret())
        await seed(store, "m1")
        path = f"/api/webhooks/{sub.id}/deliveries"

        async def refused() -> bool:
            found = (await http.get(path)).json()["deliveries"]
            return bool(found) and found[0]["attempts"] >= 1 and \
                    "loopback, private or link-local" in (found[0]["last_error"] or "")

        assert await eventually(refused, 30)
    assert receiver.requests == []


async def test_sigkill_and_restart_keep_the_outbox_and_every_event_arrives(tmp_path, receiver):
    receiver.failing = True  # nothing is delivered before the kill: all of it waits
    port = free_port()
    sim = await simulator_for(port)
    env = serve_env(sim, tmp_path, RTMS_MEDIA="transcript,chat", RTMS_DATA_DIR=str(tmp_path / "data"),
                    RTMS_API_KEYS=API_KEY, **FAST_RETRY)
    events = ["transcript.segment", "meeting.started", "meeting.ended", "participant.joined"]
    gateway = await start_serve(tmp_path, port, env, "gateway-1.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            sub = await subscribe(http, receiver.url, events)
            handle = sim.start_meeting(duration=8.0, media=MediaType.TRANSCRIPT | MediaType.CHAT)
            assert await handle.wait_streaming(15)
            transcript = f"/api/meetings/{quote(handle.script.owner_id, safe='')}/transcript"

            async def segments_stored() -> bool:
                answer = await http.get(transcript)
                return answer.status_code == 200 and bool(answer.json()["segments"])

            assert await eventually(segments_stored, 20)
            assert await eventually(lambda: len(receiver.requests) >= 3, 20)  # it is trying
            gateway.send_signal(signal.SIGKILL)
            await gateway.wait()
            receiver.failing = False
            gateway = await start_serve(tmp_path, port, env, "gateway-2.log")
            await handle.wait(40)

            async def ended() -> bool:
                return any(r.webhook_id and json.loads(r.body)["type"] == "meeting.ended"
                           for r in receiver.delivered().values())

            assert await eventually(ended, 60), "meeting.ended was not delivered"
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 30)
        await sim.stop()
    store = await Store.open(f"sqlite:///{tmp_path / 'data' / 'rtms.sqlite3'}")
    try:
        expected = await expected_items(store, sub["position"], events)
    finally:
        await store.close()
    ids = [f"msg_{sub['id']}_{i.cursor}" for i in expected]
    assert any(i.type == "transcript.segment" for i in expected)
    delivered = receiver.delivered()
    assert set(delivered) == set(ids)
    order = [r.webhook_id for r in receiver.requests if r.answered < 300]
    assert list(dict.fromkeys(order)) == ids
    for webhook_id in ids:
        verify(sub["secret"], delivered[webhook_id])


def test_the_cli_adds_lists_and_removes_subscriptions(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(RTMS_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")

    def cli(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtms_gateway", "webhooks", *args], cwd=tmp_path,
                              env={**env, **more}, capture_output=True, text=True, timeout=60,
                              check=False)

    refused = cli("add", "http://127.0.0.1:9/hook", "--events", "chat.message")
    assert refused.returncode == 2 and "private" in refused.stderr
    assert cli("add", "https://example.com/", "--events", "chat.nope").returncode == 2
    added = cli("add", "http://127.0.0.1:9/hook", "--events", "chat.message,meeting.ended",
                "--events", "transcript.segment", RTMS_WEBHOOK_ALLOW_PRIVATE="true")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "webhook 1 added" in added.stderr
    listed = cli("list")
    assert "http://127.0.0.1:9/hook" in listed.stdout and "transcript.segment" in listed.stdout
    assert secret not in listed.stdout
    assert cli("remove", "1").returncode == 0
    assert "no webhook subscriptions" in cli("list").stdout
    assert cli("remove", "1").returncode == 1
