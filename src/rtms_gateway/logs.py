"""The commands' logging: one line per record, values from the wire made harmless.

Ids, URLs and reasons that come from Zoom (or from whoever posts to the webhook) reach log
lines as `%s` arguments and inside exception text. `WireSafeFilter`, installed on the
handler, escapes every control character in them (so no id can forge a log line or move
the terminal's cursor) and cuts each argument to `ARG_LIMIT` characters (so none can flood
the log). Meeting content (transcript and chat text, names, account ids) is never passed
to a log call in the first place.

Only the gateway's own loggers follow RTMS_LOG_LEVEL; every other logger stays at
WARNING. At DEBUG, the SQL drivers log each statement with its parameters (meeting
content) and the WebSocket and HTTP libraries log frames and requests.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

ARG_LIMIT = 256
MESSAGE_LIMIT = 4096
TRACEBACK_LINE_LIMIT = 500
TRACEBACK_LINES = 200
CONTINUATION = "  | "  # starts every line after a record's first: it cannot pass for a record
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Named as well as covered by the root's level, in case a library sets its own level.
THIRD_PARTY_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "picows", "websockets",
                       "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "httpx", "httpcore",
                       "asyncio", "rtms_sim")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """`text` with every non-printable character (C0/C1 controls, line and paragraph
    separators, format characters such as bidi overrides) written as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):  # %d, %.1f keep working
        return value
    return cut(escape(str(value)), ARG_LIMIT)


def _safe_block(text: str) -> str:
    """A traceback or stack: its own line breaks kept, each line escaped, cut and marked
    as a continuation."""
    lines = text.splitlines()  # splits on \r, \x0b, \x85, \u2028... too: each becomes a marked line
    if len(lines) > TRACEBACK_LINES:
        lines = [f"({len(lines) - TRACEBACK_LINES} lines left out)", *lines[-TRACEBACK_LINES:]]
    return "\n".join(CONTINUATION + cut(escape(line), TRACEBACK_LINE_LIMIT) for line in lines)


class WireSafeFilter(logging.Filter):
    """Rewrites each record once: its message formatted from escaped, cut arguments and
    escaped as a whole; its exception and stack text escaped line by line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "wire_safe", False):
            return True
        record.msg = cut(escape(_message(record)), MESSAGE_LIMIT)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _safe_block(record.exc_text)
        if record.stack_info:
            record.stack_info = _safe_block(record.stack_info)
        record.wire_safe = True
        return True


def _message(record: logging.LogRecord) -> str:
    msg, args = str(record.msg), record.args
    if not args:
        return msg
    try:
        if isinstance(args, dict):
            return msg % {key: _safe_arg(value) for key, value in args.items()}
        return msg % tuple(_safe_arg(value) for value in args)
    except (TypeError, ValueError, KeyError):
        try:
            return record.getMessage()  # a conversion the escaped text does not fit (%x on a str...)
        except Exception:
            return f"{msg} (unformattable arguments: {args!r})"


class _GatewayHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs (one at a time)."""


def configure_logging(level: str, stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger, writing one line per record to `stream` (stderr);
    the gateway's loggers at `level`, everyone else's at WARNING."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(old)
    handler = _GatewayHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(WireSafeFilter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("rtms_gateway").setLevel(level.upper())
    return handler
