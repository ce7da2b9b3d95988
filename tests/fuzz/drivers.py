"""Fuzz drivers shared by the short CI runs (tests/fuzz) and the long run (bench/fuzz.py):
generated webhook requests and OpenAPI cases against a real gateway over HTTP, a gateway
process to aim them at, and meetings with generated hostile ids through a gateway and the
simulator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ..strategies import hostile_ids

EVENTS = ("meeting.rtms_started", "meeting.rtms_stopped", "meeting.rtms_interrupted", "webinar.rtms_started",
          "session.rtms_started", "contact_center.voice_rtms_started", "endpoint.url_validation",
          "meeting.started", "")
KEYS = ("meeting_uuid", "rtms_stream_id", "server_urls", "stop_reason", "operator_id", "webinar_uuid",
        "session_id", "engagement_id", "plainToken", "account_id", "object")
FUZZ_TOKEN = "fuzz-secret-token"
FUZZ_CLIENT = ("fuzz-client-id", "fuzz-client-secret")
FUZZ_API_KEY = "fuzz-admin-api-key-000001"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.sampled_from(["wss://127.0.0.1:1/signaling", "ws://localhost:1", "", "wss://"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)
webhook_json = st.fixed_dictionaries(
    {}, optional={"event": st.sampled_from(EVENTS) | st.text(max_size=30),
                  "event_ts": st.integers(min_value=-1, max_value=2**64) | st.text(max_size=5) | st.none(),
                  "payload": payloads | json_values},
)
bodies = (webhook_json.map(lambda d: json.dumps(d).encode())
          | json_values.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=300))
signing = st.sampled_from(["valid", "valid", "valid", "wrong", "missing", "stale", "garbage-ts"])


def signed_headers(body: bytes, how: str, now: float) -> dict[str, str]:
    ts = str(int(now))
    if how == "stale":
        ts = str(int(now) - 3600)
    elif how == "garbage-ts":
        ts = "soon"
    if how == "missing":
        return {"content-type": "application/json"}
    mac = hmac.new(FUZZ_TOKEN.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    if how == "wrong":
        mac = mac[::-1]
    return {"content-type": "application/json", "x-zm-request-timestamp": ts, "x-zm-signature": f"v0={mac}"}


def fuzz_webhooks(base_url: str, examples: int, run_seed: int = 0) -> Counter[int]:
    """`examples` generated deliveries; fails (after shrinking) on any 5xx."""
    statuses: Counter[int] = Counter()
    client = httpx.Client(base_url=base_url, timeout=30)

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies, how=signing)
    def deliver(body: bytes, how: str) -> None:
        response = client.post("/webhook", content=body, headers=signed_headers(body, how, time.time()))
        statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, body[:200], how, response.text[:200])

    try:
        deliver()
    finally:
        client.close()
    return statuses


def fuzz_openapi(base_url: str, examples_per_operation: int, run_seed: int = 0) -> Counter[int]:
    """schemathesis: cases generated from the gateway's own OpenAPI document, sent with an
    admin key (so they reach the routes) except every fifth, sent with none."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    statuses: Counter[int] = Counter()
    sent = itertools.count()
    for result in schema.get_all_operations():
        operation = result.ok()
        if _streams(operation.definition.raw):
            continue

        @seed(run_seed)
        @settings(max_examples=examples_per_operation, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: object) -> None:
            headers = {} if next(sent) % 5 == 4 else {"Authorization": f"Bearer {FUZZ_API_KEY}"}
            response = case.call(base_url=base_url, headers=headers)  # type: ignore[attr-defined]
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case, response.status_code, response.text[:200])  # type: ignore[attr-defined]

        call()
    return statuses


def _streams(definition: dict[str, object]) -> bool:
    """A live feed (Server-Sent Events) answers for as long as it is read, so a case would
    wait out each one; its parameters and refusals are tested in tests/test_live_feed.py."""
    ok = definition.get("responses", {}).get("200", {})  # type: ignore[attr-defined]
    return "text/event-stream" in ok.get("content", {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`rtms-gateway serve` in its own process, for fuzzing over real HTTP."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
        base.update(ZOOM_CLIENT_ID=FUZZ_CLIENT[0], ZOOM_CLIENT_SECRET=FUZZ_CLIENT[1], ZOOM_SECRET_TOKEN=FUZZ_TOKEN,
                    RTMS_DATA_DIR=str(data_dir), RTMS_LOG_LEVEL="ERROR",
                    RTMS_API_KEYS=FUZZ_API_KEY, RTMS_SIGNALING_WINDOW_S="1",
                    RTMS_RECONNECT_INITIAL_S="0.2", **env)
        self.log = open(data_dir / "gateway.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "rtms_gateway", "serve", "--port", str(self.port)],
                                     env=base, cwd=data_dir, stderr=self.log)
        for _ in range(300):
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the gateway did not come up")

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(30)
        self.log.close()
        return code


def files_outside(root: Path, data_dir: Path) -> set[str]:
    """Everything under `root` that is neither `data_dir` nor inside it."""
    found = set()
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            if os.path.commonpath([path, str(data_dir)]) != str(data_dir):
                found.add(os.path.relpath(path, root))
    return found


async def fuzz_ids(run: object, data_dir: Path, examples: int, run_seed: int = 0) -> Counter[str]:
    """Meetings whose meeting UUID and stream id are generated (`hostile_ids`: `..`,
    absolute paths, NUL and control characters, 10 KB, any text), one after another through
    `run` (a `GatewayWithSimulator`) with `data_dir` inside a folder of its own: each one's
    audio must be stored inside `data_dir`, exactly as sent, and served by the API, and
    nothing may appear beside `data_dir`. Fails (after shrinking) on the first that is not."""
    from rtms_gateway.protocol.constants import MediaType
    from rtms_gateway.simulator.media import silence_chunk, tone_chunk
    from rtms_gateway.sinks.paths import media_path

    loop = asyncio.get_running_loop()
    outcomes: Counter[str] = Counter()
    streams_seen: set[str] = set()

    async def meeting(uuid: str, stream_id: str) -> None:
        if stream_id in streams_seen:  # the gateway remembers ended streams: keep the shape, not the id
            stream_id = f"{stream_id}\x00{len(streams_seen)}"
        streams_seen.add(stream_id)
        handle = run.simulator.start_meeting(  # type: ignore[attr-defined]
            duration=0.6, media=MediaType.AUDIO, meeting_uuid=uuid, stream_id=stream_id, seed=len(streams_seen))
        record = await handle.wait(60)
        await run.settle(60)  # type: ignore[attr-defined]
        assert record.outcome == "completed", record.summary_line()
        (entry,) = [f for f in await run.gateway.store.media_files(uuid)  # type: ignore[attr-defined]
                    if f.rtms_stream_id == stream_id]
        path = media_path(data_dir, entry.path)
        script = handle.script
        sent = b"".join(tone_chunk(s.tone_hz, 16000, 1) if (s := script.speaker_at(20 * i)) else silence_chunk(16000, 1)
                        for i in range(record.sent.audio_frames))
        assert path.read_bytes()[44:] == sent, "the audio, exactly as sent"
        async with run.http() as http:  # type: ignore[attr-defined]
            served = await http.get(f"/api/media/{entry.id}")
        assert served.status_code == 200 and served.content == path.read_bytes()
        assert files_outside(data_dir.parent, data_dir) == set()
        outcomes["stored"] += 1

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(uuid=hostile_ids, stream_id=hostile_ids)
    def check(uuid: str, stream_id: str) -> None:
        asyncio.run_coroutine_threadsafe(meeting(uuid, stream_id), loop).result(180)

    await asyncio.to_thread(check)  # the event loop keeps running the gateway meanwhile
    return outcomes
