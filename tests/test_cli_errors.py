"""A gateway that cannot start as configured says why in one line and exits 2, through
the real command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CREDENTIALS = {"ZOOM_CLIENT_ID": "id", "ZOOM_CLIENT_SECRET": "secret", "ZOOM_SECRET_TOKEN": "token"}
PASSWORD = "pw-s3cret-9431"


def run_cli(*args: str, cwd, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "RTMS_", "PORT", "HOST"))}
    return subprocess.run([sys.executable, "-m", "rtms_gateway", *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and not result.stdout, (
        result.returncode, result.stdout, result.stderr[-3000:])
    return lines[0]


@pytest.mark.parametrize("env, setting", [
    ({"RTMS_LOG_LEVEL": "LOUD"}, "RTMS_LOG_LEVEL"),
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"RTMS_RECONNECT_INITIAL_S": "-1"}, "RTMS_RECONNECT_INITIAL_S"),
    ({"RTMS_AUDIO_CODEC": "opus"}, "RTMS_AUDIO_SAMPLE_RATE"),
    ({"RTMS_DATABASE_URL": "just words"}, "RTMS_DATABASE_URL"),
    ({"RTMS_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db"}, "RTMS_DATABASE_URL"),
    ({"RTMS_DATABASE_URL": f"mysql://u:{PASSWORD}@127.0.0.1/db"}, "RTMS_DATABASE_URL"),
    ({"RTMS_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"}, "RTMS_DATABASE_URL"),
    ({"RTMS_DATA_DIR": "{tmp}/a-file/data"}, "RTMS_DATA_DIR"),
    ({"RTMS_CA_FILE": "{tmp}/a-file"}, "RTMS_CA_FILE"),
    ({"ZOOM_SECRET_TOKEN": ""}, "ZOOM_SECRET_TOKEN"),
    ({"HOST": "no-such-host.invalid"}, "HOST"),
    # Zoom refuses a language outside its table (status 43): refused before any stream.
    ({"RTMS_TRANSCRIPT_LANGUAGE": "klingon"}, "RTMS_TRANSCRIPT_LANGUAGE"),
    ({"RTMS_TRANSCRIPT_LANGUAGE": "37"}, "RTMS_TRANSCRIPT_LANGUAGE"),
    ({"RTMS_TRANSCRIPT_LID": "maybe"}, "RTMS_TRANSCRIPT_LID"),
    ({"RTMS_EVENTS": "participant_join,no_such_event"}, "RTMS_EVENTS"),
    ({"RTMS_EVENTS": "7"}, "RTMS_EVENTS"),
])
def test_serve_refuses_a_bad_setting_in_one_line(tmp_path, env, setting):
    (tmp_path / "a-file").write_text("not a certificate, not a directory\n")
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    line = one_line(run_cli("serve", "--port", "0", cwd=tmp_path, env={**CREDENTIALS, **env}))
    assert setting in line
    assert PASSWORD not in line


@pytest.mark.parametrize("command", [["meetings"], ["export", "some-meeting"], ["demo", "--duration", "1"]])
def test_the_other_commands_refuse_an_unreachable_database_in_one_line(tmp_path, command):
    env = {"RTMS_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"}
    line = one_line(run_cli(*command, cwd=tmp_path, env=env))
    assert line.startswith("RTMS_DATABASE_URL: cannot open the database postgresql://u:***@127.0.0.1:1/db")
    assert PASSWORD not in line


def test_at_debug_the_traceback_comes_too(tmp_path):
    env = {**CREDENTIALS, "RTMS_LOG_LEVEL": "debug", "RTMS_DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"}
    result = run_cli("serve", "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "ConnectionRefusedError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("RTMS_DATABASE_URL: ")
    assert PASSWORD not in result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line_before_touching_the_store(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**CREDENTIALS, "RTMS_DATA_DIR": str(tmp_path / "data")}
        line = one_line(run_cli("serve", "--port", str(port), cwd=tmp_path, env=env))
    assert line.startswith("PORT: ") and str(port) in line
    assert not (tmp_path / "data" / "rtms.sqlite3").exists()
