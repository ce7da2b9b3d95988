"""The README's run command and the CLI around the store, as a user runs them."""

import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

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


def readme_dev_flow() -> tuple[dict[str, str], list[tuple[dict[str, str], list[str]]]]:
    """The README's two-terminal example as written: the exported settings, then each
    command with the settings given on its own line."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n((?:(?!```).)*?# terminal 2.*?)```", readme, re.S).group(1)
    shared: dict[str, str] = {}
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            shared.update(w.split("=", 1) for w in words[1:])
            continue
        own = {}
        while "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            own[key] = value
        assert words[0] == ".venv/bin/rtms-gateway", words
        commands.append((own, words[1:]))
    return shared, commands


async def test_simulate_against_serve_the_readme_way(tmp_path):
    """The README's two terminals, as written (shorter meetings, our port), twice: every
    meeting stores what the simulator sent, media included, and no run merges into another."""
    import asyncio
    import signal
    import socket

    shared, ((serve_env, serve_args), (_, simulate_args)) = readme_dev_flow()
    assert serve_args == ["serve"] and simulate_args[0] == "simulate"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env.update(shared)
    simulate_args = [a.replace(":3000/", f":{port}/") for a in simulate_args]
    simulate_args[simulate_args.index("--meetings") + 1] = "2"
    simulate_args[simulate_args.index("--duration") + 1] = "3"
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "rtms_gateway", *serve_args, "--port",
                                                   str(port), cwd=tmp_path, env={**env, **serve_env},
                                                   stderr=asyncio.subprocess.DEVNULL)
    lines = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        for _ in range(2):
            sim = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rtms_gateway", *simulate_args, "--validate-endpoint", cwd=tmp_path,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(sim.communicate(), 90)
            assert sim.returncode == 0, (out + err).decode()[-3000:]
            lines += [line for line in out.decode().splitlines() if " completed: sent " in line]
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 30)
    assert len(lines) == 4
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    try:
        assert db.execute("select count(*) from meetings where stop_reason = 6").fetchone()[0] == 4
        for line in lines:
            stream_id = line.split()[0]
            sent = dict(re.findall(r"(\w+)=(\d+)", line.split(" | ")[0]))
            kinds = {k for (k,) in db.execute("select kind from media_files where rtms_stream_id = ? and complete",
                                              (stream_id,))}
            segments = db.execute("select count(*) from transcript_segments where rtms_stream_id = ?",
                                  (stream_id,)).fetchone()[0]
            assert segments == int(sent["transcripts"]) > 0
            assert int(sent["audio"]) > 0 and int(sent["video"]) > 0
            assert kinds == {kind for kind in ("audio", "video", "share") if int(sent[kind]) > 0}, (kinds, sent)
    finally:
        db.close()
