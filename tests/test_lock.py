"""One gateway per data directory: a second one is refused at once, before it touches
the store or any file, naming the holder's PID."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys

import pytest

from rtms_gateway.gateway.lock import DataDirLocked
from rtms_gateway.gateway.service import Gateway
from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.records import SIGNALING
from rtms_gateway.sinks.audio import wav_header

from .gateway_harness import make_settings
from .serve_process import free_port, serve_env, simulator_for, start_serve


async def test_a_second_gateway_in_process_is_refused_and_touches_nothing(tmp_path):
    first = await Gateway.open(make_settings(tmp_path))
    try:
        # A WAV the first gateway is writing: its header is behind, as while it grows.
        live = tmp_path / "m" / "s-audio-mixed.wav"
        live.parent.mkdir()
        live.write_bytes(wav_header(16000, 1, 0) + b"\x01\x00" * 800)
        before = live.read_bytes()
        with pytest.raises(DataDirLocked) as refused:
            await Gateway.open(make_settings(tmp_path))
        assert refused.value.holder == os.getpid() and f"PID {os.getpid()}" in str(refused.value)
        assert live.read_bytes() == before, "the refused gateway ran no recovery"
    finally:
        await first.close()
    second = await Gateway.open(make_settings(tmp_path))  # released on close
    await second.close()


async def test_a_second_serve_exits_at_once_naming_the_holder_and_the_first_streams_on(tmp_path):
    port = free_port()
    sim = await simulator_for(port)
    env = serve_env(sim, tmp_path, RTMS_MEDIA="audio,transcript", RTMS_DATA_DIR=str(tmp_path / "data"))
    first = await start_serve(tmp_path, port, env, "first.log")
    try:
        handle = sim.start_meeting(duration=5.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        assert await handle.wait_streaming(15)
        # The same data directory, and the same port: the lock is checked first.
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rtms_gateway", "serve", "--port", str(port), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(second.communicate(), 60)
        record = await handle.wait(40)
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), 30)
        await sim.stop()
    lines = err.decode().strip().splitlines()
    assert second.returncode == 2 and not out and len(lines) == 1, err.decode()[-2000:]
    assert f"PID {first.pid}" in lines[0] and "RTMS_DATA_DIR" in lines[0]
    assert record.outcome == "completed"
    assert [h.socket for h in record.handshakes].count(SIGNALING) == 1, "no second connection to the stream"
    db = sqlite3.connect(tmp_path / "data" / "rtms.sqlite3")
    stored = db.execute("select count(*) from transcript_segments").fetchone()[0]
    db.close()
    assert stored == record.sent.transcripts > 0
