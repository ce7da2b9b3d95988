"""Generated webhook deliveries and OpenAPI cases against a real gateway over HTTP: no
5xx, no crash. The long run is `bench/fuzz.py`; `RTMS_FUZZ_EXAMPLES` scales this one."""

from __future__ import annotations

import os

import pytest

from .drivers import GatewayProcess, fuzz_openapi, fuzz_webhooks

EXAMPLES = int(os.environ.get("RTMS_FUZZ_EXAMPLES", "400"))


@pytest.fixture
def gateway(tmp_path):
    gw = GatewayProcess(tmp_path)
    yield gw
    assert gw.stop() == 0, (tmp_path / "gateway.log").read_text()[-3000:]


def test_generated_webhooks_never_get_a_5xx(gateway):
    statuses = fuzz_webhooks(gateway.base_url, EXAMPLES)
    assert sum(statuses.values()) >= EXAMPLES and gateway.alive()
    assert {200, 401} <= set(statuses), statuses  # signed and unsigned ones were both made


def test_generated_openapi_cases_never_get_a_5xx(gateway):
    statuses = fuzz_openapi(gateway.base_url, max(EXAMPLES // 10, 20))
    assert sum(statuses.values()) > 0 and gateway.alive()
    assert 401 in statuses and {200, 201} & set(statuses), statuses  # keyless refused, keyed let in
