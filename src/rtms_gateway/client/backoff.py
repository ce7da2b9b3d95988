"""Reconnect timing, as Zoom's failover guide asks: wait `initial` seconds, doubling up to
`cap`, each wait jittered so many clients do not come back in step; start over after a
successful handshake. A window bounds the whole effort: past it Zoom has given up on us."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable


@dataclass(slots=True)
class Backoff:
    initial: float = 3.0
    cap: float = 30.0
    jitter: float = 0.2  # each wait is drawn from ±20% around its nominal value
    window: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0
    started_at: float | None = None

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next attempt, or None when the window is spent."""
        if self.started_at is None:
            self.started_at = now
        nominal = min(self.cap, self.initial * 2 ** self.attempts)
        delay = nominal * (1 - self.jitter + 2 * self.jitter * self.random())
        if now + delay - self.started_at > self.window:
            return None
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
        self.started_at = None
