"""Recognises Zoom's retries of a delivery we already took (bounded, time-limited)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Hashable


class RecentDeliveries:
    def __init__(self, max_entries: int = 10_000, ttl_s: float = 3 * 3600) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def seen(self, key: Hashable, now: float) -> bool:
        """True if `key` was recorded within the TTL; records it either way."""
        at = self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return at is not None and now - at <= self.ttl_s
