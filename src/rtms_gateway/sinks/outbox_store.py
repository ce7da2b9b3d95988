"""The outbox's tables: webhook subscriptions and their deliveries (`schema`, migration 0006).

The feed is the outbox's source: a subscription keeps only its `position` (the last feed
item it is done with) and a row per item it delivers, holding the attempts and the fate
(pending, delivered, dead). An item is done, and the position moves past it, in the same
transaction that records its last attempt, so a restart resumes at the first item not yet
done, with the attempts (and the backoff) it had.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from . import schema as s
from .cursors import format_cursor
from .exports import iso_names, with_iso
from .store_errors import guarded
from .store_open import execute, transact
from .store_part import StorePart
from .webhook_signing import webhook_id

if TYPE_CHECKING:
    pass

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)
_DELIVERY_TIMES = iso_names("created_at_ms", "next_attempt_at_ms", "last_attempt_at_ms",
                            "done_at_ms")


def now_ms() -> int:
    return int(time.time() * 1000)


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    url: str
    events: tuple[str, ...]
    secret: str
    position: int
    created_at_ms: int

    def to_json(self) -> dict[str, Any]:
        """What the API shows (never the secret)."""
        return with_iso({"id": self.id, "url": self.url, "events": list(self.events),
                         "position": format_cursor(self.position),
                         "created_at_ms": self.created_at_ms}, iso_names("created_at_ms"))


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """`created_at_ms` starts its retry window: when its item was stored (when it was
    replayed, for a replay). `id` is 0 until its first attempt is recorded."""

    id: int
    subscription_id: int
    seq: int
    type: str
    status: str
    attempts: int
    created_at_ms: int
    next_attempt_at_ms: int
    last_attempt_at_ms: int | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    done_at_ms: int | None = None

    @property
    def webhook_id(self) -> str:
        return webhook_id(self.subscription_id, self.seq)

    def to_json(self) -> dict[str, Any]:
        body = msgspec.structs.asdict(self)
        body["cursor"] = format_cursor(body.pop("seq"))
        body["webhook_id"] = self.webhook_id
        if self.status != PENDING:
            body["next_attempt_at_ms"] = None
        return with_iso(body, _DELIVERY_TIMES)


def _subscription(row: Any) -> Subscription:
    return Subscription(id=row.id, url=row.url, events=tuple(row.events.split(",")),
                        secret=row.secret, position=row.position, created_at_ms=row.created_at_ms)


def _delivery(row: Any) -> Delivery:
    return Delivery(**{name: row._mapping[name] for name in Delivery.__struct_fields__})


class OutboxStore(StorePart):
    # ---- subscriptions -------------------------------------------------------------------

    @guarded
    async def add(self, url: str, events: tuple[str, ...], secret: str) -> Subscription:
        """A subscription to what is stored from now on (its position: the feed's head)."""
        w, f = s.webhook_subscriptions, s.feed_items
        created = now_ms()

        def write(conn: Connection) -> tuple[int, int]:
            head = conn.execute(select(func.max(f.c.id))).scalar() or 0
            new_id = conn.execute(insert(w).values(
                url=url, events=",".join(events), secret=secret, position=head,
                created_at_ms=created).returning(w.c.id)).scalar_one()
            return new_id, head
        new_id, head = await transact(self.engine, write)
        return Subscription(id=new_id, url=url, events=events, secret=secret, position=head,
                            created_at_ms=created)

    @guarded
    async def live(self) -> list[Subscription]:
        w = s.webhook_subscriptions
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(w).where(w.c.deleted_at_ms.is_(None)).order_by(w.c.id))
            return [_subscription(r) for r in rows]

    @guarded
    async def get(self, subscription_id: int) -> Subscription | None:
        w = s.webhook_subscriptions
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(w).where(
                w.c.id == subscription_id, w.c.deleted_at_ms.is_(None)))).first()
        return _subscription(row) if row is not None else None

    @guarded
    async def remove(self, subscription_id: int) -> bool:
        """Whether there was such a subscription. Its deliveries' history stays."""
        w = s.webhook_subscriptions
        stmt = update(w).where(w.c.id == subscription_id, w.c.deleted_at_ms.is_(None)).values(
            deleted_at_ms=now_ms())
        return bool(await execute(self.engine, stmt))

    @guarded
    async def advance(self, subscription_id: int, seq: int) -> None:
        """Done with everything up to `seq` (items it does not deliver)."""
        await transact(self.engine, lambda conn: _advance(conn, subscription_id, seq))

    # ---- deliveries ----------------------------------------------------------------------

    @guarded
    async def begun(self, subscription_id: int, seqs: list[int]) -> dict[int, Delivery]:
        """The deliveries of these items made before (a restart finds their attempts), by item."""
        d = s.outbound_deliveries
        if not seqs:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(d).where(d.c.subscription_id == subscription_id,
                                                      d.c.seq.in_(seqs)))
            return {r.seq: _delivery(r) for r in rows}

    @guarded
    async def record_attempt(self, delivery: Delivery, *, at_ms: int, status: str,
                             status_code: int | None, error: str | None,
                             next_attempt_at_ms: int) -> Delivery:
        """One attempt made; `status` what it leaves the delivery in. The delivery's row is
        written then (made by its first attempt: a delivery that succeeds at once costs one
        write). A delivery done moves its subscription's position past it (a replayed one is
        behind it already)."""
        d = s.outbound_deliveries
        values: dict[str, Any] = {
            "status": status, "attempts": delivery.attempts + 1, "last_attempt_at_ms": at_ms,
            "last_status_code": status_code, "last_error": error,
            "next_attempt_at_ms": next_attempt_at_ms,
            "done_at_ms": at_ms if status != PENDING else None}
        row = {"subscription_id": delivery.subscription_id, "seq": delivery.seq,
               "type": delivery.type, "created_at_ms": delivery.created_at_ms, **values}
        stmt = self._insert(d).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=["subscription_id", "seq"], set_=values)

        def write(conn: Connection) -> int:
            delivery_id: int = conn.execute(stmt.returning(d.c.id)).scalar_one()
            if status != PENDING:
                _advance(conn, delivery.subscription_id, delivery.seq)
            return delivery_id
        delivery_id = await transact(self.engine, write)
        return msgspec.structs.replace(delivery, id=delivery_id, **values)

    @guarded
    async def record_delivered(self, delivered: list[Delivery]) -> None:
        """Deliveries that succeeded (their last attempt in them), written at once, and the
        position moved past the last: one transaction for many."""
        if not delivered:
            return
        d = s.outbound_deliveries
        rows = [{"subscription_id": x.subscription_id, "seq": x.seq, "type": x.type,
                 "status": DELIVERED, "attempts": x.attempts, "created_at_ms": x.created_at_ms,
                 "next_attempt_at_ms": x.next_attempt_at_ms,
                 "last_attempt_at_ms": x.last_attempt_at_ms,
                 "last_status_code": x.last_status_code, "last_error": None,
                 "done_at_ms": x.done_at_ms} for x in delivered]
        stmt = self._insert(d)
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscription_id", "seq"],
            set_={name: stmt.excluded[name] for name in (
                "status", "attempts", "next_attempt_at_ms", "last_attempt_at_ms",
                "last_status_code", "last_error", "done_at_ms")})
        last: dict[int, int] = {}  # subscription -> the last item delivered
        for x in delivered:
            last[x.subscription_id] = max(x.seq, last.get(x.subscription_id, x.seq))

        def write(conn: Connection) -> None:
            conn.execute(stmt, rows)
            for subscription_id, seq in last.items():
                _advance(conn, subscription_id, seq)
        await transact(self.engine, write)

    @guarded
    async def deliveries(self, subscription_id: int, *, status: str | None = None,
                         before: int | None = None, limit: int = 100) -> list[Delivery]:
        """Newest first; `before` a delivery id (the previous page's last)."""
        d = s.outbound_deliveries
        query = select(d).where(d.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(d.c.status == status)
        if before is not None:
            query = query.where(d.c.id < before)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(d.c.id.desc()).limit(limit))
            return [_delivery(r) for r in rows]

    @guarded
    async def replay(self, subscription_id: int, delivery_id: int) -> Delivery | None:
        """A dead delivery made pending again, due now, with a fresh retry window; None if
        there is no dead delivery of that id."""
        d = s.outbound_deliveries
        at = now_ms()
        where = and_(d.c.id == delivery_id, d.c.subscription_id == subscription_id,
                     d.c.status == DEAD)
        def write(conn: Connection) -> Delivery | None:
            done = conn.execute(update(d).where(where).values(
                status=PENDING, attempts=0, created_at_ms=at, next_attempt_at_ms=at,
                done_at_ms=None))
            if not done.rowcount:
                return None
            return _delivery(conn.execute(select(d).where(d.c.id == delivery_id)).one())
        return await transact(self.engine, write)

    @guarded
    async def replays(self, subscription: Subscription, limit: int = 100) -> list[Delivery]:
        """Pending deliveries the position has passed: replayed ones, oldest item first."""
        d = s.outbound_deliveries
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(d).where(
                d.c.subscription_id == subscription.id, d.c.status == PENDING,
                d.c.seq <= subscription.position).order_by(d.c.seq).limit(limit))
            return [_delivery(r) for r in rows]

    @guarded
    async def position(self, subscription_id: int) -> int | None:
        w = s.webhook_subscriptions
        async with self.engine.connect() as conn:
            seq: int | None = (await conn.execute(
                select(w.c.position).where(w.c.id == subscription_id))).scalar()
        return seq

    @guarded
    async def prune(self, delivered_before_ms: int, dead_before_ms: int) -> int:
        """Forget deliveries delivered before then, and dead ones (kept longer, for replay)."""
        d = s.outbound_deliveries
        stmt = delete(d).where(
            ((d.c.status == DELIVERED) & (d.c.done_at_ms < delivered_before_ms))
            | ((d.c.status == DEAD) & (d.c.done_at_ms < dead_before_ms)))
        return await execute(self.engine, stmt)


def _advance(conn: Connection, subscription_id: int, seq: int) -> None:
    w = s.webhook_subscriptions
    conn.execute(update(w).where(w.c.id == subscription_id, w.c.position < seq).values(position=seq))
