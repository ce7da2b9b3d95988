"""Zoom's official SDK (PyPI `rtms`, a native client no one here wrote) against the simulator."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys

import pytest

from rtms_gateway.protocol.constants import MediaType
from tests.conftest import CLIENT_ID, CLIENT_SECRET

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.skipif(importlib.util.find_spec("rtms") is None, reason="Zoom's rtms SDK is not installed"),
]

PEER = r"""
import json, os, sys, time
import rtms
payload = json.loads(sys.argv[1])
seen = {"join": None, "leave": None, "transcripts": [], "audio": 0, "sessions": []}
client = rtms.Client()
client.on_join_confirm(lambda reason: seen.update(join=reason))
client.on_leave(lambda reason: seen.update(leave=reason))
client.on_session_update(lambda op, session: seen["sessions"].append(op))
@client.on_transcript_data
def transcript(data, size, ts, md):
    seen["transcripts"].append([data.decode(), md.userName, md.userId])
@client.on_audio_data
def audio(data, size, ts, md):
    seen["audio"] += 1
client.join(payload)
end = time.time() + 20
while time.time() < end and seen["leave"] is None:
    client.poll()
    time.sleep(0.01)
print(json.dumps(seen), flush=True)
os._exit(0)
"""


async def test_official_sdk_joins_and_receives(start_simulator, tmp_path):
    ca = tmp_path / "ca.pem"
    sim = await start_simulator(ca_out=ca, keepalive_interval=1.0)
    handle = sim.start_meeting(duration=3.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
    env = dict(os.environ, ZM_RTMS_CLIENT=CLIENT_ID, ZM_RTMS_SECRET=CLIENT_SECRET, ZM_RTMS_CA=str(ca),
               ZM_RTMS_LOG_LEVEL="error")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PEER, json.dumps(handle.started_payload), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    record = await handle.wait(15)
    seen = json.loads(out)
    assert seen["join"] == 0 and seen["leave"] == 6 and seen["sessions"][:1] == [1]
    assert record.handshakes_complete and [h.status_code for h in record.handshakes] == [0, 0, 0]
    # The SDK does not pass on a transcript that names no speaker (user 0, no name); the
    # scripted meeting has one (the gateway keeps it and infers its speaker).
    named = [u for u in handle.script.utterances if not u.anonymous]
    assert len(named) < len(handle.script.utterances)
    assert [t[0] for t in seen["transcripts"]] == [u.text for u in named]
    assert [t[1] for t in seen["transcripts"]] == [u.speaker.user_name for u in named]
    assert seen["audio"] == record.sent.audio_frames > 0  # the SDK asks for OPUS per participant
    assert record.keepalives_answered["signaling"] >= 1
