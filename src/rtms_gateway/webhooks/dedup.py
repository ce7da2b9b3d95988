"""Recognises Zoom's retries of a delivery we already took (bounded, time-limited)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable


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
