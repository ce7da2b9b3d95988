"""A part of the store with tables of its own (API keys, the outbox, the delivery memory,
feed positions, revocations): on the store's engine, closed with it, so its public
coroutines can be `guarded`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from .store import Store


class StorePart:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pg = store.engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._pg else sqlite.insert

    @property
    def engine(self) -> AsyncEngine:
        return self._store.engine

    @property
    def closed(self) -> bool:
        return self._store.closed
