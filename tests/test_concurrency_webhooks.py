"""Zoom's account-level concurrency notices reach a real gateway (HTTP on loopback), signed
by the simulator's webhook sender: verified, counted in /metrics, shown on /healthz, logged
at WARNING; a retry is counted once; a bad field is refused, naming it."""

from __future__ import annotations

import logging
import time

from rtms_gateway.protocol.signature import webhook_signature
from rtms_gateway.simulator.webhook_sender import envelope

from .gateway_harness import SECRET_TOKEN, GatewayWithSimulator


async def test_concurrency_notices_are_counted_shown_and_logged(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="rtms_gateway.webhooks.concurrency")
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}) as run:
        sender = run.simulator.sender
        assert sender is not None
        near = await sender.send("rtms.concurrency_near_limit",
                                 {"concurrency_limit": 2000, "concurrency_number": 1800,
                                  "percentage": 90})
        limited = await sender.send("rtms.concurrency_limited",
                                    {"operator_id": "op-1", "concurrency_number": 2000,
                                     "meeting_uuid": "m/full=="})
        assert near.ok and limited.ok
        async with run.http() as http:
            health = (await http.get("/healthz")).json()
            metrics = (await http.get("/metrics")).text
        assert health["concurrency"]["near_limit"]["percentage"] == 90
        assert health["concurrency"]["limited"]["owner_id"] == "m/full=="
        assert "rtms_concurrency_near_limit_notices_total 1.0" in metrics
        assert "rtms_concurrency_limited_notices_total 1.0" in metrics
        assert "rtms_concurrency_streams 2000.0" in metrics
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("near the concurrency cap" in m and "1800 of 2000" in m for m in warnings)
    assert any("concurrency cap" in m and "m/full==" in m for m in warnings)


def _signed(body: bytes) -> dict[str, str]:
    now = int(time.time())
    return {"x-zm-request-timestamp": str(now),
            "x-zm-signature": webhook_signature(SECRET_TOKEN, now, body),
            "content-type": "application/json"}


async def test_a_retried_notice_counts_once_and_a_bad_field_is_refused(tmp_path):
    async with GatewayWithSimulator(tmp_path, simulator={"tls": False}) as run:
        async with run.http() as http:
            body = envelope("rtms.concurrency_near_limit", {"percentage": 85}, event_ts=7)
            answers = [(await http.post("/webhook", content=body, headers=_signed(body))).json()
                       for _ in range(2)]  # Zoom's retry: the same body, signed afresh
            assert answers == [{"status": "ok"}, {"status": "duplicate"}]
            bad = envelope("rtms.concurrency_limited", {"concurrency_number": "lots"})
            refused = await http.post("/webhook", content=bad, headers=_signed(bad))
            assert refused.status_code == 422
            assert "concurrency_number" in refused.json()["detail"]
            metrics = (await http.get("/metrics")).text
        assert "rtms_concurrency_near_limit_notices_total 1.0" in metrics
        assert "rtms_concurrency_limited_notices_total 0.0" in metrics
