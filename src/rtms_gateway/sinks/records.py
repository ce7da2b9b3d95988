"""The records the pipeline produces and the store keeps (typed, cheap to build)."""

from __future__ import annotations

from typing import Any

import msgspec

UserId = int | str | None


class MeetingRecord(msgspec.Struct, kw_only=True):
    meeting_uuid: str
    product: str  # meeting | webinar | session | contact_center
    meeting_id: str | None = None
    account_id: str | None = None
    operator_id: str | None = None
    session_key: str | None = None
    started_at_ms: int | None = None


class StreamRecord(msgspec.Struct, kw_only=True):
    rtms_stream_id: str
    meeting_uuid: str
    server_urls: str = ""
    state: str = "connecting"
    started_at_ms: int | None = None
    stopped_at_ms: int | None = None
    stop_reason: int | None = None
    status_code: int | None = None
    status_reason: str | None = None


class TranscriptSegment(msgspec.Struct, kw_only=True, gc=False):
    meeting_uuid: str
    rtms_stream_id: str
    user_id: UserId
    user_name: str | None
    text: str
    timestamp: int  # ms since the epoch, as Zoom sends it
    start_time: int | None = None
    end_time: int | None = None
    language: int | None = None
    attribute: int | None = None
    received_at_ms: int = 0
    speaker_inferred: bool = False


class ChatMessage(msgspec.Struct, kw_only=True):
    meeting_uuid: str
    rtms_stream_id: str
    message_id: str | None
    sender_user_id: UserId
    sender_name: str | None
    receiver_user_id: UserId
    receiver_name: str | None
    chat_session_type: int | None
    text: str
    operation_type: int | None
    timestamp: int
    raw: dict[str, Any] | None = None


class TimelineEvent(msgspec.Struct, kw_only=True):
    meeting_uuid: str
    rtms_stream_id: str
    event_type: int
    timestamp: int
    user_id: UserId = None
    user_name: str | None = None
    payload: dict[str, Any] | None = None
