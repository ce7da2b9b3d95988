"""Records to rows and rows back: the store's conversions, one function per table.

A row that may arrive twice carries its `dedup_key`, a hash of what identifies it (never
of what may change between two copies). User ids are stored as text (Zoom sends ints,
and strings in places) and come back as ints where they are.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..protocol.constants import Product
from .records import (
    ChatFile,
    ChatMessage,
    MediaFile,
    StreamRecord,
    TimelineEvent,
    TranscriptSegment,
)
from .schema import key_of

MEDIA_FILE_FIELDS = ("meeting_uuid", "rtms_stream_id", "kind", "user_id", "user_name", "codec", "format",
                     "path", "sample_rate", "channels", "origin_ms", "first_ms", "last_ms", "frames",
                     "bytes", "complete")


def uid(value: object) -> str | None:
    return None if value is None else str(value)


def from_uid(value: str | None) -> int | str | None:
    if value is not None and value.lstrip("-").isdigit():
        return int(value)
    return value


def segment_row(x: TranscriptSegment) -> dict[str, Any]:
    return {"dedup_key": key_of(x.rtms_stream_id, x.user_id, x.timestamp, x.start_time, x.end_time, x.text),
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "user_id": uid(x.user_id),
            "user_name": x.user_name, "text": x.text, "timestamp": x.timestamp, "start_time": x.start_time,
            "end_time": x.end_time, "language": x.language, "attribute": x.attribute,
            "received_at_ms": x.received_at_ms, "speaker_inferred": x.speaker_inferred, "raw": x.raw}


def chat_message_key(meeting_uuid: str, message_id: str | None) -> str:
    """The key of the message a chat version belongs to (see `chat_row` for one with no id)."""
    return key_of("chat", meeting_uuid, message_id)


def chat_row(x: ChatMessage) -> dict[str, Any]:
    """A version of a chat message (`chat_message_versions`). A version without a
    `message_id` (older servers) is a message of its own."""
    dedup_key = key_of(x.rtms_stream_id, x.message_id, x.timestamp, x.operation_type, x.text)
    return {"dedup_key": dedup_key,
            "message_key": chat_message_key(x.meeting_uuid, x.message_id) if x.message_id else dedup_key,
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "message_id": x.message_id,
            "parent_message_id": x.parent_message_id,
            "sender_user_id": uid(x.sender_user_id), "sender_name": x.sender_name,
            "receiver_user_id": uid(x.receiver_user_id), "receiver_name": x.receiver_name,
            "chat_session_type": x.chat_session_type, "text": x.text, "operation_type": x.operation_type,
            "timestamp": x.timestamp, "files": [msgspec.to_builtins(f) for f in x.files] or None,
            "delete_file_ids": x.delete_file_ids or None, "raw": x.raw}


def event_row(x: TimelineEvent) -> dict[str, Any]:
    return {"dedup_key": key_of(x.rtms_stream_id, x.event_type, x.timestamp, x.user_id),
            "meeting_uuid": x.meeting_uuid, "rtms_stream_id": x.rtms_stream_id, "event_type": x.event_type,
            "timestamp": x.timestamp, "user_id": uid(x.user_id), "user_name": x.user_name, "payload": x.payload}


def media_file_row(f: MediaFile) -> dict[str, Any]:
    """One row per track (stream, kind, participant): `track_key`."""
    values = {name: getattr(f, name) for name in MEDIA_FILE_FIELDS}
    values["user_id"] = uid(f.user_id)
    values["track_key"] = key_of(f.rtms_stream_id, f.kind, f.user_id)
    return values


def segment(r: Any) -> TranscriptSegment:
    return TranscriptSegment(
        meeting_uuid=r["meeting_uuid"], rtms_stream_id=r["rtms_stream_id"], user_id=from_uid(r["user_id"]),
        user_name=r["user_name"], text=r["text"], timestamp=r["timestamp"], start_time=r["start_time"],
        end_time=r["end_time"], language=r["language"], attribute=r["attribute"],
        received_at_ms=r["received_at_ms"], speaker_inferred=bool(r["speaker_inferred"]), raw=r["raw"])


def chat_version(r: Any) -> ChatMessage:
    """A row of `chat_message_versions`."""
    return ChatMessage(**_chat_fields(r), files=[msgspec.convert(f, ChatFile) for f in r["files"] or ()],
                       delete_file_ids=list(r["delete_file_ids"] or ()))


def chat(r: Any, files: list[ChatFile] | None = None, replies: list[str] | None = None) -> ChatMessage:
    """A row of `chat_messages` (a message's current state), with its files and replies."""
    return ChatMessage(**_chat_fields(r), files=files or [], edited_at_ms=r["edited_at_ms"],
                       deleted_at_ms=r["deleted_at_ms"], versions=r["versions"], replies=replies or [])


def _chat_fields(r: Any) -> dict[str, Any]:
    """What a message and each of its versions store alike."""
    return {"meeting_uuid": r["meeting_uuid"], "rtms_stream_id": r["rtms_stream_id"],
            "message_id": r["message_id"], "sender_user_id": from_uid(r["sender_user_id"]),
            "sender_name": r["sender_name"], "receiver_user_id": from_uid(r["receiver_user_id"]),
            "receiver_name": r["receiver_name"], "chat_session_type": r["chat_session_type"],
            "text": r["text"], "operation_type": r["operation_type"], "timestamp": r["timestamp"],
            "raw": r["raw"], "parent_message_id": r["parent_message_id"]}


def chat_file(r: Any) -> ChatFile:
    return ChatFile(file_id=r["file_id"], file_name=r["file_name"], file_size=r["file_size"],
                    file_type=r["file_type"], download_url=r["download_url"])


def event(r: Any, product: str | None = None) -> TimelineEvent:
    """A timeline row; its meeting's product from `product`, else from the row (a read
    joined with the meeting), else a meeting's."""
    product = product or r.get("product") or Product.MEETING.value
    return TimelineEvent(
        meeting_uuid=r["meeting_uuid"], rtms_stream_id=r["rtms_stream_id"], event_type=r["event_type"],
        timestamp=r["timestamp"], user_id=from_uid(r["user_id"]), user_name=r["user_name"],
        payload=r["payload"], product=product)


def media_file(r: Any) -> MediaFile:
    f = MediaFile(**{name: r[name] for name in MEDIA_FILE_FIELDS if name != "user_id"},
                  user_id=from_uid(r["user_id"]), id=r["id"])
    f.complete = bool(f.complete)
    return f


def stream_record(r: Any) -> StreamRecord:
    return StreamRecord(
        rtms_stream_id=r["rtms_stream_id"], meeting_uuid=r["meeting_uuid"], server_urls=r["server_urls"],
        state=r["state"], started_at_ms=r["started_at_ms"], stopped_at_ms=r["stopped_at_ms"],
        stop_reason=r["stop_reason"], status_code=r["status_code"], status_reason=r["status_reason"])
