"""Log lines: wire values escaped and cut in one place, meeting content never logged,
third-party loggers held at WARNING whatever RTMS_LOG_LEVEL says."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
import signal
import sqlite3

import pytest

from rtms_gateway.logs import ARG_LIMIT, CONTINUATION, THIRD_PARTY_LOGGERS, configure_logging
from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.simulator.scenario import build_meeting

from .serve_process import (
    eventually,
    free_port,
    no_stream_live,
    serve_env,
    simulator_for,
    start_serve,
)

RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+: ")


@pytest.fixture
def logged():
    """The gateway's logging setup writing into a buffer; the previous setup restored."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers),
             {name: logging.getLogger(name).level for name in (*THIRD_PARTY_LOGGERS, "rtms_gateway")})
    out = io.StringIO()
    handler = configure_logging("DEBUG", out)
    yield out
    root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_arguments_are_escaped_and_cut(logged):
    log = logging.getLogger("rtms_gateway.test")
    log.info("stream %s joined from %s (%d)", "ab\r\n2026-01-01 00:00:00,000 INFO forged\x1b[2J\x85\u2028",
             "x" * 10_000, 7)
    (line,) = logged.getvalue().splitlines()
    assert "ab\\r\\n2026-01-01 00:00:00,000 INFO forged\\x1b[2J\\x85\\u2028" in line
    assert line.endswith("(+9744 chars) (7)") and len(line) < 2 * ARG_LIMIT + 200
    assert all(ch.isprintable() for ch in line)


def test_exception_text_stays_under_its_record(logged):
    log = logging.getLogger("rtms_gateway.test")
    try:
        raise ValueError("bad id\n1999-01-01 00:00:00,000 ERROR forged: line\rend")
    except ValueError:
        log.exception("could not handle %s", "it")
    first, *rest = logged.getvalue().splitlines()
    assert RECORD_START.match(first) and first.endswith("could not handle it")
    assert rest and all(line.startswith(CONTINUATION) for line in rest)
    assert all(ch.isprintable() for line in rest for ch in line)
    assert any("1999-01-01 00:00:00,000 ERROR forged" in line for line in rest)


def test_only_the_gateway_follows_the_log_level(logged):
    assert logging.getLogger("rtms_gateway.gateway.manager").isEnabledFor(logging.DEBUG)
    for name in ("sqlalchemy.engine.Engine", "aiosqlite", "asyncpg", "picows", "uvicorn.error", "uvicorn.access",
                 "alembic.runtime.migration", "httpx", "websockets.client", "some.other.library"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING), name


async def test_a_meeting_at_debug_logs_no_content_and_no_raw_control_character(tmp_path):
    """`serve` at DEBUG (its own logging setup), a real meeting from the simulator whose
    meeting UUID and stream id hold CR/LF and control characters."""
    port = free_port()
    sim = await simulator_for(port)
    env = serve_env(sim, tmp_path, RTMS_LOG_LEVEL="DEBUG", RTMS_MEDIA="transcript,chat")
    log_file = tmp_path / "gateway.log"
    gateway = await start_serve(tmp_path, port, env, log_file.name)
    script = dataclasses.replace(
        build_meeting(5, 0, duration_s=4.0, offered=MediaType.TRANSCRIPT | MediaType.CHAT),
        owner_id="m\r\n1999-01-01 00:00:00,000 INFO forged meeting\x1b[2J==",
        rtms_stream_id="s\r\n1999-01-01 00:00:00,000 WARNING forged stream\x07\x85\u2028end")
    try:
        handle = sim.start_meeting(script)
        record = await handle.wait(40)
        assert await eventually(lambda: no_stream_live(port), 10)
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), 30)
        await sim.stop()
    assert record.outcome == "completed"
    db = sqlite3.connect(tmp_path / "rtms-data" / "rtms.sqlite3")
    stored = db.execute("select count(*) from transcript_segments").fetchone()[0]
    chats = db.execute("select count(*) from chat_messages").fetchone()[0]
    db.close()
    assert stored == record.sent.transcripts > 0 and chats == record.sent.chat > 0

    text = log_file.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "stream s\\r\\n1999-01-01 00:00:00,000 WARNING forged stream\\x07\\x85\\u2028end" in text
    for line in lines:
        assert RECORD_START.match(line) or line.startswith(CONTINUATION), line
        assert all(ch.isprintable() for ch in line), line
        assert not line.startswith("1999-01-01"), "a forged line"
    assert "\r" not in text
    names = {m.group(1) for m in map(RECORD_START.match, lines) if m}
    loggers = {line.split()[3].rstrip(":") for line in lines if RECORD_START.match(line)}
    assert {"DEBUG", "INFO"} <= names and all(n.startswith("rtms_gateway") for n in loggers), loggers

    payload = handle.started_payload
    secrets_of_the_meeting = [t.data for t in record.transcripts] + [c.text for c in script.chat] + \
        [p.user_name for p in script.participants] + [payload["account_id"], payload["operator_id"]]
    for value in secrets_of_the_meeting:
        for fragment in {value, value[:12], value[-12:]}:
            assert fragment not in text, f"logged: {fragment!r}"
