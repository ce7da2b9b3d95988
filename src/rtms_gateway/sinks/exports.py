"""Records as the API shows them (JSON), and transcript exports: text, WebVTT, SRT, JSON.

Every time the JSON carries in ms since the epoch comes with an ISO-8601 UTC twin beside
it (`iso_utc`, `with_iso`): `start_time` and `start_time_iso`, `started_at_ms` and
`started_at_iso`. Rows read with their place in the feed carry it as `cursor`.

Cue times are relative to the first segment's start. Zoom gives each utterance a
`start_time` and `end_time` (ms since the epoch); when the end is missing the cue runs to
the next start, or for a reading-speed estimate, and cues never run backwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..protocol.constants import ChatOperation, event_name
from .cursors import Cursored, format_cursor
from .media_export import media_json
from .records import (
    ChatMessage,
    GatewayEvent,
    MediaFile,
    TimelineEvent,
    TranscriptSegment,
    is_nobody,
)

if TYPE_CHECKING:
    from .search import SearchHit

TRANSCRIPT_FORMATS: dict[str, str] = {
    "txt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "json": "application/json",
}

_MS_PER_CHAR = 60  # reading speed used when Zoom gave no end time
_MIN_CUE_MS = 500


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
R = TypeVar("R")


# ---- times ------------------------------------------------------------------------------


def iso_utc(ms: int | None) -> str | None:
    """`ms` since the epoch as ISO-8601 UTC to the millisecond (`2023-11-14T22:13:20.123Z`);
    None for None, or for a time no calendar holds (years 1 to 9999)."""
    if ms is None:
        return None
    seconds, milli = divmod(ms, 1000)
    day_and_time = _iso_second(seconds)
    return None if day_and_time is None else f"{day_and_time}.{milli:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str | None:
    # Cached: the times of one meeting's records share their seconds, and each is asked
    # for several times (every field, every listing, every feed item).
    try:
        when = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return when.isoformat(timespec="seconds").removesuffix("+00:00")


def iso_names(*names: str) -> tuple[tuple[str, str], ...]:
    """Each ms field with the name of its ISO twin: `x_ms` -> `x_iso`, `x` -> `x_iso`."""
    return tuple((name, name.removesuffix("_ms") + "_iso") for name in names)


def with_iso(body: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """`body` with the ISO twin of each of `fields` (from `iso_names`) added, in place; a
    field holding a list of times gets a list."""
    for name, iso_name in fields:
        value = body.get(name)
        body[iso_name] = [iso_utc(v) for v in value] if isinstance(value, list) else iso_utc(value)
    return body


SEGMENT_TIMES = iso_names("start_time", "end_time", "timestamp")
STAMPED = iso_names("timestamp")
MEETING_TIMES = iso_names("started_at_ms", "stopped_at_ms")
STREAM_TIMES = iso_names("started_at_ms", "stopped_at_ms", "updated_at_ms")
MEDIA_TIMES = iso_names("origin_ms")
HIT_TIMES = iso_names("time_ms")
MEETING_FIELDS = ("product", "meeting_id", "account_id", "operator_id", "session_key",
                  "started_at_ms", "stopped_at_ms", "stop_reason")
STREAM_FIELDS = ("rtms_stream_id", "meeting_uuid", "server_urls", "state", "status_code",
                 "status_reason", "started_at_ms", "stopped_at_ms", "stop_reason", "updated_at_ms")


# ---- records as JSON ----------------------------------------------------------------------


def segment_json(seg: TranscriptSegment) -> dict[str, Any]:
    """A segment; `raw` (the wire fields no other field holds) only when Zoom sent any, so
    the common segment, and every feed item stored before segments kept it, stay as they
    were."""
    body = with_iso({"user_id": seg.user_id, "user_name": seg.user_name, "text": seg.text,
                     "start_time": seg.start_time, "end_time": seg.end_time,
                     "timestamp": seg.timestamp, "language": seg.language,
                     "rtms_stream_id": seg.rtms_stream_id,
                     "speaker_inferred": seg.speaker_inferred}, SEGMENT_TIMES)
    if seg.raw is not None:
        body["raw"] = seg.raw
    return body


CHAT_TIMES = iso_names("timestamp", "edited_at_ms", "deleted_at_ms")


def chat_operation(operation_type: int | None) -> str:
    """What the JSON calls a chat operation: `new` (also when Zoom names none), `update`,
    `delete`, `add_emoji_reaction`, ..., `operation_9` if unknown."""
    if operation_type is None:
        return "new"
    try:
        return ChatOperation(operation_type).name.lower()
    except ValueError:
        return f"operation_{operation_type}"


def chat_json(message: ChatMessage) -> dict[str, Any]:
    """A message as it stands: its current text ("" once deleted), `edited` and `deleted`
    with their times, its thread (`parent_message_id`, `replies`), its files."""
    body: dict[str, Any] = msgspec.to_builtins(message)
    del body["meeting_uuid"], body["delete_file_ids"]
    body["operation"] = chat_operation(message.operation_type)
    body["edited"] = message.edited_at_ms is not None
    body["deleted"] = message.deleted_at_ms is not None
    return with_iso(body, CHAT_TIMES)


def chat_version_json(version: ChatMessage) -> dict[str, Any]:
    """One version of a message as it came: its operation, text and time, its files."""
    body: dict[str, Any] = msgspec.to_builtins(version)
    for name in ("meeting_uuid", "edited_at_ms", "deleted_at_ms", "versions", "replies"):
        del body[name]
    body["operation"] = chat_operation(version.operation_type)
    return with_iso(body, STAMPED)


_GATEWAY_EVENT_NAMES = {int(e): e.name.lower() for e in GatewayEvent}


def timeline_event_name(product: str, event_type: int) -> str:
    """What `/events` calls an event type: by its product's table (`participant_join`, a
    Contact Center's `consumer_answered`), the gateway's own (`session_paused`,
    `audio_metadata`), `event_23` if unknown."""
    return _GATEWAY_EVENT_NAMES.get(event_type) or event_name(product, event_type)


def event_json(event: TimelineEvent) -> dict[str, Any]:
    """A timeline event, named as its meeting's product names it (`participant_join`, a
    Contact Center's `consumer_answered`, `event_23` if unknown)."""
    body: dict[str, Any] = msgspec.to_builtins(event)
    del body["meeting_uuid"], body["product"]
    body["event"] = timeline_event_name(event.product, event.event_type)
    return with_iso(body, STAMPED)


def meeting_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored meeting's own fields (a `meetings` row)."""
    return with_iso({name: row[name] for name in MEETING_FIELDS}, MEETING_TIMES)


def stream_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored stream (a `streams` row), as a meeting's detail lists it."""
    return with_iso({name: row[name] for name in STREAM_FIELDS}, STREAM_TIMES)


def media_file_json(f: MediaFile) -> dict[str, Any]:
    """A media file, without its download URL (only the API knows its own address)."""
    body = media_json(f, "")
    del body["url"]
    return with_iso(body, MEDIA_TIMES)


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """A search result: `cursor` is the record's, `after` opens a page at it."""
    return with_iso({
        "meeting_uuid": hit.meeting_uuid, "kind": hit.kind.value, "cursor": format_cursor(hit.seq),
        "after": format_cursor(hit.seq - 1), "user_id": hit.user_id, "user_name": hit.user_name,
        "speaker_inferred": hit.speaker_inferred, "time_ms": hit.time_ms, "text": hit.text,
        "snippet": hit.snippet}, HIT_TIMES)


def cursored_json(rows: Iterable[Cursored[R]], shape: Callable[[R], dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    """Each row as `shape` shows its record, with its `cursor` first."""
    return [{"cursor": format_cursor(row.seq), **shape(row.record)} for row in rows]


def transcript_document(meeting_uuid: str, rows: Sequence[Cursored[TranscriptSegment]],
                        next_cursor: str | None = None) -> dict[str, Any]:
    """The JSON transcript, as the API serves it and `export --format json` writes it."""
    return {"meeting_uuid": meeting_uuid, "segments": cursored_json(rows, segment_json),
            "next": next_cursor}


# ---- transcript exports -----------------------------------------------------------------


def cue_times(segments: Sequence[TranscriptSegment]) -> list[tuple[int, int]]:
    """(start, end) in ms from the first segment, monotonic and never negative."""
    if not segments:
        return []
    starts = [seg.start_time if seg.start_time is not None else seg.timestamp for seg in segments]
    origin = min(starts)
    out: list[tuple[int, int]] = []
    previous_start = 0
    for i, seg in enumerate(segments):
        start = max(starts[i] - origin, previous_start)
        if seg.end_time is not None and seg.end_time - origin > start:
            end = seg.end_time - origin
        elif i + 1 < len(segments) and starts[i + 1] - origin > start:
            end = starts[i + 1] - origin
        else:
            end = start + max(_MIN_CUE_MS, len(seg.text) * _MS_PER_CHAR)
        out.append((start, end))
        previous_start = start
    return out


def _clock(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    sec, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{sec:02d}{sep}{milli:03d}"


def _speaker(seg: TranscriptSegment) -> str:
    if seg.user_name:
        return seg.user_name
    return "Unknown speaker" if is_nobody(seg.user_id) else f"User {seg.user_id}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_txt(segments: Sequence[TranscriptSegment]) -> str:
    lines = [f"[{_clock(start, '.')[:8]}] {_speaker(seg)}: {seg.text}"
             for seg, (start, _) in zip(segments, cue_times(segments))]
    return "\n".join(lines) + ("\n" if lines else "")


def render_vtt(segments: Sequence[TranscriptSegment]) -> str:
    parts = ["WEBVTT", ""]
    for seg, (start, end) in zip(segments, cue_times(segments)):
        parts += [f"{_clock(start, '.')} --> {_clock(end, '.')}",
                  f"<v {_vtt_escape(_speaker(seg))}>{_vtt_escape(seg.text)}", ""]
    return "\n".join(parts)


def render_srt(segments: Sequence[TranscriptSegment]) -> str:
    parts: list[str] = []
    for n, (seg, (start, end)) in enumerate(zip(segments, cue_times(segments)), 1):
        parts += [str(n), f"{_clock(start, ',')} --> {_clock(end, ',')}", f"{_speaker(seg)}: {seg.text}", ""]
    return "\n".join(parts)


def render_json(meeting_uuid: str, rows: Sequence[Cursored[TranscriptSegment]]) -> str:
    return msgspec.json.encode(transcript_document(meeting_uuid, rows)).decode()


_RENDERERS = {"txt": render_txt, "vtt": render_vtt, "srt": render_srt}


def render_transcript(rows: Sequence[Cursored[TranscriptSegment]], fmt: str, *,
                      meeting_uuid: str) -> str:
    """The whole transcript in `fmt`: `json` (with each segment's cursor) or a text format."""
    if fmt == "json":
        return render_json(meeting_uuid, rows)
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        known = ", ".join(TRANSCRIPT_FORMATS)
        raise ValueError(f"unknown transcript format {fmt!r}; use one of {known}") from None
    return renderer([row.record for row in rows])
