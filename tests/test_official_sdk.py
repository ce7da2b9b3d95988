"""Zoom's official RTMS SDK (PyPI `rtms`, closed native core) as a peer of the simulator."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sdk
rtms = pytest.importorskip("rtms", reason="Zoom's SDK ships Linux x86-64 wheels for CPython 3.10-3.13 only")

ROOT = Path(__file__).resolve().parents[1]


def test_official_sdk_receives_every_transcript_and_audio_frame(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("ZM_RTMS_CLIENT", "ZM_RTMS_SECRET"):  # these would override the join arguments
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sdk.official_sdk_run", "5", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(lines[-1])

    assert result["join_confirm"] == 0
    assert result["outcome"] == "completed"
    assert [s for s, code in result["handshakes"] if code == 0] == ["signaling", "audio", "transcript"]
    assert result["ready_acks"] == 1  # the SDK acknowledges once, after every media handshake
    assert result["keepalives_answered"] == result["keepalives_sent"]

    # The SDK does not pass on a transcript that names no speaker; every other one arrives.
    named = [t for t in result["sent_transcripts"] if t not in result["sent_anonymous"]]
    assert result["sent_anonymous"] and named
    assert result["got_transcripts"] == named
    assert all(result["got_transcript_users"])
    assert result["sent_audio_frames"] >= 200
    assert result["got_audio_frames"] == result["sent_audio_frames"]
    assert result["got_audio_distinct_timestamps"] == result["sent_audio_frames"]
    assert result["audio_mismatched"] == 0
