"""Outbound webhooks: a deliverer task per subscription, reading the feed after its
position and posting each item it subscribes to, in cursor order, signed (Standard
Webhooks), at least once.

A delivery that fails is retried with exponential backoff and jitter until it is
`max_age_s` old (24 h by default), then dead-lettered; the deliverer moves on either way.
Later items of that subscription wait meanwhile (order is kept per endpoint); other
subscriptions and ingest never wait: each deliverer has its own task and HTTP client, and
the store's `on_items` wakes them (a wake-up missed costs at most `POLL_S`, nothing else:
they read the store). A deliverer that has caught up with the store takes the items just
committed from `on_items` instead of reading them back, and writes what it delivered (and
its position) at most every `FLUSH_S`: at 100 items a second, a few writes a second instead
of several reads and a write per commit, which the ingest's own writes would wait behind.
A replayed dead delivery is tried again, out of order.

The set of subscriptions is read from the store now and then (`SYNC_S`), so ones added or
removed by `rtms-gateway webhooks` on a running gateway are taken up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec

from ..protocol.errors import StoreError
from .feed import FeedItem, FeedKind
from .outbox_store import DEAD, DELIVERED, PENDING, Delivery, OutboxStore, Subscription, now_ms
from .store import Store
from .webhook_signing import body_of, headers, new_secret
from .webhook_targets import check_target, transport

log = logging.getLogger(__name__)

# The types a subscription may ask for, and the feed kind each is found in.
EVENT_TYPES: dict[str, FeedKind] = {
    "transcript.segment": FeedKind.TRANSCRIPT,
    "chat.message": FeedKind.CHAT,
    "participant.joined": FeedKind.PARTICIPANT,
    "participant.left": FeedKind.PARTICIPANT,
    "meeting.started": FeedKind.MEETING,
    "meeting.ended": FeedKind.MEETING,
    "media.ready": FeedKind.MEDIA,
    # Zoom's account-level notices, forwarded as Zoom named them.
    "rtms.concurrency_near_limit": FeedKind.ACCOUNT,
    "rtms.concurrency_limited": FeedKind.ACCOUNT,
}
BATCH = 100  # feed items read at a time per subscription
POLL_S = 30.0  # a deliverer reads the store at least this often, woken or not
SYNC_S = 10.0  # the subscriptions are read again at least this often
STORE_RETRY_S = (0.5, 30.0)  # a deliverer whose store is away waits, doubling, within these
KEEP_DELIVERED_MS = 7 * 86_400_000  # delivered deliveries are forgotten after a week,
KEEP_DEAD_MS = 30 * 86_400_000  # dead ones (which may be replayed) after a month
FLUSH_EVERY = 100  # successful deliveries written to the store together, at most
FLUSH_S = 1.0  # and written at least this often while there are any
FRESH_MAX = 10_000  # items just committed held for a caught-up deliverer; past it, it reads the store
MAX_SUBSCRIPTIONS = 100
ERROR_CHARS = 300
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer, read to keep its connection


class UnknownEventType(ValueError):
    pass


class TooManySubscriptions(ValueError):
    pass


def parse_events(names: list[str]) -> tuple[str, ...]:
    """The event types asked for, in a stable order; UnknownEventType naming any unknown."""
    wanted = {n.strip() for name in names for n in name.split(",") if n.strip()}
    unknown = sorted(wanted - EVENT_TYPES.keys())
    if unknown:
        raise UnknownEventType(f"unknown event type(s) {', '.join(map(repr, unknown))} "
                               f"(known: {', '.join(EVENT_TYPES)})")
    if not wanted:
        raise UnknownEventType(f"no event type given (known: {', '.join(EVENT_TYPES)})")
    return tuple(t for t in EVENT_TYPES if t in wanted)


async def subscribe(subscriptions: OutboxStore, url: str, events: list[str], *,
                    allow_private: bool) -> Subscription:
    """A new subscription (its secret in it, shown this once); TargetRefused,
    UnknownEventType or TooManySubscriptions for one refused."""
    types = parse_events(events)
    await check_target(url, allow_private=allow_private)
    if len(await subscriptions.live()) >= MAX_SUBSCRIPTIONS:
        raise TooManySubscriptions(f"at most {MAX_SUBSCRIPTIONS} subscriptions; remove one first")
    return await subscriptions.add(url, types, new_secret())


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: `initial_s` doubling per failed attempt up to `cap_s`, each wait
    drawn from its upper half (jitter); no new attempt once the delivery is `max_age_s` old
    (`Delivery.created_at_ms`), the last one made at that age."""

    initial_s: float = 5.0
    cap_s: float = 3600.0
    max_age_s: float = 86_400.0

    def next_attempt_ms(self, delivery: Delivery, failed_at_ms: int) -> int | None:
        """When to try the delivery again after its failed attempt; None: dead-letter it."""
        deadline = delivery.created_at_ms + int(self.max_age_s * 1000)
        if failed_at_ms >= deadline:
            return None
        wait = min(self.cap_s, self.initial_s * 2 ** min(delivery.attempts, 60))
        wait *= random.uniform(0.5, 1.0)
        return min(failed_at_ms + int(wait * 1000), deadline)


@dataclass
class OutboxConfig:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 10.0
    allow_private: bool = False


@dataclass
class Counters:
    delivered: int = 0
    failed_attempts: int = 0
    dead: int = 0


class Deliverer:
    """One subscription's task: its items in cursor order, one delivery at a time."""

    def __init__(self, subscription: Subscription, store: Store, outbox: OutboxStore,
                 config: OutboxConfig, counters: Counters) -> None:
        self.subscription = subscription
        self.store = store
        self.outbox = outbox
        self.config = config
        self.counters = counters
        self.wake = asyncio.Event()
        self.kinds = {EVENT_TYPES[t] for t in subscription.events if t in EVENT_TYPES}
        self.client = httpx.AsyncClient(
            transport=transport(allow_private=config.allow_private),
            timeout=httpx.Timeout(config.timeout_s), follow_redirects=False, trust_env=False)
        self.task: asyncio.Task[None] | None = None
        self._delivered: list[Delivery] = []  # succeeded, not yet written
        self._stored_position = subscription.position  # the position as the store has it
        self._flushed_at = time.monotonic()
        # Items of this subscription's kinds as they are committed (`offer`). While `_caught_up`,
        # they are every such item after the position: no need to read the store for them.
        self._fresh: deque[FeedItem] = deque()
        self._overflows = 0  # times `_fresh` was let go of (too many items held)
        self._caught_up = False
        self._erasures = store.erasures  # as of the last read of the store
        self._begun: dict[int, Delivery] = {}  # deliveries of the items read, begun before
        self._check_replays = True  # at start, when asked (`replayed`), and on each poll

    def offer(self, items: list[FeedItem]) -> None:
        """Items just committed, in commit order (the store's `on_items`)."""
        wanted = [item for item in items if item.kind in self.kinds]
        if len(self._fresh) + len(wanted) > FRESH_MAX:  # far behind: the store has them
            self._fresh.clear()
            self._caught_up = False
            self._overflows += 1
            return
        self._fresh.extend(wanted)

    def replay_asked(self) -> None:
        self._check_replays = True
        self.wake.set()

    async def _flush(self) -> None:
        """Write the deliveries that succeeded since the last flush, and the position. Until
        then a crash makes them go again (same webhook-id): at least once, for far fewer
        writes."""
        position = self.subscription.position
        if self._delivered:
            await self.outbox.record_delivered(self._delivered)
            self._stored_position = max(self._stored_position, max(d.seq for d in self._delivered))
            self._delivered = []
        if position > self._stored_position:  # past items it does not deliver
            await self.outbox.advance(self.subscription.id, position)
            self._stored_position = position
        self._flushed_at = time.monotonic()

    async def _flush_if_due(self) -> None:
        if len(self._delivered) >= FLUSH_EVERY or time.monotonic() - self._flushed_at >= FLUSH_S:
            await self._flush()

    @property
    def _unflushed(self) -> bool:
        return bool(self._delivered) or self.subscription.position > self._stored_position

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"webhook-deliverer-{self.subscription.id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(StoreError):  # else they go again after a restart
            await self._flush()
        await self.client.aclose()

    async def run(self) -> None:
        backoff = STORE_RETRY_S[0]
        while True:
            self.wake.clear()  # before reading: a wake-up during the read is kept
            try:
                busy = await self._replays() | await self._next_items()
                backoff = STORE_RETRY_S[0]
                if not busy and self._unflushed:
                    # idle with deliveries not yet written: write them soon, more may come
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), FLUSH_S)
                    if not self.wake.is_set():
                        await self._flush()
                    continue
            except StoreError as exc:
                log.warning("webhook %d: the store is unavailable (%s); retrying in %.1f s",
                            self.subscription.id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, STORE_RETRY_S[1])
                continue
            except Exception:
                log.exception("webhook %d: delivery failed unexpectedly; retrying in %.1f s",
                              self.subscription.id, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, STORE_RETRY_S[1])
                continue
            if not busy:
                try:
                    await asyncio.wait_for(self.wake.wait(), POLL_S)
                except TimeoutError:  # a poll: replays asked by another process, and the store
                    self._check_replays, self._caught_up = True, False

    async def _next_items(self) -> bool:
        """Deliver the next items after the position; whether there was any."""
        if self._caught_up and self.store.erasures != self._erasures:  # items held may be gone
            self._fresh.clear()
            self._caught_up = False
        if self._caught_up:
            items = self._take_fresh()
        else:
            items = await self._read_items()
        sub = self.subscription
        for item in items:
            if item.type in sub.events:
                begun = self._begun.pop(item.seq) if item.seq in self._begun else None
                await self._deliver(item, begun or _new_delivery(sub.id, item))
            self._moved(item.seq)
            await self._flush_if_due()
        return bool(items)

    def _take_fresh(self) -> list[FeedItem]:
        position = self.subscription.position
        items = [item for item in self._fresh if item.seq > position]
        self._fresh.clear()
        return items

    async def _read_items(self) -> list[FeedItem]:
        """The next batch from the store, and the deliveries begun before for them (a
        restart finds their attempts). A batch that reaches the store's end makes the
        deliverer caught up: from then on `offer` has every later item."""
        sub = self.subscription
        overflows, self._erasures = self._overflows, self.store.erasures
        items = await self.store.feed(after=sub.position, kinds=self.kinds, limit=BATCH)
        self._begun = await self.outbox.begun(sub.id, [i.seq for i in items if i.type in sub.events])
        if len(items) < BATCH and overflows == self._overflows:
            # Every item committed once the read began was offered since: those it
            # returned are dropped from `_fresh`, the rest are the items after it.
            last = items[-1].seq if items else sub.position
            while self._fresh and self._fresh[0].seq <= last:
                self._fresh.popleft()
            self._caught_up = True
        return items

    async def _replays(self) -> bool:
        if not self._check_replays:
            return False
        self._check_replays = False
        replayed = await self.outbox.replays(self.subscription)
        for delivery in replayed:
            items = await self.store.feed(after=delivery.seq - 1, limit=1)
            if items and items[0].seq == delivery.seq:
                await self._deliver(items[0], delivery)
                await self._flush()
            else:  # nothing to send: dead again, or it would be looked for forever
                at = now_ms()
                await self.outbox.record_attempt(delivery, at_ms=at, status=DEAD, status_code=None,
                                                 error="the item is no longer stored",
                                                 next_attempt_at_ms=at)
        return bool(replayed)

    def _moved(self, seq: int) -> None:
        self.subscription = _with_position(self.subscription, max(seq, self.subscription.position))

    async def _deliver(self, item: FeedItem, delivery: Delivery) -> None:
        """Attempts until the delivery is delivered or dead (its backoff kept in the store)."""
        body = body_of(item)
        while delivery.status == PENDING:
            wait_ms = delivery.next_attempt_at_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            delivery = await self._attempt(delivery, body)

    async def _attempt(self, delivery: Delivery, body: bytes) -> Delivery:
        sub = self.subscription
        sent_at = now_ms()
        code: int | None = None
        error: str | None = None
        try:
            async with self.client.stream("POST", sub.url, content=body, headers=headers(
                    sub.secret, delivery.webhook_id, sent_at // 1000, body)) as response:
                code = response.status_code
                # A short answer is read to its end so the connection goes back to the pool;
                # a long one is left unread (the connection is dropped): bounded either way.
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > MAX_ANSWER_BYTES:
                        break
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        at = now_ms()
        if error is None:
            self.counters.delivered += 1
            done = msgspec.structs.replace(
                delivery, status=DELIVERED, attempts=delivery.attempts + 1, last_attempt_at_ms=at,
                last_status_code=code, last_error=None, next_attempt_at_ms=at, done_at_ms=at)
            self._delivered.append(done)
            if len(self._delivered) >= FLUSH_EVERY:
                await self._flush()
            return done
        await self._flush()  # what went before is recorded before this failure is
        self.counters.failed_attempts += 1
        retry_at = self.config.retry.next_attempt_ms(delivery, at)
        if retry_at is None:
            self.counters.dead += 1
            log.warning("webhook %d: delivery %s dead after %d attempts (%s)", sub.id,
                        delivery.webhook_id, delivery.attempts + 1, error)
        return await self.outbox.record_attempt(
            delivery, at_ms=at, status=PENDING if retry_at is not None else DEAD,
            status_code=code, error=error, next_attempt_at_ms=retry_at or at)


def _new_delivery(subscription_id: int, item: FeedItem) -> Delivery:
    """A delivery not yet attempted; its retry window runs from when the item was stored, so
    an endpoint down for longer than the window does not hold every later item for a whole
    window each: those already too old get one attempt, then are dead-lettered."""
    return Delivery(id=0, subscription_id=subscription_id, seq=item.seq, type=item.type,
                    status=PENDING, attempts=0, created_at_ms=item.stored_at_ms,
                    next_attempt_at_ms=now_ms())


def _with_position(sub: Subscription, position: int) -> Subscription:
    return msgspec.structs.replace(sub, position=position)


class Outbox:
    """The deliverers of every subscription, kept in step with the store's list."""

    def __init__(self, store: Store, config: OutboxConfig) -> None:
        self.store = store
        self.subscriptions = OutboxStore(store)
        self.config = config
        self.counters = Counters()
        self._deliverers: dict[int, Deliverer] = {}
        self._sync_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        self._unlisten = self.store.on_items(self._wake)
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="webhook-outbox")

    def _wake(self, items: list[FeedItem]) -> None:
        for deliverer in self._deliverers.values():
            deliverer.offer(items)
            deliverer.wake.set()

    async def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(d.stop() for d in self._deliverers.values()))
        self._deliverers.clear()

    async def add(self, url: str, events: list[str]) -> Subscription:
        """As `subscribe`; its deliverer starts at once."""
        added = await subscribe(self.subscriptions, url, events,
                                allow_private=self.config.allow_private)
        self._sync_now.set()
        return added

    async def remove(self, subscription_id: int) -> bool:
        removed = await self.subscriptions.remove(subscription_id)
        self._sync_now.set()
        return removed

    def replayed(self, subscription_id: int) -> None:
        deliverer = self._deliverers.get(subscription_id)
        if deliverer is not None:
            deliverer.replay_asked()

    @property
    def subscribed(self) -> int:
        """Subscriptions being delivered to now."""
        return len(self._deliverers)

    async def _supervise(self) -> None:
        while True:
            self._sync_now.clear()
            try:
                await self._sync()
                await self.subscriptions.prune(now_ms() - KEEP_DELIVERED_MS, now_ms() - KEEP_DEAD_MS)
            except StoreError as exc:
                log.warning("webhooks: cannot read the subscriptions (%s); retrying", exc)
            except Exception:  # the deliverers must outlive a bug here
                log.exception("webhooks: keeping the deliverers in step failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_now.wait(), SYNC_S)

    async def _sync(self) -> None:
        live = {sub.id: sub for sub in await self.subscriptions.live()}
        for gone in self._deliverers.keys() - live.keys():
            await self._deliverers.pop(gone).stop()
        for sub_id in live.keys() - self._deliverers.keys():
            deliverer = Deliverer(live[sub_id], self.store, self.subscriptions, self.config,
                                  self.counters)
            self._deliverers[sub_id] = deliverer
            deliverer.start()
