"""Recognises Zoom's retries of a delivery we already took (bounded, time-limited).

`RecentDeliveries` is this process's memory; `Deliveries` asks it first, then the store's
(`sinks.delivery_memory`), which outlives a restart: a signed webhook replayed after one
is still a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

from ..protocol.errors import StoreError

log = logging.getLogger(__name__)

# How long a webhook waits on the store's memory; past that it is acted on (Zoom wants an
# answer within 3 s, and a delivery taken twice is caught by the stream manager anyway).
DURABLE_TIMEOUT_S = 2.0


class RecentDeliveries:
    """An LRU of delivery keys; the oldest fall out past `max_entries`, any past `ttl_s`.

    Zoom retries after 5, 20 and 60 minutes, so the default TTL covers the last retry.
    """

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 3600) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, key: Hashable, now: float) -> bool:
        """True if `key` was recorded within the TTL; records it (as of `now`) either way."""
        at = self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return at is not None and now - at <= self.ttl_s

    def forget(self, key: Hashable) -> None:
        """Drop `key`, so a retry of a delivery we failed to act on is taken again."""
        self._seen.pop(key, None)


class DurableDeliveries(Protocol):
    async def seen_delivery(self, delivery: tuple[Hashable, ...], now_ms: int) -> bool: ...
    async def forget_delivery(self, delivery: tuple[Hashable, ...]) -> None: ...


class Deliveries:
    """Was this delivery taken already? This process's memory first, then the store's. If
    the store cannot answer in time the delivery is taken (meetings keep flowing), and a
    log line says so."""

    def __init__(self, durable: DurableDeliveries | None = None, *, recent: RecentDeliveries | None = None,
                 timeout_s: float = DURABLE_TIMEOUT_S) -> None:
        self.recent = recent if recent is not None else RecentDeliveries()
        self.durable = durable
        self.timeout_s = timeout_s

    async def seen(self, key: tuple[Hashable, ...], now: float) -> bool:
        """True if `key` was taken already; records it either way. `now` in Unix seconds."""
        if self.recent.seen(key, now):
            return True
        if self.durable is None:
            return False
        try:
            return await asyncio.wait_for(self.durable.seen_delivery(key, int(now * 1000)), self.timeout_s)
        except (TimeoutError, StoreError) as exc:
            log.warning("webhook %s for stream %s: the store cannot say whether it was taken before (%s); "
                        "acting on it", key[0], key[1], type(exc).__name__)
            return False

    async def forget(self, key: tuple[Hashable, ...]) -> None:
        """So Zoom's retry of a delivery we failed to act on is taken again."""
        self.recent.forget(key)
        if self.durable is None:
            return
        try:
            await asyncio.wait_for(self.durable.forget_delivery(key), self.timeout_s)
        except (TimeoutError, StoreError) as exc:
            log.warning("webhook %s for stream %s: the store did not forget it (%s); Zoom's retry "
                        "will be taken as a duplicate", key[0], key[1], type(exc).__name__)
