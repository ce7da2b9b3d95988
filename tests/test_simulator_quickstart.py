"""Zoom's own quickstart flow against the simulator, in process and through the
`rtms-gateway simulate` command run as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import msgspec

from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.scenario import build_meeting
from tests.conftest import CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN
from tests.peers.minimal_client import MinimalClient
from tests.peers.quickstart_client import run_quickstart
from tests.serve_process import eventually

CLI = [sys.executable, "-c", "from rtms_gateway.cli import main; main()", "simulate"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(extra)
    return env


CREDS = {"ZOOM_CLIENT_ID": CLIENT_ID, "ZOOM_CLIENT_SECRET": CLIENT_SECRET, "ZOOM_SECRET_TOKEN": SECRET_TOKEN}


async def _cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 30) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*CLI, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_quickstart_receives_every_transcript(start_simulator, tmp_path):
    ca = tmp_path / "ca.pem"
    async with run_quickstart(CLIENT_ID, CLIENT_SECRET, ca) as qs:
        sim = await start_simulator(webhook_url=qs.webhook_url, ca_out=ca, keepalive_interval=0.3)
        handle = sim.start_meeting(duration=3.0, media=MediaType.ALL)
        record = await handle.wait(15)
        # The quickstart has had the stop webhook and every transcript sent.
        owner = handle.script.owner_id
        await eventually(lambda: qs.stopped and len(qs.transcripts.get(owner, [])) == len(record.transcripts))
    assert record.outcome == "completed" and record.handshakes_complete
    assert [h.socket for h in record.handshakes] == ["signaling", "transcript"]  # `all` URL, media_type 8
    sent = msgspec.to_builtins(record.transcripts)
    assert sent and qs.transcripts[handle.script.owner_id] == sent
    assert qs.keepalives_answered >= 1 and sum(record.keepalives_answered.values()) == qs.keepalives_answered
    assert qs.errors == [] and qs.stopped[0]["stop_reason"] == 6


async def test_cli_against_the_quickstart(tmp_path):
    ca = tmp_path / "ca.pem"
    async with run_quickstart(CLIENT_ID, CLIENT_SECRET, ca) as qs:
        code, out, err = await _cli(["--webhook-url", qs.webhook_url, "--meetings", "1", "--duration", "3",
                                     "--ca-out", str(ca), "--keepalive-interval", "0.5"], tmp_path, _env(**CREDS))
        assert code == 0, (out, err)
        seed = int(re.search(r", seed (\d+)", out).group(1))  # printed, so the run can be replayed
        script = build_meeting(seed, 0, duration_s=3)  # the run's seed, meeting 0
        await eventually(lambda: len(qs.transcripts.get(script.owner_id, [])) == len(script.utterances))
    assert "1/1 clients completed their handshakes" in out
    received = qs.transcripts[script.owner_id]
    assert [t["data"] for t in received] == [u.text for u in script.utterances]
    line = next(x for x in out.splitlines() if x.startswith(script.rtms_stream_id))
    assert f"transcripts={len(received)}" in line and "completed" in line and "media=transcript" in line
    assert CLIENT_SECRET not in out + err and SECRET_TOKEN not in out + err
    assert not re.search(r"[0-9a-f]{64}", out + err)  # no signature printed


async def test_cli_many_products_with_endpoint_validation(tmp_path):
    client = MinimalClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN,
                           ca=tmp_path / "ca.pem")
    url = await client.start()
    try:
        code, out, err = await _cli(["--webhook-url", url, "--meetings", "4", "--duration", "1.5",
                                     "--products", "meeting,webinar,session,contact_center", "--media",
                                     "transcript,chat", "--ca-out", str(tmp_path / "ca.pem"),
                                     "--validate-endpoint", "--seed", "9"], tmp_path, _env(**CREDS))
    finally:
        await client.close()
    assert code == 0, (out, err)
    assert "endpoint validation: pass" in out and "4/4 clients completed" in out
    events = {d.event for d in client.receiver.received}
    assert {"endpoint.url_validation", "webinar.rtms_started", "session.rtms_stopped",
            "contact_center.voice_rtms_started"} <= events


async def test_cli_exit_1_when_no_client_connects(tmp_path):
    client = MinimalClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN)
    client.receiver.on_event = None  # receives webhooks, never connects
    url = await client.start()
    try:
        code, out, _ = await _cli(["--webhook-url", url, "--duration", "1", "--connect-timeout", "0.3"],
                                  tmp_path, _env(**CREDS))
    finally:
        await client.close()
    assert code == 1 and "client never connected" in out and "0/1 clients" in out


async def test_each_run_has_its_own_meeting_ids_unless_a_seed_is_given(tmp_path):
    """A second run must not merge into the first run's meetings; `--seed` replays one."""
    client = MinimalClient(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN)
    client.receiver.on_event = None  # receives webhooks, never connects
    url = await client.start()
    args = ["--webhook-url", url, "--meetings", "2", "--duration", "1", "--connect-timeout", "0.3"]
    try:
        runs = [await _cli(args, tmp_path, _env(**CREDS)) for _ in range(2)]
        first_seed = re.search(r", seed (\d+)", runs[0][1]).group(1)
        replay = await _cli([*args, "--seed", first_seed], tmp_path, _env(**CREDS))
    finally:
        await client.close()
    started = [d for d in client.receiver.received if d.event == "meeting.rtms_started"]
    uuids = [d.payload["meeting_uuid"] for d in started]
    assert len(uuids) == 6
    assert len(set(uuids[:4])) == 4, "two runs without --seed share no meeting"
    # A run's meetings start together, so their webhooks may arrive in either order.
    assert sorted(uuids[4:]) == sorted(uuids[:2]), "--seed N replays the run that printed seed N"
    assert f", seed {first_seed}" in replay[1]


async def test_cli_without_credentials_exits_2(tmp_path):
    code, out, err = await _cli(["--webhook-url", "http://127.0.0.1:9/"], tmp_path,
                                _env(ZOOM_CLIENT_ID="only-the-id"))
    assert code == 2
    assert "ZOOM_CLIENT_SECRET" in err and "ZOOM_SECRET_TOKEN" in err and "only-the-id" not in err + out
