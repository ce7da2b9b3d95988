"""Zoom's account-level concurrency notices (`rtms.concurrency_near_limit`,
`rtms.concurrency_limited`): counted for /metrics, the latest of each shown on /healthz,
logged at WARNING, and kept (`keep`: the store, as an account item of the feed, so the live
feeds and outbound webhooks hand them on, durably). Zoom starts no stream past the
account's cap (2000 by default), so a `limited` notice means a meeting the gateway will
never see."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from .events import CONCURRENCY_EVENTS, ConcurrencyNotice

log = logging.getLogger(__name__)

# Keeps a notice: (its kind, its body, the key naming it) -> whether it was new.
Keep = Callable[[str, dict[str, Any], str], Awaitable[bool]]
EVENT_OF_KIND = {kind: event for event, kind in CONCURRENCY_EVENTS.items()}


def notice_body(notice: ConcurrencyNotice) -> dict[str, Any]:
    """What the feed and the webhooks show: Zoom's event name, its time, the fields it gave."""
    body: dict[str, Any] = {"event": EVENT_OF_KIND[notice.kind]}
    body.update((k, v) for k, v in asdict(notice).items() if k != "kind" and v is not None)
    return body


def notice_key(notice: ConcurrencyNotice) -> str:
    """Names one notice across Zoom's retries (as the webhook's delivery key does)."""
    return f"{notice.kind}:{notice.event_ts}"


class ConcurrencyWatch:
    """What Zoom said last about the account's stream cap, and how often."""

    def __init__(self, keep: Keep | None = None) -> None:
        self.counts = {"near_limit": 0, "limited": 0}
        self.latest: dict[str, ConcurrencyNotice] = {}
        self._keep = keep

    async def forward(self, notice: ConcurrencyNotice) -> None:
        """Keep the notice for the feeds and webhooks (nothing without `keep`); raises what
        the store raises, so that Zoom's retry brings it again."""
        if self._keep is not None:
            await self._keep(notice.kind, notice_body(notice), notice_key(notice))

    def note(self, notice: ConcurrencyNotice) -> None:
        if self.latest.get(notice.kind) == notice:
            return  # the same notice again (Zoom retried one the store could not keep)
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
