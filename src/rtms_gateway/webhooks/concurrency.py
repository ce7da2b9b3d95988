"""Zoom's account-level concurrency notices (`rtms.concurrency_near_limit`,
`rtms.concurrency_limited`): counted for /metrics, the latest of each shown on /healthz, and
logged at WARNING. Zoom starts no stream past the account's cap (2000 by default), so a
`limited` notice means a meeting the gateway will never see."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from .events import ConcurrencyNotice

log = logging.getLogger(__name__)


class ConcurrencyWatch:
    """What Zoom said last about the account's stream cap, and how often."""

    def __init__(self) -> None:
        self.counts = {"near_limit": 0, "limited": 0}
        self.latest: dict[str, ConcurrencyNotice] = {}

    def note(self, notice: ConcurrencyNotice) -> None:
        self.counts[notice.kind] = self.counts.get(notice.kind, 0) + 1
        self.latest[notice.kind] = notice
        if notice.kind == "limited":
            log.warning("Zoom refused a stream: the account is at its concurrency cap "
                        "(%s streams; %s %s not streamed)", _or_unknown(notice.concurrency_number),
                        "owner", notice.owner_id or "unknown")
        else:
            log.warning("Zoom: the account's streams are near the concurrency cap "
                        "(%s of %s, %s%%)", _or_unknown(notice.concurrency_number),
                        _or_unknown(notice.concurrency_limit), _or_unknown(notice.percentage))

    def health(self) -> dict[str, Any]:
        """For /healthz: the latest notice of each kind (absent until one came)."""
        return {kind: {k: v for k, v in asdict(n).items() if k != "kind" and v is not None}
                for kind, n in self.latest.items()}

    def streams(self) -> int | None:
        """The account's streams as the latest notice that counted them said (None: none did)."""
        numbers = [(n.event_ts, n.concurrency_number) for n in self.latest.values()
                   if n.concurrency_number is not None]
        return max(numbers)[1] if numbers else None


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)
