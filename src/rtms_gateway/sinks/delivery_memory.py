"""What must outlive a restart so a replayed webhook reopens nothing.

Zoom's signed webhooks stay valid for 5 minutes and Zoom retries a delivery for over an
hour; kept in process memory alone, both the deliveries already taken and the streams
already ended were forgotten by a restart, and a replayed `rtms_started` reopened a
stopped meeting. Here they live in the store, each table pruned by age and bounded in
rows (checked at most once a minute, in the same transaction as a write).

Keys are hashes (`schema.key_of`), so a delivery or a stream id of any length fits.

Deliveries checked together (a burst of webhooks, hundreds of meetings starting at once)
share one transaction: one statement each, so two gateways on one database still agree on
who takes which, but one commit, and one turn at SQLite's writer, for all of them. A check
made while a transaction runs waits for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Connection

from ..protocol.errors import StoreError, StoreUnavailable
from . import schema as s
from .schema import key_of
from .store_errors import guarded
from .store_open import execute, transact
from .store_part import StorePart

if TYPE_CHECKING:
    from .store import Store

DELIVERY_TTL_S = 3600  # Zoom's last retry comes after an hour
ENDED_TTL_S = 24 * 3600  # a stream id is never reused; a day covers every retry
MAX_ROWS = 100_000  # per table
PRUNE_EVERY_S = 60


class DeliveryMemory(StorePart):
    def __init__(self, store: Store, *, delivery_ttl_s: float = DELIVERY_TTL_S, ended_ttl_s: float = ENDED_TTL_S,
                 max_rows: int = MAX_ROWS, prune_every_s: float = PRUNE_EVERY_S) -> None:
        super().__init__(store)
        self.delivery_ttl_ms = int(delivery_ttl_s * 1000)
        self.ended_ttl_ms = int(ended_ttl_s * 1000)
        self.max_rows = max_rows
        self.prune_every_ms = int(prune_every_s * 1000)
        self._pruned_at: dict[str, int] = {}
        # Deliveries waiting for the next transaction, and the task that runs them.
        self._deliveries: list[tuple[str, int, asyncio.Future[bool]]] = []
        self._taking: asyncio.Task[None] | None = None
        t = s.webhook_deliveries
        insert = self._insert(t)
        self._take_one = insert.on_conflict_do_update(
            index_elements=["delivery_key"], set_={"seen_at_ms": insert.excluded.seen_at_ms},
            where=t.c.seen_at_ms < bindparam("expired_before"),  # an expired one is new again
        ).returning(t.c.id)

    @guarded
    async def seen_delivery(self, delivery: tuple[Hashable, ...], now_ms: int) -> bool:
        """True if `delivery` was taken within the TTL; records it (as of `now_ms`) if not."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._deliveries.append((key_of(*delivery), now_ms, future))
        if self._taking is None:
            self._taking = asyncio.get_running_loop().create_task(self._take_deliveries())
        return await future

    async def _take_deliveries(self) -> None:
        """Take what waits, one transaction at a time, until nothing does."""
        batch: list[tuple[str, int, asyncio.Future[bool]]] = []
        try:
            while self._deliveries:
                batch, self._deliveries = self._deliveries, []
                try:
                    taken_now = await self._take(batch)
                except StoreError as exc:
                    for _, _, future in batch:
                        if not future.done():  # a caller that gave up is not told
                            future.set_exception(type(exc)(str(exc), detail=exc.detail))
                    continue
                for (_, _, future), taken in zip(batch, taken_now, strict=True):
                    if not future.done():
                        future.set_result(not taken)
        finally:
            self._taking = None
            for _, _, future in [*batch, *self._deliveries]:  # cancelled (the loop is ending)
                if not future.done():
                    future.set_exception(StoreUnavailable("the delivery memory stopped"))

    @guarded
    async def _take(self, batch: list[tuple[str, int, asyncio.Future[bool]]]) -> list[bool]:
        """One statement per delivery, in order (a delivery twice in `batch` is taken once),
        in one transaction: whether each was taken by it."""
        t = s.webhook_deliveries
        ttl, stmt = self.delivery_ttl_ms, self._take_one
        latest = max(at for _, at, _ in batch)
        prune = self._prune_due(t, latest)

        def write(conn: Connection) -> list[bool]:
            taken = [conn.execute(stmt, {"delivery_key": key, "seen_at_ms": at, "expired_before": at - ttl})
                     .first() is not None for key, at, _ in batch]
            if prune:
                self._prune(conn, t, t.c.seen_at_ms, latest, ttl)
            return taken
        return await transact(self.engine, write)

    @guarded
    async def forget_delivery(self, delivery: tuple[Hashable, ...]) -> None:
        """So Zoom's retry of a delivery we failed to act on is taken again."""
        t = s.webhook_deliveries
        stmt = delete(t).where(t.c.delivery_key == key_of(*delivery))
        await execute(self.engine, stmt)

    @guarded
    async def remember_ended(self, rtms_stream_id: str, state: str, now_ms: int) -> None:
        t = s.ended_streams
        stmt = self._insert(t).values(stream_key=key_of(rtms_stream_id), state=state, ended_at_ms=now_ms)
        stmt = stmt.on_conflict_do_update(index_elements=["stream_key"], set_={
            "state": stmt.excluded.state, "ended_at_ms": stmt.excluded.ended_at_ms})
        prune = self._prune_due(t, now_ms)

        def write(conn: Connection) -> None:
            conn.execute(stmt)
            if prune:
                self._prune(conn, t, t.c.ended_at_ms, now_ms, self.ended_ttl_ms)
        await transact(self.engine, write)

    @guarded
    async def ended_state(self, rtms_stream_id: str) -> str | None:
        """How the stream ended (stopped, lost, rejected...), if it did."""
        t = s.ended_streams
        async with self.engine.connect() as conn:
            return (await conn.execute(select(t.c.state).where(t.c.stream_key == key_of(rtms_stream_id)))).scalar()

    def _prune_due(self, table: Any, now_ms: int) -> bool:
        """Whether the table is pruned with this write: at most once a minute."""
        last = self._pruned_at.get(table.name)
        if last is not None and now_ms - last < self.prune_every_ms:
            return False
        self._pruned_at[table.name] = now_ms
        return True

    def _prune(self, conn: Connection, table: Any, at: Any, now_ms: int, ttl_ms: int) -> None:
        """Rows past their TTL, then the oldest past `max_rows`."""
        conn.execute(delete(table).where(at < now_ms - ttl_ms))
        newest_dropped = (select(table.c.id).order_by(table.c.id.desc())
                          .offset(self.max_rows).limit(1).scalar_subquery())
        conn.execute(delete(table).where(table.c.id <= newest_dropped))
