"""In-process live feed: the pipeline publishes records, subscribers read them.

Each subscriber has its own bounded queue; a subscriber that falls behind loses its
oldest items and is told how many (counted in `dropped`), so a stalled reader never slows
ingestion or another reader. Durable delivery is the store's job, not this hub's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator


class Subscription:
    def __init__(self, hub: LiveHub, maxsize: int, meeting_uuid: str | None) -> None:
        self._hub = hub
        self._items: deque[Any] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self.meeting_uuid = meeting_uuid
        self.dropped = 0
        self.closed = False

    def _put(self, item: Any) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._wakeup.set()

    async def get(self) -> Any:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._hub._subscribers.discard(self)


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, meeting_uuid: str | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize, meeting_uuid)
        self._subscribers.add(sub)
        return sub

    def publish(self, meeting_uuid: str, item: Any) -> None:
        for sub in self._subscribers:
            if sub.meeting_uuid is None or sub.meeting_uuid == meeting_uuid:
                sub._put(item)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
