"""The gateway's metrics, each declared once here as a typed attribute of `GatewayMetrics`
(a misspelt one is an AttributeError, and a mypy error), exposed in the Prometheus text
format by `render_metrics`.

Three kinds:
- counters the pipeline adds to as things happen (`Counter`, `inc()`);
- gauges read when scraped (`Gauge.set_function`);
- counts another object keeps (a stream's rejected frames, the store's replaced NULs,
  the API's refused requests), read when scraped: `Reading` / `LabelledReading`, told
  where to read with `read_from`.

Each gateway has its own registry, so several gateways (tests) live in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# Counters as the gateway has always shown them: `<name>_total` only, no `<name>_created`.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Reading(Collector):
    """A counter kept elsewhere, read when scraped (0 until told where)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._read: Callable[[], float] = lambda: 0
        registry.register(self)

    def read_from(self, read: Callable[[], float]) -> None:
        self._read = read

    def value(self) -> float:
        return float(self._read())

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.value())


class LabelledReading(Collector):
    """Counters kept elsewhere as {label value: count}, read when scraped."""

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._read: Callable[[], Mapping[str, int]] = dict
        registry.register(self)

    def read_from(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self._read().items():
            family.add_metric([value], count)
        yield family


class GaugeReading(Collector):
    """A gauge kept elsewhere, read when scraped; absent until told where (a part of the
    gateway that is not configured shows nothing rather than a misleading 0)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._read: Callable[[], float | None] | None = None
        registry.register(self)

    def read_from(self, read: Callable[[], float | None]) -> None:
        """`read` gives the value now, or None while there is none to show."""
        self._read = read

    def collect(self) -> Iterator[Metric]:
        value = self._read() if self._read is not None else None
        if value is not None:
            yield GaugeMetricFamily(self.name, self.documentation, value=float(value))


# Seconds: fine below 10 ms, where a healthy event loop lives, coarse above.
LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                    0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    registry: CollectorRegistry
    # received
    segments: Counter
    chats: Counter
    events: Counter
    # media frames, counted by the pipeline as plain integers (a Counter's lock, 50 times a
    # second per stream, cost more than the rest of the count)
    audio_frames: Reading
    video_frames: Reading
    share_frames: Reading
    # the writer
    committed: Counter
    commit_errors: Counter
    journaled: Counter
    replayed: Counter
    journal_full: Counter
    records_rejected: Counter
    updates_failed: Counter
    # media files
    media_duplicates: Counter
    media_unwritten: Counter
    media_refused: Counter
    # intake
    paused: Counter
    # kept elsewhere
    frames_rejected: Reading
    api_refused: Reading
    nul_replaced: Reading
    live_overflowed: Reading
    live_refused: Reading
    reconnects: LabelledReading
    streams_ended: LabelledReading
    webhooks_delivered: Reading
    webhook_attempts_failed: Reading
    webhooks_dead: Reading
    redis_items_sent: Reading
    redis_errors: Reading
    concurrency_near_limit_notices: Reading
    concurrency_limited_notices: Reading
    streams_revoked: Reading
    streams_erased: Reading
    close_requests: Reading
    video_requests: Reading
    # now
    streams_live: Gauge
    pending_records: Gauge
    journal_records: Gauge
    live_subscribers: Gauge
    webhook_subscriptions: GaugeReading
    redis_backlog: GaugeReading
    redis_connected: GaugeReading
    concurrency_streams: GaugeReading
    # how late the event loop wakes (gateway.loop_lag)
    event_loop_lag: Histogram

    @classmethod
    def create(cls) -> GatewayMetrics:
        r = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=r)

        return cls(
            registry=r,
            segments=counter("rtms_transcript_segments", "Transcript segments received"),
            chats=counter("rtms_chat_messages", "Chat messages received"),
            events=counter("rtms_timeline_events", "Timeline events received"),
            audio_frames=Reading("rtms_audio_frames", "Audio frames received", r),
            video_frames=Reading("rtms_video_frames", "Video frames received", r),
            share_frames=Reading("rtms_share_frames", "Screen-share frames received", r),
            committed=counter("rtms_records_committed", "Records committed to the store"),
            commit_errors=counter("rtms_store_errors", "Failed store writes (retried)"),
            journaled=counter("rtms_journaled_records", "Records that waited in the disk journal for the store"),
            replayed=counter("rtms_journal_replayed_records",
                             "Journaled records written once the store was back"),
            journal_full=counter("rtms_journal_full", "Times the journal was full and records waited in memory"),
            records_rejected=counter("rtms_records_rejected",
                                     "Records the store refused (kept in rejected/records.jsonl)"),
            updates_failed=counter("rtms_updates_failed", "Meeting/stream updates the store refused, skipped"),
            media_duplicates=counter("rtms_media_duplicate_frames",
                                     "Media frames received twice (replays), dropped"),
            media_unwritten=counter("rtms_media_unwritten_frames", "Media frames that could not be written"),
            media_refused=counter("rtms_media_refused_frames",
                                  "Media frames stamped implausibly far ahead of their stream's clock, refused"),
            paused=counter("rtms_backpressure_pauses", "Times a stream's reading was paused by backpressure"),
            frames_rejected=Reading("rtms_frames_rejected", "Malformed frames counted and skipped", r),
            api_refused=Reading("rtms_api_requests_refused",
                                "API requests refused for a missing, unknown or too weak key", r),
            nul_replaced=Reading("rtms_nul_characters_replaced",
                                 "NUL characters in text written to PostgreSQL, stored as U+FFFD "
                                 "(its text cannot hold NUL)", r),
            live_overflowed=Reading("rtms_live_subscribers_overflowed",
                                    "Live feed subscribers closed for falling behind (told where to resume)", r),
            live_refused=Reading("rtms_live_subscribers_refused",
                                 "Live feed subscriptions refused: too many at once", r),
            reconnects=LabelledReading("rtms_reconnects", "Whole-stream reconnects, by cause", "cause", r),
            streams_ended=LabelledReading("rtms_streams_ended", "Streams ended, by how", "state", r),
            webhooks_delivered=Reading("rtms_webhooks_delivered", "Outbound webhook deliveries answered 2xx", r),
            webhook_attempts_failed=Reading("rtms_webhook_attempts_failed",
                                            "Outbound webhook attempts that failed (retried or dead-lettered)", r),
            webhooks_dead=Reading("rtms_webhooks_dead", "Outbound webhook deliveries dead-lettered", r),
            redis_items_sent=Reading("rtms_redis_items_sent", "Feed items added to the Redis streams", r),
            redis_errors=Reading("rtms_redis_errors",
                                 "Failed sends to Redis (the items wait in the store, retried)", r),
            concurrency_near_limit_notices=Reading("rtms_concurrency_near_limit_notices",
                                                   "Zoom's notices that the account's streams near its cap", r),
            concurrency_limited_notices=Reading("rtms_concurrency_limited_notices",
                                                "Zoom's notices that a stream was refused at the account's cap", r),
            streams_revoked=Reading("rtms_streams_revoked", "Streams Zoom revoked (stop reason 8)", r),
            streams_erased=Reading("rtms_streams_erased", "Revoked streams whose data was erased", r),
            close_requests=Reading("rtms_stream_close_requests", "Streams asked to close (STREAM_CLOSE_REQ)", r),
            video_requests=Reading("rtms_video_subscription_requests",
                                   "Video subscriptions asked (VIDEO_SUBSCRIPTION_REQ), by the API or to follow", r),
            streams_live=gauge("rtms_streams_live", "Streams held now"),
            pending_records=gauge("rtms_pending_records", "Records waiting for the next commit"),
            journal_records=gauge("rtms_journal_records", "Records in the disk journal now"),
            live_subscribers=gauge("rtms_live_subscribers", "Live feed (SSE and WebSocket) subscribers now"),
            webhook_subscriptions=GaugeReading("rtms_webhook_subscriptions",
                                               "Outbound webhook subscriptions delivered to", r),
            redis_backlog=GaugeReading("rtms_redis_backlog",
                                       "Feed items stored and not yet sent to Redis (at most)", r),
            redis_connected=GaugeReading("rtms_redis_connected", "1 while the last send to Redis succeeded", r),
            concurrency_streams=GaugeReading("rtms_concurrency_streams",
                                             "The account's streams, as Zoom's last concurrency notice counted them",
                                             r),
            event_loop_lag=Histogram("rtms_event_loop_lag_seconds",
                                     "How late the event loop woke for a 10 ms timer", buckets=LOOP_LAG_BUCKETS,
                                     registry=r),
        )


def value_of(metric: Counter | Gauge | Reading) -> float:
    """A metric's value now (an unlabelled counter's total, a gauge's reading)."""
    if isinstance(metric, Reading):
        return metric.value()
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") or family.type == "gauge":
                return float(sample.value)
    return 0.0


def frames_by_kind(metrics: GatewayMetrics) -> dict[str, int]:
    """Media frames (transcript segments and chat messages for those) received so far, per
    media kind: sampled twice, their difference over the time between is a rate."""
    return {kind: int(value_of(counter)) for kind, counter in (
        ("audio", metrics.audio_frames), ("video", metrics.video_frames),
        ("share", metrics.share_frames), ("transcript", metrics.segments),
        ("chat", metrics.chats))}


def render_metrics(metrics: GatewayMetrics) -> bytes:
    return generate_latest(metrics.registry)
