"""The records the pipeline produces and the store keeps (typed, cheap to build)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from ..client.lifecycle import StreamState
from ..protocol.constants import Product
from ..protocol.messages import UserId

__all__ = ["ChatFile", "ChatMessage", "GatewayEvent", "MediaFile", "MeetingRecord", "StreamRecord", "TimelineEvent",
           "TranscriptSegment", "UserId", "is_nobody"]  # UserId re-exported: the type of every record's user ids

# Zoom names no one with user 0 (the mixed audio), -1, or no id at all, as a number or a
# string; every place that asks "is this somebody?" asks `is_nobody`.
_NOBODY: frozenset[UserId | None] = frozenset((None, 0, -1, "", "0", "-1"))


def is_nobody(user_id: UserId | None) -> bool:
    """True when `user_id` names no participant: the mixed audio's user 0, -1, or none."""
    return user_id in _NOBODY


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
    state: str = StreamState.CONNECTING.value
    started_at_ms: int | None = None
    stopped_at_ms: int | None = None
    stop_reason: int | None = None
    status_code: int | None = None
    status_reason: str | None = None


class TranscriptSegment(msgspec.Struct, kw_only=True, gc=False):
    meeting_uuid: str
    rtms_stream_id: str
    user_id: UserId | None
    user_name: str | None
    text: str
    timestamp: int  # ms since the epoch, as Zoom sends it
    start_time: int | None = None
    end_time: int | None = None
    language: int | None = None
    attribute: int | None = None
    received_at_ms: int = 0
    speaker_inferred: bool = False
    # What Zoom sent that the fields above do not hold: the content's undeclared fields
    # (and the frame's, under `_frame`); None when it sent nothing else.
    raw: dict[str, Any] | None = None


class ChatFile(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A file shared in chat, with the fields Zoom names (any others stay in `raw`)."""

    file_id: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    file_type: str | None = None
    download_url: str | None = None


class ChatMessage(msgspec.Struct, kw_only=True):
    """A chat message. As it comes off the wire it is one version of a message: new, an
    update or a deletion (`operation_type`) of the message named by `message_id`. Read back
    from the store it is the message's current state: its latest text ("" once deleted),
    when it was edited or deleted, its versions, the replies in its thread."""

    meeting_uuid: str
    rtms_stream_id: str
    message_id: str | None
    sender_user_id: UserId | None
    sender_name: str | None
    receiver_user_id: UserId | None
    receiver_name: str | None
    chat_session_type: int | None
    text: str
    operation_type: int | None
    timestamp: int  # when it was sent (a version: when that operation happened)
    raw: dict[str, Any] | None = None
    parent_message_id: str | None = None  # a reply in this message's thread
    files: list[ChatFile] = []
    delete_file_ids: list[str] = []  # files this version takes away (`delete_file_id_list`)
    # The current state (read back from the store):
    edited_at_ms: int | None = None
    deleted_at_ms: int | None = None
    versions: int = 1
    replies: list[str] = []  # the message ids of the replies in its thread, oldest first


SESSION_STATE_BASE = 1000


class GatewayEvent(IntEnum):
    """Timeline event types for what Zoom reports outside EVENT_UPDATE: a session's state
    (SESSION_STATE_UPDATE, `SESSION_STATE_BASE` + Zoom's state) and the AI interpreter's
    audio metadata (META_DATA_AUDIO). Numbered far past Zoom's own event types, which are
    small, so the two never meet; one type per state keeps a pause and a resume stamped
    alike apart (the type is part of a row's dedup key)."""

    SESSION_INACTIVE = 1000
    SESSION_INITIALIZE = 1001
    SESSION_STARTED = 1002
    SESSION_PAUSED = 1003
    SESSION_RESUMED = 1004
    SESSION_STOPPED = 1005
    SESSION_STATE = 1099  # a state Zoom's reference does not list (its number is in the payload)
    AUDIO_METADATA = 1100

    @classmethod
    def of_session_state(cls, state: int) -> GatewayEvent:
        try:
            return cls(SESSION_STATE_BASE + state) if 0 <= state < 99 else cls.SESSION_STATE
        except ValueError:
            return cls.SESSION_STATE

    @property
    def is_session_state(self) -> bool:
        return SESSION_STATE_BASE <= self < GatewayEvent.AUDIO_METADATA


class TimelineEvent(msgspec.Struct, kw_only=True):
    meeting_uuid: str
    rtms_stream_id: str
    event_type: int
    timestamp: int
    user_id: UserId | None = None
    user_name: str | None = None
    payload: dict[str, Any] | None = None
    # The meeting's product: what `event_type` means depends on it (not a column: the
    # meeting's row says it, and reads take it from there).
    product: str = Product.MEETING.value


class MediaFile(msgspec.Struct, kw_only=True):
    """One media file: audio WAV (or raw packets), H.264/MP4 video, or numbered frames."""

    meeting_uuid: str
    rtms_stream_id: str
    kind: str  # audio | video | share
    user_id: UserId | None
    user_name: str | None
    codec: str  # l16 | g711 | g722 | opus | h264 | jpg | png
    format: str  # wav | raw | h264 | mp4 | frames
    path: str  # relative to the data directory
    sample_rate: int | None = None
    channels: int | None = None
    origin_ms: int  # the stream's time zero: offset 0 in the file
    first_ms: int | None = None
    last_ms: int | None = None
    frames: int = 0
    bytes: int = 0
    complete: bool = False
    id: int | None = None

    @property
    def duration_s(self) -> float:
        """From the stream's time zero to the end of the last frame's start."""
        if self.last_ms is None:
            return 0.0
        return (self.last_ms - self.origin_ms) / 1000
