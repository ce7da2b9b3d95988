"""Zoom's official RTMS SDK (PyPI `rtms`, a closed native client no one here wrote) as a
peer of the simulator: it joins, is told of the session, receives every transcript that
names a speaker and every audio frame (as it asks for them by default, and as L16 mixed,
checked frame by frame), answers keep-alives, and leaves when the meeting stops."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.sdk
rtms = pytest.importorskip("rtms", reason="Zoom's SDK ships Linux x86-64 wheels for CPython 3.10-3.13 only")

ROOT = Path(__file__).resolve().parents[1]
STOPPED_BY_HOST = 6  # the leave reason for a meeting that ends normally
SESSION_ADDED = 1


def run_sdk(run_dir: Path, audio: str) -> subprocess.CompletedProcess[str]:
    run_dir.mkdir()
    (run_dir / "logs").mkdir()  # where the SDK's native core writes its own log
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("ZM_RTMS_CLIENT", "ZM_RTMS_SECRET"):  # these would override the join arguments
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "tests.sdk.official_sdk_run", "5", str(run_dir), audio],
        cwd=run_dir, env=env, capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.mark.parametrize("audio", ["default", "l16"])
def test_official_sdk_joins_and_receives_every_named_transcript_and_audio_frame(tmp_path, audio):
    proc = run_sdk(tmp_path / "run", audio)
    if proc.returncode < 0 and "{" not in proc.stdout:
        # The SDK's closed native core has been seen, rarely, to die by a signal (SIGSEGV)
        # before it reported anything: one more run, said aloud; a second death fails.
        warnings.warn(f"the official SDK died by signal {-proc.returncode}; running it once more", stacklevel=1)
        proc = run_sdk(tmp_path / "again", audio)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(lines[-1])

    assert result["join_confirm"] == 0 and result["leave"] == STOPPED_BY_HOST
    assert result["sessions"][:1] == [SESSION_ADDED]
    assert result["outcome"] == "completed"
    assert [s for s, code in result["handshakes"] if code == 0] == ["signaling", "audio", "transcript"]
    assert len(result["handshakes"]) == 3
    assert result["ready_acks"] == 1  # the SDK acknowledges once, after every media handshake
    assert result["keepalives_answered"] == result["keepalives_sent"] >= 1

    # The SDK does not pass on a transcript that names no speaker (user 0, no name); the
    # scripted meeting has one (the gateway keeps it and infers its speaker).
    named = [t for t in result["sent_transcripts"] if t not in result["sent_anonymous"]]
    assert result["sent_anonymous"] and named
    assert result["got_transcripts"] == named
    assert result["got_transcript_users"] == result["sent_speakers"]

    assert result["got_audio_frames"] == result["sent_audio_frames"] > 0
    if audio == "l16":  # one mixed stream, 50 frames a second: each once, each what was sent for its time
        assert result["sent_audio_frames"] >= 200
        assert result["got_audio_distinct_timestamps"] == result["sent_audio_frames"]
        assert result["audio_mismatched"] == 0
