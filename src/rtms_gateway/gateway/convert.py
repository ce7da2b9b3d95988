"""From protocol messages to records: pure functions, one per kind of message.

Each takes the stream's ids and the message (and, where Zoom leaves a speaker or a name
out, the stream's `SpeakerTimeline`) and returns what the store keeps. Nothing here
holds state or does I/O; `intake` and `writer` take it from there.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from ..protocol.constants import DataOption, MediaType, Product
from ..protocol.messages import (
    AudioMetadata,
    AudioParams,
    ChatData,
    EventUpdate,
    SessionStateResp,
    SessionStateUpdate,
    TranscriptData,
    VideoParams,
)
from ..sinks.records import (
    ChatFile,
    ChatMessage,
    GatewayEvent,
    TimelineEvent,
    TranscriptSegment,
    UserId,
)
from .speakers import SpeakerTimeline, is_anonymous

_json_object = msgspec.json.Decoder(dict[str, Any])


def now_ms() -> int:
    return int(time.time() * 1000)


def transcript_record(meeting_uuid: str, stream_id: str, msg: TranscriptData,
                      speakers: SpeakerTimeline | None = None) -> TranscriptSegment:
    """A segment; where Zoom named no speaker, the one holding the floor when the
    utterance began (from the events timeline), marked as inferred."""
    c = msg.content
    user_id, user_name, inferred = c.user_id if c.user_id is not None else c.channel_id, c.user_name, False
    if speakers is not None:
        if is_anonymous(user_id, user_name):
            found = speakers.speaker_during(c.start_time or c.timestamp, c.end_time)
            if found is not None:
                (user_id, user_name), inferred = found, True
        elif not user_name:
            user_name = speakers.name_of(user_id)
    return TranscriptSegment(
        meeting_uuid=meeting_uuid,
        rtms_stream_id=stream_id,
        user_id=user_id,
        user_name=user_name,
        speaker_inferred=inferred,
        text=c.data,
        timestamp=c.timestamp,
        start_time=c.start_time,
        end_time=c.end_time,
        language=c.language,
        attribute=c.attribute,
        received_at_ms=now_ms(),
        raw=msg.undeclared or None,  # the declared fields all have columns
    )


def chat_record(meeting_uuid: str, stream_id: str, msg: ChatData) -> ChatMessage:
    """Chat arrives as plain text in `data`, or as an object (possibly JSON-encoded in
    `data`) whose fields complement those of `content`; merge what is there."""
    c = msg.content
    fields: dict[str, Any] = msgspec.structs.asdict(c)
    data = c.data
    if isinstance(data, str) and data.startswith("{"):
        try:
            data = _json_object.decode(data)
        except msgspec.MsgspecError:
            pass
    if isinstance(data, dict):
        fields.update({k: v for k, v in data.items() if v is not None})
        text = str(data.get("text") or data.get("content") or data.get("message") or data.get("data") or "")
    else:
        text = data
    sender = fields.get("sender") or {}
    receiver = fields.get("receiver") or {}
    session = fields.get("chat_session") or {}
    return ChatMessage(
        meeting_uuid=meeting_uuid,
        rtms_stream_id=stream_id,
        message_id=_text_or_none(fields.get("message_id")),
        sender_user_id=sender.get("user_id", fields.get("user_id")),
        sender_name=sender.get("user_name", fields.get("user_name")),
        receiver_user_id=receiver.get("user_id"),
        receiver_name=receiver.get("user_name"),
        chat_session_type=session.get("type"),
        text=text,
        operation_type=fields.get("operation_type"),
        timestamp=fields.get("timestamp") or now_ms(),
        raw=msg.received or msgspec.to_builtins(c),  # as Zoom sent it, undeclared fields too
        parent_message_id=_text_or_none(fields.get("parent_message_id")),
        files=[f for f in map(chat_file, fields.get("files") or ()) if f is not None],
        delete_file_ids=[str(x) for x in fields.get("delete_file_id_list") or () if x is not None],
    )


# Zoom does not document a file's fields; these are the names it and its samples use.
_FILE_FIELDS = {"file_id": ("file_id", "id"), "file_name": ("file_name", "name"),
                "file_size": ("file_size", "size"), "file_type": ("file_type", "type"),
                "download_url": ("download_url", "file_url", "url")}


def chat_file(value: Any) -> ChatFile | None:
    """A file of a chat message; None for what is not a file (not an object, or names
    nothing). A size that is not a whole number is left out (the payload keeps it)."""
    if not isinstance(value, dict):
        return None
    found: dict[str, Any] = {}
    for name, keys in _FILE_FIELDS.items():
        got = next((value[k] for k in keys if value.get(k) is not None), None)
        if name == "file_size":
            found[name] = got if type(got) is int else None
        else:
            found[name] = _text_or_none(got)
    return ChatFile(**found) if any(v is not None for v in found.values()) else None


def _text_or_none(value: Any) -> str | None:
    """An id Zoom may send as a number or a string, as text; None for none (or an object)."""
    return None if value is None or isinstance(value, dict | list) else str(value)


def timeline_records(meeting_uuid: str, stream_id: str, msg: EventUpdate,
                     speakers: SpeakerTimeline | None = None,
                     product: str = Product.MEETING.value) -> list[TimelineEvent]:
    """One row per participant for join/leave/video events, one row otherwise. Names Zoom
    leaves out (leave events carry none) come from earlier events. Contact Center events
    say who (the caller, an agent) in `participant_info`: its user id (else the channel,
    as the media name it) and display name."""
    ev = msg.event
    ts = ev.timestamp or ev.event_ts or now_ms()
    payload = msg.received or msgspec.to_builtins(ev)  # as Zoom sent it, undeclared fields too
    name_of = speakers.name_of if speakers is not None else (lambda user_id: None)

    def record(user_id: UserId | None, user_name: str | None) -> TimelineEvent:
        if not user_name and user_id is not None:
            user_name = name_of(user_id)
        return TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, event_type=ev.event_type,
                             timestamp=ts, user_id=user_id, user_name=user_name, payload=payload,
                             product=product)

    if ev.participants:
        return [record(p.user_id, p.user_name) for p in ev.participants]
    if ev.user_id is None and ev.participant_info:
        info = ev.participant_info
        return [record(_identity(info.get("user_id")) or _identity(info.get("channel_id")),
                       _name(info.get("display_name")))]
    return [record(ev.user_id, ev.user_name)]


def _identity(value: object) -> UserId | None:
    """A user or channel id as Zoom may send it (a number or a string), or None."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return value


def _name(value: object) -> str | None:
    """A display name: a string with something in it, or None."""
    return value if isinstance(value, str) and value else None


def session_state_record(meeting_uuid: str, stream_id: str,
                         msg: SessionStateUpdate | SessionStateResp) -> TimelineEvent:
    """A session's state change (started, paused, resumed, stopped; told, or answered when
    asked) as a timeline row; the message whole in the payload (Zoom's state number, its
    session id, a stop's reason)."""
    payload: dict[str, Any] = msgspec.to_builtins(msg)
    return TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id,
                         event_type=GatewayEvent.of_session_state(msg.state),
                         timestamp=msg.timestamp or now_ms(), payload=payload)


def audio_metadata_record(meeting_uuid: str, stream_id: str, msg: AudioMetadata) -> TimelineEvent:
    """The AI interpreter's audio metadata (msg 23) as a timeline row, its content whole:
    Zoom documents the fields loosely, so nothing is picked out but the time."""
    interpreter = msg.content.get("interpreter")
    stamp = interpreter.get("timestamp") if isinstance(interpreter, dict) else None
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
        stamp = msg.content.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
        stamp = now_ms()
    return TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id,
                         event_type=GatewayEvent.AUDIO_METADATA, timestamp=stamp,
                         payload=dict(msg.content))


def per_participant(stream: Any, kind: MediaType) -> bool:
    """Video in individual-stream mode comes one participant per stream."""
    if kind is not MediaType.VIDEO:
        return False
    return accepted_params(stream, kind).data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM


def accepted_params(stream: Any, kind: MediaType) -> AudioParams | VideoParams:
    """What Zoom accepted for `kind` on this stream; fields it left out take the protocol's
    defaults (audio L16 16 kHz mono, video and share JPG)."""
    accepted = stream.accepted_params(kind)
    if kind == MediaType.AUDIO:
        return (accepted.audio if accepted is not None else None) or AudioParams()
    if kind == MediaType.VIDEO:
        return (accepted.video if accepted is not None else None) or VideoParams()
    return (accepted.deskshare if accepted is not None else None) or VideoParams()

