"""The Redis bus: every feed item also XADDed to Redis Streams, `{prefix}all` and
`{prefix}meeting:{meeting_uuid}` (prefix `rtms:`; an account item, of no meeting, goes to
`{prefix}account` instead), each trimmed to about `maxlen` entries,
so consumers read them with consumer groups.

The feed is the source: the bus keeps its position (the last item handed to Redis) in the
store and sends what follows, a batch at a time, from its own task. Redis away: the items
wait in the store (the backlog is counted) and go when it is back; ingest never waits on
Redis. At least once: a batch cut mid-way is sent again whole, so an entry may come twice;
its `cursor` field tells (consumers keep the last one they handled).

Entry fields, as the live feed's JSON: `cursor`, `kind`, `type`, `meeting_uuid`,
`stored_at_ms`, `stored_at_iso`, `data` (the record's JSON, as the REST API shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from ..protocol.errors import StoreError
from . import schema as s
from .exports import iso_utc
from .feed import NO_MEETING, FeedItem
from .store_errors import guarded
from .store_open import execute, transact
from .store_part import StorePart

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

CONSUMER = "redis"  # the bus's row in `feed_positions`
DEFAULT_PREFIX = "rtms:"
BATCH = 500  # items per round trip
POLL_S = 30.0  # the store is read at least this often, woken or not
RETRY_S = (0.5, 30.0)  # Redis or the store away: the wait, doubling, jittered, within these
TIMEOUT_S = 5.0  # Redis connect and command timeout


def _text(value: str) -> bytes:
    """UTF-8, a lone surrogate (which an id from the wire may hold) escaped."""
    return value.encode("utf-8", "backslashreplace")


def entry(item: FeedItem) -> dict[str | bytes, bytes | str | int]:
    return {"cursor": item.cursor, "kind": item.kind.value, "type": item.type,
            "meeting_uuid": _text(item.meeting_uuid), "stored_at_ms": item.stored_at_ms,
            "stored_at_iso": iso_utc(item.stored_at_ms) or "", "data": bytes(item.data)}


class FeedPositions(StorePart):
    """Where consumers of the feed stand (`feed_positions`), by name."""

    @guarded
    async def get_or_start(self, consumer: str) -> int:
        """Its position; a consumer new here starts at the feed's head (what comes next)."""
        p = s.feed_positions
        insert = self._insert(p)

        def write(conn: Connection) -> int:
            head = conn.execute(select(func.max(s.feed_items.c.id))).scalar() or 0
            conn.execute(insert.values(consumer=consumer, position=head)
                         .on_conflict_do_nothing(index_elements=["consumer"]))
            position: int = conn.execute(
                select(p.c.position).where(p.c.consumer == consumer)).scalar_one()
            return position
        return await transact(self.engine, write)

    @guarded
    async def set(self, consumer: str, position: int) -> None:
        p = s.feed_positions
        stmt = update(p).where(p.c.consumer == consumer, p.c.position < position).values(position=position)
        await execute(self.engine, stmt)


class RedisBus:
    def __init__(self, store: Store, url: str, *, maxlen: int, prefix: str = DEFAULT_PREFIX) -> None:
        self.store = store
        self.positions = FeedPositions(store)
        self.maxlen = maxlen
        self.prefix = prefix
        self.redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                          socket_connect_timeout=TIMEOUT_S)
        self.position = 0
        self.head = 0  # the newest item the store told of
        self.sent = 0
        self.errors = 0
        self.connected = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        """Reads its position (a bus new to this store starts at the feed's head) and
        listens to the store; a store away now delays the bus, not the gateway: its task
        reads the position once the store is back."""
        self._unlisten = self.store.on_items(self._heard)
        started = False
        with contextlib.suppress(StoreError):
            self._started_at(await self.positions.get_or_start(CONSUMER))
            started = True
        self._task = asyncio.get_running_loop().create_task(self._run(started), name="redis-bus")

    def _started_at(self, position: int) -> None:
        self.position = position
        self.head = max(self.head, position)

    def _heard(self, items: list[FeedItem]) -> None:
        self.head = max(self.head, items[-1].seq)
        self._wake.set()

    async def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    @property
    def backlog(self) -> int:
        """Items stored and not yet in Redis (an upper bound: sequence numbers may skip)."""
        return max(0, self.head - self.position)

    async def _run(self, started: bool) -> None:
        wait = RETRY_S[0]
        while True:
            self._wake.clear()  # before reading: a wake-up during the read is kept
            try:
                if not started:
                    self._started_at(await self.positions.get_or_start(CONSUMER))
                    started = True
                busy = await self._send_next()
                wait = RETRY_S[0]
            except StoreError as exc:
                log.warning("redis bus: the store is unavailable (%s); retrying", exc)
                await self._pause(wait)
                wait = min(wait * 2, RETRY_S[1])
                continue
            except (RedisError, OSError) as exc:
                self.errors += 1
                if self.connected or self.errors == 1:
                    log.warning("redis bus: Redis is unavailable (%s); %d items wait in the store",
                                type(exc).__name__, self.backlog)
                self.connected = False
                await self._pause(wait)
                wait = min(wait * 2, RETRY_S[1])
                continue
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds * random.uniform(0.5, 1.0))

    async def _send_next(self) -> bool:
        items = await self.store.feed(after=self.position, limit=BATCH)
        if not items:
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in items:
                fields: Any = entry(item)
                # An account item (no meeting) goes to `account` instead of a meeting's stream.
                own = (b"meeting:" + _text(item.meeting_uuid) if item.meeting_uuid != NO_MEETING
                       else b"account")
                for key in (self.prefix.encode() + b"all", self.prefix.encode() + own):
                    pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)
            await pipe.execute()
        if not self.connected:
            log.info("redis bus: Redis answers; sending from cursor %s", items[0].cursor)
            self.connected = True
        self.sent += len(items)
        self.position = items[-1].seq
        self.head = max(self.head, self.position)
        await self.positions.set(CONSUMER, self.position)
        return True
