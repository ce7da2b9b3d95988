"""From protocol messages to stored records: convert once, batch by time, commit.

`on_message` runs in the socket callback, once per frame: it converts and appends, no
awaiting. A single writer task commits whatever accumulated every `batch_interval`
seconds in one transaction, so a segment is durable within milliseconds of arriving, and
ordered store operations (meeting/stream updates) run in the same task, in order.

Backpressure: pending records are bounded. Past `high_watermark` the pipeline asks its
`pause` hook to stop reading sockets; below `low_watermark` it asks `resume`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import msgspec

from ..protocol.messages import (
    AudioData,
    AudioParams,
    ChatData,
    EventUpdate,
    SessionStateUpdate,
    ShareData,
    StreamStateUpdate,
    TranscriptData,
    VideoData,
)
from ..protocol.constants import Codec, MediaType, SampleRate
from ..protocol.errors import ProtocolError
from ..sinks.audio import WavTrack
from ..sinks.live import LiveHub
from ..sinks.records import ChatMessage, TimelineEvent, TranscriptSegment

log = logging.getLogger(__name__)

_json_object = msgspec.json.Decoder(dict[str, Any])


def _now_ms() -> int:
    return int(time.time() * 1000)


def transcript_record(meeting_uuid: str, stream_id: str, msg: TranscriptData) -> TranscriptSegment:
    c = msg.content
    return TranscriptSegment(
        meeting_uuid=meeting_uuid,
        rtms_stream_id=stream_id,
        user_id=c.user_id,
        user_name=c.user_name,
        text=c.data,
        timestamp=c.timestamp,
        start_time=c.start_time,
        end_time=c.end_time,
        language=c.language,
        attribute=c.attribute,
        received_at_ms=_now_ms(),
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
        message_id=fields.get("message_id"),
        sender_user_id=sender.get("user_id", fields.get("user_id")),
        sender_name=sender.get("user_name", fields.get("user_name")),
        receiver_user_id=receiver.get("user_id"),
        receiver_name=receiver.get("user_name"),
        chat_session_type=session.get("type"),
        text=text,
        operation_type=fields.get("operation_type"),
        timestamp=fields.get("timestamp") or _now_ms(),
        raw=msgspec.to_builtins(c),
    )


def timeline_records(meeting_uuid: str, stream_id: str, msg: EventUpdate) -> list[TimelineEvent]:
    """One row per participant for join/leave/video events, one row otherwise."""
    ev = msg.event
    ts = ev.timestamp or ev.event_ts or _now_ms()
    payload = msgspec.to_builtins(ev)
    if ev.participants:
        return [
            TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, event_type=ev.event_type,
                          timestamp=ts, user_id=p.user_id, user_name=p.user_name, payload=payload)
            for p in ev.participants
        ]
    return [TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, event_type=ev.event_type,
                          timestamp=ts, user_id=ev.user_id, user_name=ev.user_name, payload=payload)]


class Pipeline:
    def __init__(
        self,
        store: Any,
        *,
        live: LiveHub | None = None,
        batch_interval: float = 0.02,
        high_watermark: int = 50_000,
        low_watermark: int = 10_000,
        pause: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
        data_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self._tracks: dict[tuple[str, object], WavTrack] = {}
        self._origins: dict[str, int] = {}  # per stream: the first audio timestamp
        self.live = live or LiveHub()
        self.batch_interval = batch_interval
        self.high_watermark = high_watermark
        self.low_watermark = low_watermark
        self.pause = pause
        self.resume = resume
        self._segments: list[TranscriptSegment] = []
        self._chats: list[ChatMessage] = []
        self._events: list[TimelineEvent] = []
        self._ops: list[Callable[[], Awaitable[Any]]] = []
        self._wakeup = asyncio.Event()
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.counters: dict[str, int] = {
            "segments": 0, "chats": 0, "events": 0, "audio_frames": 0, "video_frames": 0,
            "share_frames": 0, "state_updates": 0, "committed": 0, "commit_errors": 0,
            "audio_unwritten": 0, "audio_duplicates": 0,
        }

    # ---- intake (synchronous, per frame) ------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._segments) + len(self._chats) + len(self._events)

    def on_message(self, stream: Any, msg: object) -> None:
        kind = type(msg)
        if kind is AudioData:
            self.counters["audio_frames"] += 1
            if self.data_dir is not None:
                self._place_audio(stream, msg)  # type: ignore[arg-type]
            return
        if kind is TranscriptData:
            rec = transcript_record(stream.meeting_uuid, stream.stream_id, msg)  # type: ignore[arg-type]
            self._segments.append(rec)
            self.counters["segments"] += 1
            self.live.publish(rec.meeting_uuid, rec)
        elif kind is ChatData:
            rec = chat_record(stream.meeting_uuid, stream.stream_id, msg)  # type: ignore[arg-type]
            self._chats.append(rec)
            self.counters["chats"] += 1
            self.live.publish(rec.meeting_uuid, rec)
        elif kind is EventUpdate:
            recs = timeline_records(stream.meeting_uuid, stream.stream_id, msg)  # type: ignore[arg-type]
            self._events.extend(recs)
            self.counters["events"] += len(recs)
            for rec in recs:
                self.live.publish(rec.meeting_uuid, rec)
        elif kind is VideoData:
            self.counters["video_frames"] += 1
            return
        elif kind is ShareData:
            self.counters["share_frames"] += 1
            return
        elif kind is StreamStateUpdate or kind is SessionStateUpdate:
            self.counters["state_updates"] += 1
            return
        else:
            return
        if not self._paused and self.pending >= self.high_watermark:
            self._paused = True
            log.warning("pipeline holds %d records; pausing intake", self.pending)
            self.pause()
        self._wakeup.set()

    def _place_audio(self, stream: Any, msg: AudioData) -> None:
        c = msg.content
        user = c.user_id or c.channel_id or 0
        track = self._tracks.get((stream.stream_id, user))
        if track is None:
            track = self._open_track(stream, user, c.timestamp)
            if track is None:
                self.counters["audio_unwritten"] += 1
                return
        try:
            pcm = c.payload_bytes()
        except ProtocolError:
            self.counters["audio_unwritten"] += 1
            return
        before = track.duplicates
        track.place(c.timestamp, pcm)
        self.counters["audio_duplicates"] += track.duplicates - before

    def _open_track(self, stream: Any, user: object, timestamp: int) -> WavTrack | None:
        """A WAV track for L16 audio; other codecs are left to a later stage."""
        params = stream.accepted_params(MediaType.AUDIO)
        # Fields Zoom leaves out take the protocol defaults: L16, 16 kHz, mono.
        audio = (params.audio if params is not None else None) or AudioParams()
        if (audio.codec or Codec.L16) != Codec.L16:
            return None
        origin = self._origins.setdefault(stream.stream_id, timestamp)
        name = "mixed" if user in (0, None) else str(user)
        path = self.data_dir / quote(stream.meeting_uuid, safe="") / f"{stream.stream_id}-audio-{name}.wav"  # type: ignore[operator]
        track = WavTrack(path, sample_rate=SampleRate(audio.sample_rate if audio.sample_rate is not None
                                                      else SampleRate.SR_16K).hz,
                         channels=audio.channel or 1, origin_ms=origin)
        self._tracks[(stream.stream_id, user)] = track
        return track

    def end_stream(self, stream_id: str) -> None:
        """Close the stream's files (headers final)."""
        for key in [k for k in self._tracks if k[0] == stream_id]:
            self._tracks.pop(key).close()
        self._origins.pop(stream_id, None)

    def run_in_order(self, op: Callable[[], Awaitable[Any]]) -> None:
        """Schedule a store operation to run in the writer task, after what is pending."""
        self._ops.append(op)
        self._wakeup.set()

    # ---- writer ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer(), name="pipeline-writer")

    async def _writer(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush()
            if not self._stopping:
                await asyncio.sleep(self.batch_interval)

    async def flush(self) -> None:
        """Commit everything pending; on a store error keep it and retry later."""
        for track in self._tracks.values():
            track.flush()
        while self._ops or self.pending:
            segments, chats, events = self._segments, self._chats, self._events
            self._segments, self._chats, self._events = [], [], []
            ops, self._ops = self._ops, []
            written = False
            done = 0
            try:
                if segments or chats or events:
                    await self.store.write_batch(segments=segments, chats=chats, events=events)
                    self.counters["committed"] += len(segments) + len(chats) + len(events)
                written = True
                for op in ops:
                    await op()
                    done += 1
            except Exception:
                self.counters["commit_errors"] += 1
                self._ops[:0] = ops[done:]
                if not written:
                    self._segments[:0], self._chats[:0], self._events[:0] = segments, chats, events
                log.exception("store write failed; %d records and %d updates kept for retry",
                              self.pending, len(self._ops))
                await asyncio.sleep(0.5)
                self._wakeup.set()
                return
            finally:
                if self._paused and self.pending <= self.low_watermark:
                    self._paused = False
                    self.resume()

    async def close(self) -> None:
        """Stop the writer after its current batch (a cancelled batch would be lost), then
        commit what is left."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self.flush()
        for stream_id in {k[0] for k in self._tracks}:
            self.end_stream(stream_id)
