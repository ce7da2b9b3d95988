"""Zoom's account-level concurrency notices, forwarded as outbound webhooks: a real gateway
(HTTP on loopback, a SQLite store) receives them signed by the simulator's webhook sender
and posts them to a real receiver on loopback, signed as Standard Webhooks says, at least
once with a stable webhook-id, across failed attempts and a restart of the gateway."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rtms_gateway.protocol.signature import webhook_signature
from rtms_gateway.simulator.webhook_sender import envelope
from rtms_gateway.sinks.feed import FeedKind
from rtms_gateway.sinks.webhook_signing import body_of
from rtms_gateway.webhooks.concurrency import notice_body, notice_key
from rtms_gateway.webhooks.events import ConcurrencyNotice

from .gateway_harness import SECRET_TOKEN, GatewayWithSimulator
from .serve_process import eventually
from .stores import DATABASES, a_store
from .test_outbound_webhooks import FAST_RETRY, Receiver, receiver, subscribe, verify

__all__ = ["receiver"]  # the fixture, shared with the outbound webhook tests

TYPES = ["rtms.concurrency_near_limit", "rtms.concurrency_limited"]


def _signed(body: bytes) -> dict[str, str]:
    now = int(time.time())
    return {"x-zm-request-timestamp": str(now),
            "x-zm-signature": webhook_signature(SECRET_TOKEN, now, body),
            "content-type": "application/json"}


async def test_notices_are_forwarded_signed_once_each_through_failures_and_a_restart(
        tmp_path, receiver: Receiver) -> None:
    receiver.failing = True  # nothing gets through before the restart
    near = envelope(TYPES[0], {"concurrency_limit": 2000, "concurrency_number": 1800,
                               "percentage": 90}, event_ts=1_700_000_000_001)
    limited = envelope(TYPES[1], {"operator_id": "op-1", "concurrency_number": 2000,
                                  "meeting_uuid": "m/full=="}, event_ts=1_700_000_000_002)
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}, **FAST_RETRY) as run, \
            run.http() as http:
        sub = await subscribe(http, receiver.url, TYPES)
        # A subscription to meeting types only is not sent account notices.
        other = await subscribe(http, receiver.url, ["meeting.started"])
        for body in (near, limited, near):  # the last: Zoom's retry of the first
            answer = await http.post("/webhook", content=body, headers=_signed(body))
            assert answer.status_code == 200
        items = await run.gateway.store.feed(kinds=[FeedKind.ACCOUNT])
        assert [(i.type, i.meeting_uuid) for i in items] == [(TYPES[0], ""), (TYPES[1], "")]
        assert await eventually(lambda: len({r.webhook_id for r in receiver.requests}) == 1, 30)
        tried = receiver.requests[0].webhook_id
    receiver.failing = False
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}, **FAST_RETRY) as run, \
            run.http() as http:
        # Zoom retries the second notice after the restart: still one item, one delivery.
        answer = await http.post("/webhook", content=limited, headers=_signed(limited))
        assert answer.json() == {"status": "duplicate"}
        ids = [f"msg_{sub['id']}_{i.cursor}" for i in items]
        assert await eventually(lambda: set(receiver.delivered()) >= set(ids), 30)
        deliveries: list[dict[str, Any]] = []

        async def recorded() -> bool:  # deliveries are written together, within FLUSH_S
            deliveries[:] = (await http.get(f"/api/webhooks/{sub['id']}/deliveries")).json()["deliveries"]
            return all(d["status"] == "delivered" for d in deliveries) and len(deliveries) == len(ids)

        assert await eventually(recorded, 30)
    delivered = receiver.delivered()
    assert set(delivered) == set(ids) and tried == ids[0]  # the same webhook-id as before
    order = [r.webhook_id for r in receiver.requests if r.answered < 300]
    assert list(dict.fromkeys(order)) == ids
    bodies = [verify(sub["secret"], delivered[i]) for i in ids]
    assert [b["type"] for b in bodies] == TYPES
    assert bodies[0]["data"] == {
        "cursor": items[0].cursor, "event": TYPES[0], "event_ts": 1_700_000_000_001,
        "concurrency_number": 1800, "concurrency_limit": 2000, "percentage": 90}
    assert bodies[1]["data"]["owner_id"] == "m/full==" and bodies[1]["data"]["operator_id"] == "op-1"
    assert "meeting_uuid" not in bodies[1]["data"]  # an account's notice: no meeting of ours
    assert all(json.loads(delivered[i].body) == b for i, b in zip(ids, bodies, strict=True))
    failed = [r for r in receiver.requests if r.webhook_id == ids[0] and r.answered >= 300]
    assert failed and all(r.body == delivered[ids[0]].body for r in failed)
    assert {d["webhook_id"]: d["status"] for d in deliveries} == dict.fromkeys(ids, "delivered")
    assert not [r for r in receiver.requests if r.webhook_id.startswith(f"msg_{other['id']}_")]


@pytest.mark.parametrize("database", DATABASES)
async def test_a_notice_is_one_account_item_of_no_meeting_kept_across_a_reopen(database, tmp_path):
    notice = ConcurrencyNotice("limited", 42, concurrency_number=2000, owner_id="m\x00/1")
    async with a_store(database, tmp_path) as opened:
        store = opened.store
        assert store is not None
        heard: list[list[object]] = []
        store.on_items(heard.append)
        assert await store.add_account_item("limited", notice_body(notice), notice_key(notice))
        store = await opened.reopen()
        assert not await store.add_account_item("limited", notice_body(notice), notice_key(notice))
        items = await store.feed()
        assert [(i.kind, i.type, i.meeting_uuid) for i in items] == [
            (FeedKind.ACCOUNT, "rtms.concurrency_limited", "")]
        assert len(heard) == 1  # published once, when committed
        data = json.loads(bytes(items[0].data))
        assert data["event"] == "rtms.concurrency_limited" and data["concurrency_number"] == 2000
        assert data["owner_id"].endswith("/1")  # NUL kept on SQLite, replaced on PostgreSQL
        body = json.loads(body_of(items[0]))
        assert body["type"] == "rtms.concurrency_limited" and "meeting_uuid" not in body["data"]
        assert await store.feed(meeting_uuid="") == items and await store.feed(meeting_uuid="m") == []
