"""Prometheus exposition of the gateway's counters, read when scraped (nothing is done
per frame: the pipeline's plain integer counters are the source)."""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# pipeline counter -> (metric name, help)
COUNTERS = {
    "segments": ("rtms_transcript_segments", "Transcript segments received"),
    "chats": ("rtms_chat_messages", "Chat messages received"),
    "events": ("rtms_timeline_events", "Timeline events received"),
    "audio_frames": ("rtms_audio_frames", "Audio frames received"),
    "video_frames": ("rtms_video_frames", "Video frames received"),
    "share_frames": ("rtms_share_frames", "Screen-share frames received"),
    "committed": ("rtms_records_committed", "Records committed to the store"),
    "commit_errors": ("rtms_store_errors", "Failed store writes (retried)"),
    "journaled": ("rtms_journaled_records", "Records that waited in the disk journal for the store"),
    "replayed": ("rtms_journal_replayed_records", "Journaled records written once the store was back"),
    "journal_full": ("rtms_journal_full", "Times the journal was full and records waited in memory"),
    "media_duplicates": ("rtms_media_duplicate_frames", "Media frames received twice (replays), dropped"),
    "media_unwritten": ("rtms_media_unwritten_frames", "Media frames that could not be written"),
    "media_refused": ("rtms_media_refused_frames",
                      "Media frames stamped implausibly far ahead of their stream's clock, refused"),
    "frames_rejected": ("rtms_frames_rejected", "Malformed frames counted and skipped"),
    "paused": ("rtms_backpressure_pauses", "Times a stream's reading was paused by backpressure"),
    "records_rejected": ("rtms_records_rejected", "Records the store refused (kept in rejected/records.jsonl)"),
    "updates_failed": ("rtms_updates_failed", "Meeting/stream updates the store refused, skipped"),
    "api_refused": ("rtms_api_requests_refused", "API requests refused for a missing, unknown or too weak key"),
    "live_overflowed": ("rtms_live_subscribers_overflowed",
                        "Live feed subscribers closed for falling behind (told where to resume)"),
    "live_refused": ("rtms_live_subscribers_refused", "Live feed subscriptions refused: too many at once"),
    "nul_replaced": ("rtms_nul_characters_replaced",
                     "NUL characters in text written to PostgreSQL, stored as U+FFFD (its text cannot hold NUL)"),
    "webhooks_delivered": ("rtms_webhooks_delivered", "Outbound webhook deliveries answered 2xx"),
    "webhook_attempts_failed": ("rtms_webhook_attempts_failed",
                                "Outbound webhook attempts that failed (retried or dead-lettered)"),
    "webhooks_dead": ("rtms_webhooks_dead", "Outbound webhook deliveries dead-lettered"),
    "redis_items_sent": ("rtms_redis_items_sent", "Feed items added to the Redis streams"),
    "redis_errors": ("rtms_redis_errors", "Failed sends to Redis (the items wait in the store, retried)"),
    "concurrency_near_limit_notices": ("rtms_concurrency_near_limit_notices",
                                       "Zoom's notices that the account's streams near its cap"),
    "concurrency_limited_notices": ("rtms_concurrency_limited_notices",
                                    "Zoom's notices that a stream was refused at the account's cap"),
    "streams_revoked": ("rtms_streams_revoked", "Streams Zoom revoked (stop reason 8)"),
    "streams_erased": ("rtms_streams_erased", "Revoked streams whose data was erased"),
    "close_requests": ("rtms_stream_close_requests", "Streams asked to close (STREAM_CLOSE_REQ)"),
    "video_requests": ("rtms_video_subscription_requests",
                       "Video subscriptions asked (VIDEO_SUBSCRIPTION_REQ), by the API or to follow"),
}
GAUGES = {
    "streams_live": ("rtms_streams_live", "Streams held now"),
    "pending_records": ("rtms_pending_records", "Records waiting for the next commit"),
    "journal_records": ("rtms_journal_records", "Records in the disk journal now"),
    "live_subscribers": ("rtms_live_subscribers", "Live feed (SSE and WebSocket) subscribers now"),
    "webhook_subscriptions": ("rtms_webhook_subscriptions", "Outbound webhook subscriptions delivered to"),
    "redis_backlog": ("rtms_redis_backlog", "Feed items stored and not yet sent to Redis (at most)"),
    "redis_connected": ("rtms_redis_connected", "1 while the last send to Redis succeeded"),
    "concurrency_number": ("rtms_concurrency_streams", "The account's streams, as Zoom's last "
                                                      "concurrency notice counted them"),
}


class _Snapshot(Collector):
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def collect(self) -> Iterator[Metric]:
        for key, (name, doc) in COUNTERS.items():
            if key in self.values:
                yield CounterMetricFamily(name, doc, value=self.values[key])
        for key, (name, doc) in GAUGES.items():
            if key in self.values:
                yield GaugeMetricFamily(name, doc, value=self.values[key])
        for key, name, doc, label in (("reconnects", "rtms_reconnects", "Whole-stream reconnects, by cause", "cause"),
                                      ("streams_ended", "rtms_streams_ended", "Streams ended, by how", "state")):
            family = CounterMetricFamily(name, doc, labels=[label])
            for value, count in self.values.get(key, {}).items():
                family.add_metric([value], count)
            yield family


def render_metrics(values: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(values))
    return generate_latest(registry)
