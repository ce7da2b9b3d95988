"""The README's run command and the CLI around the store, as a user runs them."""

import os
import sqlite3
import subprocess
import sys

import pytest


def _cli(*args, cwd, timeout=90):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "rtms_gateway", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_demo_then_meetings_and_export(tmp_path):
    demo = _cli("demo", "--duration", "4", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "transcript segments stored" in demo.stdout
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    (uuid,) = db.execute("select meeting_uuid from meetings").fetchone()
    texts = [t for (t,) in db.execute("select text from transcript_segments order by start_time")]
    db.close()
    assert texts and all(t.split(" ")[0][:20] in demo.stdout.replace("\n", " ") for t in texts)

    listing = _cli("meetings", cwd=tmp_path)
    assert listing.returncode == 0 and uuid in listing.stdout and "stopped" in listing.stdout

    vtt = _cli("export", uuid, "--format", "vtt", cwd=tmp_path)
    assert vtt.returncode == 0 and vtt.stdout.startswith("WEBVTT")
    assert all(t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in vtt.stdout for t in texts)
    out = tmp_path / "t.json"
    assert _cli("export", uuid, "--format", "json", "-o", str(out), cwd=tmp_path).returncode == 0
    assert out.read_text(encoding="utf-8").startswith("[")


@pytest.mark.parametrize("args, code, text", [
    (["export", "no-such-meeting"], 1, "no meeting"),
    (["export", "x", "--format", "docx"], 2, "unknown format"),
])
def test_export_errors(tmp_path, args, code, text):
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == code and text in result.stdout + result.stderr


def test_serve_refuses_to_run_without_a_secret_token(tmp_path):
    result = _cli("serve", "--port", "0", cwd=tmp_path, timeout=30)
    assert result.returncode != 0 and "ZOOM_" in result.stdout + result.stderr


async def test_serve_exits_cleanly_on_sigterm_mid_meeting(tmp_path):
    import asyncio
    import signal
    import socket

    import httpx

    from rtms_gateway.simulator import Simulator, SimulatorConfig

    from .gateway_harness import CLIENT_ID, CLIENT_SECRET, SECRET_TOKEN

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sim = Simulator(SimulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, secret_token=SECRET_TOKEN,
                                    webhook_url=f"http://127.0.0.1:{port}/webhook"))
    await sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(ZOOM_CLIENT_ID=CLIENT_ID, ZOOM_CLIENT_SECRET=CLIENT_SECRET, ZOOM_SECRET_TOKEN=SECRET_TOKEN,
               RTMS_CA_FILE=str(sim.write_ca(tmp_path / "ca.pem")))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port),
                                                cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        handle = sim.start_meeting(duration=60)
        assert await handle.wait_streaming(15)
        await asyncio.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr[-2000:]
        assert CLIENT_SECRET not in stderr and SECRET_TOKEN not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
        handle.request_stop()
        await sim.stop()
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    state, stopped = db.execute("select state, stopped_at_ms from streams").fetchone()
    segments = db.execute("select count(*) from transcript_segments").fetchone()[0]
    db.close()
    assert (state, stopped) == ("detached", None)
    assert segments == handle.record.sent.transcripts > 0


async def test_simulate_against_serve_the_readme_way(tmp_path):
    """Two terminals: `serve` trusting ca.pem, then `simulate --ca-out ca.pem`."""
    import asyncio
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(ZOOM_CLIENT_ID="readme-id", ZOOM_CLIENT_SECRET="readme-secret", ZOOM_SECRET_TOKEN="readme-token",
               RTMS_CA_FILE=str(tmp_path / "ca.pem"))
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "rtms_gateway", "serve", "--port",
                                                   str(port), cwd=tmp_path, env=env,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.5)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtms_gateway", "simulate", "--webhook-url",
            f"http://127.0.0.1:{port}/webhook", "--meetings", "2", "--duration", "3", "--ca-out",
            str(tmp_path / "ca.pem"), "--validate-endpoint", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(sim.communicate(), 60)
        assert sim.returncode == 0, (out + err).decode()[-3000:]
        await asyncio.sleep(0.5)
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 20)
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    meetings = db.execute("select count(*) from meetings where stop_reason = 6").fetchone()[0]
    segments = db.execute("select count(*) from transcript_segments").fetchone()[0]
    db.close()
    assert meetings == 2 and segments > 0


def test_export_copies_no_file_from_outside_the_data_dir(tmp_path):
    import asyncio

    from rtms_gateway.sinks.records import MediaFile, MeetingRecord
    from rtms_gateway.sinks.store import Store

    data = tmp_path / "rtms-data"
    data.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF not the gateway's")

    async def seed() -> None:
        store = await Store.open(f"sqlite:///{data / 'rtms.sqlite3'}")
        await store.upsert_meeting(MeetingRecord(meeting_uuid="m==", product="meeting"))
        await store.upsert_media_file(MediaFile(
            meeting_uuid="m==", rtms_stream_id="s", kind="audio", user_id=0, user_name=None, codec="l16",
            format="wav", path="../secret.wav", origin_ms=0, complete=True))
        await store.close()

    asyncio.run(seed())
    out = tmp_path / "out.wav"
    done = _cli("export", "m==", "--format", "wav", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 1 and "not exported" in done.stdout, done.stdout + done.stderr
    assert not out.exists()
