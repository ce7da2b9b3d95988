"""What a failed store operation means, decided once, at the store's edge.

The store raises two kinds of error and nothing else (`protocol.errors`):
- `StoreUnavailable`: the database is away (connection refused or lost, locked, a timeout,
  the server shutting down, too many connections, a serialization failure; also a schema
  or rights problem that someone must fix): the same write can succeed later, so the
  pipeline journals it and retries;
- `RecordRefused`: the database answers and refuses what was written (a data exception, a
  constraint, a value out of range, an encoding, a program limit such as PostgreSQL's
  index row size): retrying cannot help, the record is set aside and the others go in.

PostgreSQL errors are read by SQLSTATE class, SQLite's by their error code; then Python's
own (a value the driver cannot bind is refused, an OSError means away) and SQLAlchemy's
categories. What none of these names is decided by whether the database still answers.

Messages carry the error code and type only: drivers quote the values they could not
write, and those are meeting content.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import AsyncEngine

from ..protocol.errors import RecordRefused, StoreError, StoreUnavailable

# How long the "does it still answer?" probe may take before the answer is no.
PROBE_TIMEOUT_S = 2.0

# SQLSTATE classes (the first two characters).
_PG_REFUSED = frozenset({
    "22",  # data exception: NUL or a bad encoding, a value too long or out of range
    "23",  # integrity constraint violation
    "54",  # program limit exceeded: index row size, too many columns
})
_PG_AWAY = frozenset({
    "08",  # connection exception
    "25",  # invalid transaction state (an idle-in-transaction timeout)
    "28",  # invalid authorization (a password changed)
    "3D", "3F",  # the database or schema is gone
    "40",  # transaction rollback: serialization failure, deadlock
    "42",  # the schema or the rights do not allow it: nothing goes in until someone fixes it
    "53",  # insufficient resources: too many connections, disk full, out of memory
    "55",  # object not in prerequisite state: lock not available (lock_timeout)
    "57",  # operator intervention: shutting down, cannot connect now, statement cancelled
    "58",  # system error: I/O
})

# SQLite primary result codes (the low byte of the extended code).
_SQLITE_REFUSED = frozenset({
    sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE,
})
_SQLITE_AWAY = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_INTERRUPT,
    sqlite3.SQLITE_ABORT, sqlite3.SQLITE_NOLFS, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_SCHEMA,
})

# Raised by a driver before the database saw anything: the value cannot be sent.
_VALUE_ERRORS = (ValueError, TypeError, OverflowError)  # UnicodeError is a ValueError
_AWAY_ERRORS = (OSError, TimeoutError, EOFError)  # ConnectionError is an OSError
_SA_AWAY = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
            sa_exc.DisconnectionError,
            # asyncpg lost track of its connection (the server ended it mid-operation)
            AsyncAdapt_asyncpg_dbapi.InternalClientError)
_SA_REFUSED = (sa_exc.DataError, sa_exc.IntegrityError)

Kind = type[StoreError]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and what it wraps (SQLAlchemy's `.orig`, then explicit causes)."""
    seen: set[int] = set()
    at: BaseException | None = exc
    while at is not None and id(at) not in seen:
        seen.add(id(at))
        yield at
        at = getattr(at, "orig", None) or at.__cause__


def _code(exc: BaseException) -> tuple[Kind | None, str]:
    """What the database's own error code says, if it gave one."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:
        cls = state[:2]
        return (RecordRefused if cls in _PG_REFUSED else StoreUnavailable if cls in _PG_AWAY else None), state
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        name = getattr(exc, "sqlite_errorname", None) or str(code)
        primary = code & 0xFF
        return (RecordRefused if primary in _SQLITE_REFUSED
                else StoreUnavailable if primary in _SQLITE_AWAY else None), name
    return None, ""


def classify(exc: BaseException) -> tuple[Kind | None, str]:
    """(the kind, or None when nothing says; a label naming the code and the types)."""
    chain = list(_chain(exc))
    label = "/".join(dict.fromkeys(type(e).__name__ for e in chain))
    for e in chain:  # the database's code decides
        kind, code = _code(e)
        if code:
            label = f"{code} {label}"
            if kind is not None:
                return kind, label
            break
    for e in chain:  # then what the driver raised before the database saw anything
        if isinstance(e, _VALUE_ERRORS):
            return RecordRefused, label
        if isinstance(e, _AWAY_ERRORS):
            return StoreUnavailable, label
    if getattr(exc, "connection_invalidated", False):
        return StoreUnavailable, label
    for e in chain:  # then SQLAlchemy's (DB-API's) categories
        if isinstance(e, _SA_AWAY):
            return StoreUnavailable, label
        if isinstance(e, _SA_REFUSED):
            return RecordRefused, label
    return None, label


async def answers(engine: AsyncEngine) -> bool:
    """Whether the database takes a trivial query now (within PROBE_TIMEOUT_S)."""

    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(select(1))

    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
        return True
    except Exception:
        return False


async def translate(exc: Exception, engine: AsyncEngine) -> StoreError:
    """The StoreError `exc` stands for."""
    if isinstance(exc, StoreError):
        return exc
    kind, label = classify(exc)
    if kind is None:
        # Nothing names it: if the database still answers, it was this write it refused.
        kind = RecordRefused if await answers(engine) else StoreUnavailable
        label = f"unclassified {label}"
    lines = str(exc).splitlines()
    return kind(label, detail=lines[0][:300] if lines else "")


class _Guarded(Protocol):
    """What `guarded` needs of the object whose coroutines it wraps."""

    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def closed(self) -> bool: ...


_Owner = TypeVar("_Owner", bound=_Guarded)
_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def guarded(
    method: Callable[Concatenate[_Owner, _Args], Coroutine[Any, Any, _Result]],
) -> Callable[Concatenate[_Owner, _Args], Coroutine[Any, Any, _Result]]:
    """For the store's public coroutines (on an object with `engine` and `closed`): any
    failure leaves as StoreUnavailable or RecordRefused; a closed store is unavailable."""

    @functools.wraps(method)
    async def run(self: _Owner, /, *args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        if self.closed:
            raise StoreUnavailable("the store is closed")
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            raise await translate(exc, self.engine) from exc

    return run
