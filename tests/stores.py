"""A real store on each database the gateway supports: a SQLite file, and the test
PostgreSQL server in a schema of its own (dropped afterwards). Parametrize a fixture with
`DATABASES` and open the store with `a_store`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from rtms_gateway.sinks.store import Store

from .postgres import URL, needs_postgres, own_schema

DATABASES = ["sqlite", pytest.param("postgres", marks=needs_postgres)]


class OpenStore:
    """The store, and `reopen()`: closed and opened again on the same database."""

    def __init__(self, open_: Callable[[], Awaitable[Store]]) -> None:
        self._open = open_
        self.store: Store | None = None

    async def start(self) -> Store:
        self.store = await self._open()
        return self.store

    async def reopen(self) -> Store:
        assert self.store is not None
        await self.store.close()
        return await self.start()


@asynccontextmanager
async def a_store(database: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    async with AsyncExitStack() as stack:
        if database == "postgres":
            assert URL is not None
            schema = await stack.enter_async_context(own_schema())
            opened = OpenStore(lambda: Store.open(URL, pg_schema=schema))
        else:
            opened = OpenStore(lambda: Store.open(f"sqlite:///{tmp_path / 'db' / 'rtms.sqlite3'}"))
        await opened.start()
        try:
            yield opened
        finally:
            assert opened.store is not None
            await opened.store.close()
