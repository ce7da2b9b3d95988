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
        self._uuids = (frozenset({meeting_uuid, meeting_uuid.replace(_NUL, _REPLACEMENT)})
                       if meeting_uuid is not None else None)

    def matches(self, item: FeedItem) -> bool:
        return ((self._uuids is None or item.meeting_uuid in self._uuids)
                and (self.kinds is None or item.kind in self.kinds))


class Subscription:
    """One subscriber's queue. `get()` returns items in feed order, then `OVERFLOWED` if the
    queue overflowed; after that (or `close()`), it raises `StopAsyncIteration`."""

    def __init__(self, hub: LiveHub, wanted: LiveFilter, maxsize: int) -> None:
        self._hub = hub
        self.wanted = wanted
        self._items: deque[FeedItem] = deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def _put(self, item: FeedItem) -> bool:
        """Queue `item`; False (and the subscription overflowed) if the queue is full."""
        if len(self._items) >= self._maxsize:
            self.overflowed = True
            self._wakeup.set()
            return False
        self._items.append(item)
        self._wakeup.set()
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
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving; what is queued is dropped (the consumer is gone)."""
        self.closed = True
        self._items.clear()
        self._wakeup.set()
        self._hub._subscribers.discard(self)


class LiveHub:
    def __init__(self, *, queue_size: int = 1000, max_subscribers: int = 1000) -> None:
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscription] = set()
        self.counters = {"published": 0, "overflowed": 0, "refused": 0}

    def subscribe(self, wanted: LiveFilter | None = None) -> Subscription:
        """A subscription to every item published from now on that `wanted` matches;
        HubFull if the hub has as many subscribers as it takes."""
        if len(self._subscribers) >= self.max_subscribers:
            self.counters["refused"] += 1
            raise HubFull(f"{self.max_subscribers} live subscribers already")
        sub = Subscription(self, wanted or LiveFilter(), self.queue_size)
        self._subscribers.add(sub)
        return sub

    def publish(self, items: list[FeedItem]) -> None:
        """Hand committed items to every subscriber that wants them (never waits)."""
        self.counters["published"] += len(items)
        for sub in list(self._subscribers):
            for item in items:
                if sub.wanted.matches(item) and not sub._put(item):
                    # Out of the hub now; its consumer drains the queue, then learns.
                    self._subscribers.discard(sub)
                    self.counters["overflowed"] += 1
                    log.info("a live feed subscriber fell %d items behind: it is told where "
                             "to resume and closed (%d so far)", self.queue_size,
                             self.counters["overflowed"])
                    break

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
