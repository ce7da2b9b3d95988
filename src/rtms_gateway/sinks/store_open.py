"""Opening the store's database: the async driver a URL names, its settings, migrations.

Whatever keeps a database from opening (a bad URL, a server away, a migration refused) is
a StoreUnavailable whose message names the URL without its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from ..protocol.errors import StoreUnavailable
from .store_errors import translate

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# How long a write waits on a lock before failing: the pipeline then journals the batch
# instead of holding every stream's records behind one stuck transaction.
LOCK_WAIT_S = 2.0
# How long connecting to PostgreSQL may take before the database counts as away.
CONNECT_TIMEOUT_S = 10.0

T = TypeVar("T")


class _SqliteWriting:
    """How one SQLite database is written from this process.

    SQLite has one writer at a time, and a transaction that read before it writes cannot
    wait for the lock (SQLITE_BUSY at once): the gateway's writers (ingest, outbox, bus,
    keys, delivery memory) take turns in the process (`lock`) instead of racing inside the
    database. A transaction written as plain synchronous code (`transact`) runs whole in
    a thread of its own on a connection of its own: through aiosqlite each statement is a
    hand-over to its thread and back through the event loop, which a busy loop makes
    cost a millisecond or more, several times per transaction. The thread keeps its
    connection between transactions (until one fails).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.lock = asyncio.Lock()
        self._url = engine.url.set(drivername="sqlite")
        self._memory = engine.url.database in (None, "", ":memory:")
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None  # used in the thread only

    async def run(self, engine: AsyncEngine, write: Callable[[Connection], T]) -> T:
        async with self.lock:
            if self._memory:  # another connection would be another database
                async with engine.begin() as conn:
                    return await conn.run_sync(write)
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
                self._sync = create_engine(self._url, connect_args={"timeout": LOCK_WAIT_S})
                event.listen(self._sync, "connect", _sqlite_pragmas)
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._transaction, write)

    def _transaction(self, write: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        if self._conn is None:
            self._conn = self._sync.connect()
        conn = self._conn
        try:
            with conn.begin():
                return write(conn)
        except Exception:
            # A connection a write failed on may be what failed (a file moved, a lock
            # held): the next transaction opens a new one.
            self._conn = None
            conn.close()
            raise

    def _dispose(self, sync: Engine) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        sync.dispose()

    async def close(self) -> None:
        thread, sync = self._thread, self._sync
        self._thread = self._sync = None
        if thread is not None and sync is not None:
            async with self.lock:  # after the transaction under way, if any
                await asyncio.get_running_loop().run_in_executor(thread, self._dispose, sync)
            thread.shutdown()


_sqlite_writing: weakref.WeakKeyDictionary[Any, _SqliteWriting] = weakref.WeakKeyDictionary()


def _writing_of(engine: AsyncEngine) -> _SqliteWriting:
    found = _sqlite_writing.get(engine.sync_engine)
    if found is None:
        found = _sqlite_writing[engine.sync_engine] = _SqliteWriting(engine)
    return found


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()` for a transaction that writes: on SQLite, one at a time per database."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    async with _writing_of(engine).lock, engine.begin() as conn:
        yield conn


async def transact(engine: AsyncEngine, write: Callable[[Connection], T]) -> T:
    """`write(conn)` in one transaction that writes, as `writing` would run it, returning
    what it returns: on SQLite whole in the writer's thread, elsewhere on the async driver."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            return await conn.run_sync(write)
    return await _writing_of(engine).run(engine, write)


async def execute(engine: AsyncEngine, statement: Executable) -> int:
    """One statement in a write transaction of its own (as `transact` runs one); the rows
    it touched."""
    return await transact(engine, lambda conn: int(conn.execute(statement).rowcount or 0))


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's connections, and the SQLite writer's thread if it has one."""
    found = _sqlite_writing.pop(engine.sync_engine, None)
    if found is not None:
        await found.close()
    await engine.dispose()


def async_url(url: str) -> str:
    """`sqlite:///x` and `postgresql://…` name the async drivers this store uses."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


async def open_engine(url: str, *, pg_schema: str | None = None) -> AsyncEngine:
    """An engine on `url`, its database migrated to the newest schema. `pg_schema` puts a
    PostgreSQL store in its own schema."""
    try:
        return await _open(url, pg_schema)
    except Exception as exc:
        raise StoreUnavailable(_open_failure(url, exc)) from exc


async def _open(url: str, pg_schema: str | None) -> AsyncEngine:
    target = async_url(url)
    parsed = make_url(target)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        settings = {"lock_timeout": str(int(LOCK_WAIT_S * 1000))}
        if pg_schema:
            settings["search_path"] = pg_schema
        options["connect_args"] = {"server_settings": settings, "timeout": CONNECT_TIMEOUT_S}
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": LOCK_WAIT_S}
    engine = create_async_engine(target, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except Exception as exc:
        error = await translate(exc, engine)
        await engine.dispose()
        raise error from exc
    return engine


def _open_failure(url: str, exc: Exception) -> str:
    """"cannot open the database URL (why)", the URL and the reason without the password."""
    try:
        parsed = make_url(url)
        shown, password = parsed.render_as_string(hide_password=True), parsed.password
    except (ArgumentError, ValueError, TypeError):
        shown, password = "(an unreadable URL)", None
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if why.startswith("(") and ") " in why:  # SQLAlchemy's "(driver.Error) message"
        why = why.split(") ", 1)[1]
    if password:
        why = why.replace(str(password), "***")
    return f"cannot open the database {shown} ({why[:200]})"


def _upgrade(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL",
                   f"busy_timeout={int(LOCK_WAIT_S * 1000)}"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()
