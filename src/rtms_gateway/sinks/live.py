"""The live hub: committed feed items handed to the subscribers of the live feeds.

The store calls `publish` with each write's items once they are committed, in feed order
(`Store.on_items`), so everything a subscriber is handed is durable and its cursor resumes.
Each subscriber has its own bounded queue, filled synchronously: publishing never waits on a
subscriber, so none slows ingest or another. A subscriber whose queue is full is dropped
from the hub at once: it still gets what its queue holds, then `Overflowed`, and its
consumer tells the client where to resume (the feed in the store has everything). Nothing
is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection

from .feed import FeedItem, FeedKind

log = logging.getLogger(__name__)

# PostgreSQL stores a NUL in an id as U+FFFD (see `sinks.store`): items carry the id as stored.
_NUL, _REPLACEMENT = "\x00", "\ufffd"


class HubFull(Exception):
    """As many subscribers as the hub takes are subscribed already."""


class Overflowed:
    """What a subscription yields, last, once its queue overflowed."""


OVERFLOWED = Overflowed()


class LiveFilter:
    """Which items a subscriber wants: one meeting's or all; some kinds or all."""

    def __init__(self, meeting_uuid: str | None = None,
                 kinds: Collection[FeedKind] | None = None) -> None:
        self.meeting_uuid = meeting_uuid
        self.kinds = frozenset(kinds) if kinds is not None else None
        # The meeting's id as given and as stored.
        self.uuids = (frozenset({meeting_uuid, meeting_uuid.replace(_NUL, _REPLACEMENT)})
                      if meeting_uuid is not None else frozenset[str]())

    def matches(self, item: FeedItem) -> bool:
        return ((not self.uuids or item.meeting_uuid in self.uuids)
                and (self.kinds is None or item.kind in self.kinds))


class Subscription:
    """One subscriber's queue. `get()` returns items in feed order, then `OVERFLOWED` if the
    queue overflowed; after that (or `close()`), it raises `StopAsyncIteration`."""

    def __init__(self, hub: LiveHub, wanted: LiveFilter, maxsize: int) -> None:
        self._hub = hub
        self.wanted = wanted
        self._items: deque[FeedItem] = deque()
        self._maxsize = maxsize
        # The consumer's `get` waiting: a bare future (True: woken; False: timed out), not
        # a task per wait as `wait_for` would make.
        self._waiter: asyncio.Future[bool] | None = None
        self.overflowed = False
        self.closed = False

    def _wake(self) -> None:
        if self._waiter is not None:
            _settle(self._waiter, True)

    def _put(self, item: FeedItem) -> bool:
        """Queue `item`; False (and the subscription overflowed) if the queue is full."""
        if len(self._items) >= self._maxsize:
            self.overflowed = True
            self._wake()
            return False
        self._items.append(item)
        self._wake()
        return True

    def drop_through(self, seq: int) -> None:
        """Forget the queued items at or before `seq`: a replay from the store sent them
        (room made early, so a long replay overflows no sooner than it must)."""
        while self._items and self._items[0].seq <= seq:
            self._items.popleft()

    async def get(self, timeout: float | None = None) -> FeedItem | Overflowed | None:
        """The next item; None if none came within `timeout` seconds."""
        while not self._items:
            if self.overflowed and not self.closed:
                self.close()
                return OVERFLOWED
            if self.closed:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _settle, waiter, False) if timeout is not None else None
            try:
                if not await waiter:
                    return None  # the timeout came first
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving; what is queued is dropped (the consumer is gone)."""
        self.closed = True
        self._items.clear()
        self._wake()
        self._hub._remove(self)


def _settle(waiter: asyncio.Future[bool], woken: bool) -> None:
    if not waiter.done():
        waiter.set_result(woken)


class LiveHub:
    def __init__(self, *, queue_size: int = 1000, max_subscribers: int = 1000) -> None:
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscription] = set()
        # Who wants which meeting's items (by each form of its id), and who wants every
        # meeting's: publishing an item looks only at its own meeting's subscribers.
        self._by_meeting: dict[str, set[Subscription]] = {}
        self._every_meeting: set[Subscription] = set()
        self.counters = {"published": 0, "overflowed": 0, "refused": 0}

    def subscribe(self, wanted: LiveFilter | None = None) -> Subscription:
        """A subscription to every item published from now on that `wanted` matches;
        HubFull if the hub has as many subscribers as it takes."""
        if len(self._subscribers) >= self.max_subscribers:
            self.counters["refused"] += 1
            raise HubFull(f"{self.max_subscribers} live subscribers already")
        sub = Subscription(self, wanted or LiveFilter(), self.queue_size)
        self._subscribers.add(sub)
        if sub.wanted.uuids:
            for uuid in sub.wanted.uuids:
                self._by_meeting.setdefault(uuid, set()).add(sub)
        else:
            self._every_meeting.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._every_meeting.discard(sub)
        for uuid in sub.wanted.uuids:
            subs = self._by_meeting.get(uuid)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_meeting[uuid]

    def publish(self, items: list[FeedItem]) -> None:
        """Hand committed items, in order, to every subscriber that wants them (never waits)."""
        self.counters["published"] += len(items)
        for item in items:
            for sub in [*self._every_meeting, *self._by_meeting.get(item.meeting_uuid, ())]:
                kinds = sub.wanted.kinds
                if (kinds is None or item.kind in kinds) and not sub._put(item):
                    # Out of the hub now; its consumer drains the queue, then learns.
                    self._remove(sub)
                    self.counters["overflowed"] += 1
                    log.info("a live feed subscriber fell %d items behind: it is told where "
                             "to resume and closed (%d so far)", self.queue_size,
                             self.counters["overflowed"])

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
