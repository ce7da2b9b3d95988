"""The README's run command and the CLI around the store, as a user runs them."""

import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_M = [sys.executable, "-m", "rtms_gateway"]
SCRIPT = Path(sys.executable).with_name("rtms-gateway")  # the console script pip installed


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_"))}
    env["COLUMNS"] = "200"
    return env


def _cli(*args, cwd, timeout=90, program=PYTHON_M, columns=200):
    return subprocess.run([*program, *args], cwd=cwd, env={**_env(), "COLUMNS": str(columns)}, capture_output=True,
                          text=True, timeout=timeout)


async def test_demo_then_meetings_and_export(tmp_path):
    from urllib.parse import quote

    from .gateway_harness import GatewayWithSimulator

    assert SCRIPT.exists()
    demo = _cli("demo", "--duration", "4", cwd=tmp_path, program=[str(SCRIPT)], columns=80)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "transcript segments stored" in demo.stdout
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    (uuid,) = db.execute("select meeting_uuid from meetings").fetchone()
    texts = [t for (t,) in db.execute("select text from transcript_segments order by start_time")]
    db.close()
    assert texts and all(t.split(" ")[0][:20] in demo.stdout.replace("\n", " ") for t in texts)

    # Its closing lines point at things that exist: commands that run as printed (whole,
    # however narrow the terminal), and no address of the server that has just stopped.
    closing = demo.stdout[demo.stdout.index("meeting ended"):].splitlines()[1:]
    assert closing and not any("http://" in line for line in closing)
    commands = [line.strip() for line in closing if line.startswith("  ")]
    assert [shlex.split(c)[0] for c in commands] == [str(SCRIPT)] * 2
    ran = [subprocess.run(c, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
           for c in commands]
    assert all(r.returncode == 0 for r in ran), [r.stderr[-2000:] for r in ran]
    assert any(r.stdout.startswith("WEBVTT") for r in ran) and any(uuid in r.stdout for r in ran)

    listing = _cli("meetings", cwd=tmp_path)  # piped: tab-separated, with a header
    header, row = listing.stdout.splitlines()
    assert header.split("\t")[:3] == ["meeting_uuid", "product", "state"]
    assert row.split("\t")[:3] == [uuid, "meeting", "stopped"] and row.split("\t")[5] == str(len(texts))

    vtt = _cli("export", uuid, "--format", "vtt", cwd=tmp_path)
    assert vtt.returncode == 0 and vtt.stdout.startswith("WEBVTT")
    assert all(t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in vtt.stdout for t in texts)
    out = tmp_path / "t.json"
    assert _cli("export", uuid, "--format", "json", "-o", str(out), cwd=tmp_path).returncode == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    # the API over the same store
    async with GatewayWithSimulator(tmp_path / "rtms-data") as run, run.http() as http:
        served = (await http.get(f"/api/meetings/{quote(uuid, safe='')}/transcript?format=json")).json()
    assert exported == served and [s["text"] for s in exported["segments"]] == texts


async def test_demo_keeps_serving_the_dashboard_it_names_until_interrupted(tmp_path):
    """`make demo`: the dashboard's address and a key to log in with come first, the
    meeting can be looked at there, and Ctrl-C ends it."""
    import asyncio
    import signal

    import httpx

    proc = await asyncio.create_subprocess_exec(
        *PYTHON_M, "demo", "--duration", "3", "--keep-serving", cwd=tmp_path, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        seen: list[str] = []

        async def line_with(text: str) -> str:
            while True:
                line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
                assert line, "".join(seen)
                seen.append(line)
                if text in line:
                    return line

        found = re.search(r"dashboard: (http://\S+/); log in with the key (\S+)", await line_with("dashboard:"))
        assert found, "".join(seen)
        base, key = found.groups()
        await line_with("serving on")  # the meeting is over and stored
        async with httpx.AsyncClient(base_url=base) as http:
            login = await http.post("/login", data={"key": key, "next": "/"})
            assert login.status_code == 303 and "rtms_session" in login.cookies
            listed = await http.get("/")
            assert listed.status_code == 200 and "stopped" in listed.text
            assert (await http.get("/api/meetings")).json()["meetings"]  # the cookie opens the API too
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_demo_names_the_command_as_it_was_started(monkeypatch):
    from rtms_gateway.gateway.demo import this_command

    monkeypatch.setattr(sys, "argv", [".venv/bin/rtms-gateway", "demo"])
    assert this_command() == ".venv/bin/rtms-gateway"
    monkeypatch.setattr(sys, "argv", ["/x/site-packages/rtms_gateway/__main__.py", "demo"])
    assert this_command() == f"{shlex.quote(sys.executable)} -m rtms_gateway"


def test_meetings_fit_80_columns_in_a_terminal(tmp_path):
    """Through a real pseudo-terminal 80 columns wide: every line fits, every UUID whole."""
    import asyncio
    import fcntl
    import pty
    import struct
    import termios

    from rich.cells import cell_len

    from rtms_gateway.sinks.records import MeetingRecord, StreamRecord
    from rtms_gateway.sinks.store import Store

    uuids = ["Zk/9+abcDEF0123456789==", "aB3dE5gH7jK9mN1pQ3sT5v==", "[red]x\tnot\x1bmarkup=="]

    async def seed():
        store = await Store.open(f"sqlite:///{tmp_path / 'rtms-data' / 'rtms.sqlite3'}")
        for i, uuid in enumerate(uuids):
            await store.upsert_meeting(MeetingRecord(meeting_uuid=uuid, product="contact_center" if i else "meeting",
                                                     started_at_ms=1_700_000_000_000 + i))
            await store.upsert_stream(StreamRecord(rtms_stream_id=f"s{i}", meeting_uuid=uuid, server_urls="wss://x",
                                                   state="stopped", started_at_ms=1_700_000_000_000 + i))
            await store.mark_meeting_stopped(uuid, 1_700_000_000_000 + 754_000 * (i + 1), 6)
        await store.close()

    asyncio.run(seed())
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**_env(), "COLUMNS": "80", "TERM": "xterm-256color"}
    proc = subprocess.Popen([*PYTHON_M, "meetings"], cwd=tmp_path, env=env, stdin=terminal, stdout=terminal,
                            stderr=subprocess.PIPE)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert proc.wait(60) == 0, proc.stderr.read()[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode()).replace("\r", "")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 1 + len(uuids) and all(cell_len(line) <= 80 for line in lines), lines
    for uuid in uuids[:2]:
        assert any(uuid in line for line in lines), uuid
    assert any("[red]x\\tnot\\x1bmarkup==" in line for line in lines), "shown, escaped, not as markup"
    assert any("12m34s" in line for line in lines)


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

    from .gateway_harness import CLIENT_SECRET, SECRET_TOKEN
    from .serve_process import eventually, free_port, health, serve_env, simulator_for, start_serve

    port = free_port()
    sim = await simulator_for(port)
    proc = await start_serve(tmp_path, port, serve_env(sim, tmp_path), "gateway.log")
    try:
        handle = sim.start_meeting(duration=60)
        assert await handle.wait_streaming(15)

        async def held() -> bool:
            return (await health(port))["streams_live"] == 1

        assert await eventually(held), "the gateway never held the stream"
        assert await eventually(lambda: handle.record.sent.transcripts > 0)  # something to keep
        proc.send_signal(signal.SIGTERM)  # with a stream live
        code = await asyncio.wait_for(proc.wait(), 15)
        stderr = (tmp_path / "gateway.log").read_text()
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
    """The README's two terminals, as written (shorter meetings, our port), twice (the second
    with every meeting on one beat, `--aligned`): every meeting stores what the simulator
    sent, media included, and no run merges into another."""
    import asyncio
    import signal

    from .serve_process import eventually

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
        assert await eventually(lambda: _accepts(port)), "the gateway never listened"
        for aligned in ([], ["--aligned"]):  # meetings on their own beats, then on one
            sim = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rtms_gateway", *simulate_args, "--validate-endpoint", *aligned, cwd=tmp_path,
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


def _accepts(port: int) -> bool:
    """Whether something listens on `port` of the loopback."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
