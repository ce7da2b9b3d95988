"""From protocol messages to stored records: convert once, batch by time, commit.

`on_message` runs in the socket callback, once per frame: it converts and appends, no
awaiting. A single writer task commits whatever accumulated every `batch_interval`
seconds in one transaction, so a segment is durable within milliseconds of arriving, and
ordered store operations (meeting/stream updates) run in the same task, in order.

The store fails in one of two ways (`sinks.store_errors`). While it is unavailable,
records wait in a journal on disk (see `sinks.journal`) and are written, oldest first,
once it is back; `health()` says so. A batch it refuses for what it holds is written
record by record, and the records it still refuses are set aside in a file, counted.

Backpressure: pending records are bounded, per stream and in all. A stream holding
`stream_high_watermark` records has its own sockets paused until they are committed or
journaled, so one flooding stream slows only itself; past `high_watermark` in all, the
`pause` hook stops every socket, and below `low_watermark` `resume` starts them again.
Nothing is dropped: TCP carries the pressure back to Zoom.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec

from ..protocol.constants import DataOption, EventType, MediaType
from ..protocol.errors import ProtocolError, RecordRefused, StoreError, StoreUnavailable
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
    VideoParams,
)
from ..sinks.journal import Journal, JournalBatch, JournalFull
from ..sinks.media_files import MediaFiles, Track
from ..sinks.records import ChatMessage, MediaFile, TimelineEvent, TranscriptSegment
from .speakers import SpeakerTimeline, is_anonymous

log = logging.getLogger(__name__)

_json_object = msgspec.json.Decoder(dict[str, Any])


def _now_ms() -> int:
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


def timeline_records(meeting_uuid: str, stream_id: str, msg: EventUpdate,
                     speakers: SpeakerTimeline | None = None) -> list[TimelineEvent]:
    """One row per participant for join/leave/video events, one row otherwise. Names Zoom
    leaves out (leave events carry none) come from earlier events."""
    ev = msg.event
    ts = ev.timestamp or ev.event_ts or _now_ms()
    payload = msgspec.to_builtins(ev)
    name_of = speakers.name_of if speakers is not None else (lambda user_id: None)
    if ev.participants:
        return [
            TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, event_type=ev.event_type,
                          timestamp=ts, user_id=p.user_id, user_name=p.user_name or name_of(p.user_id),
                          payload=payload)
            for p in ev.participants
        ]
    return [TimelineEvent(meeting_uuid=meeting_uuid, rtms_stream_id=stream_id, event_type=ev.event_type,
                          timestamp=ts, user_id=ev.user_id,
                          user_name=ev.user_name or (name_of(ev.user_id) if ev.user_id is not None else None),
                          payload=payload)]


class Pipeline:
    def __init__(
        self,
        store: Any,
        *,
        batch_interval: float = 0.02,
        high_watermark: int = 50_000,
        low_watermark: int = 10_000,
        pause: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
        data_dir: Path | None = None,
        journal_max_bytes: int = 1 << 30,
        stream_high_watermark: int = 2_000,
        retry_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.counters: dict[str, int] = {
            "segments": 0, "chats": 0, "events": 0, "audio_frames": 0, "video_frames": 0,
            "share_frames": 0, "state_updates": 0, "committed": 0, "commit_errors": 0,
            "media_unwritten": 0, "media_duplicates": 0, "media_refused": 0, "media_files": 0,
            "journaled": 0, "replayed": 0, "journal_full": 0, "paused": 0,
            "records_rejected": 0, "updates_failed": 0,
        }
        self.media = MediaFiles(data_dir, params_of=_params, on_file=self._index_file,
                                counters=self.counters) if data_dir is not None else None
        self.journal = Journal(data_dir / "journal" / "records.bin", max_bytes=journal_max_bytes) \
            if data_dir is not None else None
        self.store_ok = True
        self.retry_interval = retry_interval
        self.stream_high_watermark = stream_high_watermark
        self._held_by: dict[str, int] = {}  # records pending, per stream
        self._paused_streams: dict[str, Any] = {}
        self._speakers: dict[str, SpeakerTimeline] = {}
        self._finishing: set[asyncio.Task[None]] = set()
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
        self._flush_lock = asyncio.Lock()
        self._media_task: asyncio.Task[None] | None = None

    # ---- intake (synchronous, per frame) ------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._segments) + len(self._chats) + len(self._events)

    def on_message(self, stream: Any, msg: object) -> None:
        kind = type(msg)
        if kind is AudioData:
            self.counters["audio_frames"] += 1
            if self.media is not None:
                self._place(stream, MediaType.AUDIO, msg)
            return
        if kind is TranscriptData:
            rec = transcript_record(stream.meeting_uuid, stream.stream_id, msg,  # type: ignore[arg-type]
                                    self._speakers.get(stream.stream_id))
            self._segments.append(rec)
            self.counters["segments"] += 1
        elif kind is ChatData:
            rec = chat_record(stream.meeting_uuid, stream.stream_id, msg)  # type: ignore[arg-type]
            self._chats.append(rec)
            self.counters["chats"] += 1
        elif kind is EventUpdate:
            speakers = self._speakers.get(stream.stream_id)
            if speakers is None:
                speakers = self._speakers[stream.stream_id] = SpeakerTimeline()
            speakers.on_event(msg.event)  # type: ignore[attr-defined]
            if msg.event.event_type == EventType.FIRST_PACKET_TIMESTAMP and self.media is not None \
                    and msg.event.timestamp:  # type: ignore[attr-defined]
                self.media.set_origin(stream.stream_id, msg.event.timestamp)  # type: ignore[attr-defined]
            recs = timeline_records(stream.meeting_uuid, stream.stream_id, msg, speakers)  # type: ignore[arg-type]
            self._events.extend(recs)
            self.counters["events"] += len(recs)
        elif kind is VideoData:
            self.counters["video_frames"] += 1
            if self.media is not None:
                self._place(stream, MediaType.VIDEO, msg)
            return
        elif kind is ShareData:
            self.counters["share_frames"] += 1
            if self.media is not None:
                self._place(stream, MediaType.DESKSHARE, msg)
            return
        elif kind is StreamStateUpdate or kind is SessionStateUpdate:
            self.counters["state_updates"] += 1
            return
        else:
            return
        held = self._held_by.get(stream.stream_id, 0) + 1
        self._held_by[stream.stream_id] = held
        if held == self.stream_high_watermark:
            # This stream alone outruns the store: stop reading its sockets (TCP pushes
            # back to Zoom) until its records are committed or journaled.
            stream.pause_reading()
            self._paused_streams[stream.stream_id] = stream
            self.counters["paused"] += 1
        if not self._paused and self.pending >= self.high_watermark:
            self._paused = True
            self.counters["paused"] += 1
            log.warning("pipeline holds %d records; pausing intake", self.pending)
            self.pause()
        self._wakeup.set()

    def _place(self, stream: Any, kind: MediaType, msg: Any) -> None:
        c = msg.content
        try:
            payload = c.payload_bytes()
        except ProtocolError:
            self.counters["media_unwritten"] += 1
            return
        user = c.user_id if c.user_id is not None else c.channel_id
        if kind is not MediaType.AUDIO and not _per_participant(stream, kind):
            # One encoded stream whatever its subject (active speaker, whoever shares):
            # one file, since its frames depend on each other.
            user = None
        self.media.place(stream, kind, user, c.user_name, c.timestamp, payload)  # type: ignore[union-attr]

    def _index_file(self, info: MediaFile) -> None:
        self.counters["media_files"] += 1
        snapshot = msgspec.structs.replace(info)
        self.run_in_order(lambda: self.store.upsert_media_file(snapshot))

    def end_stream(self, stream_id: str) -> None:
        """Close the stream's files (headers final); H.264 is muxed to MP4 off the loop."""
        self._speakers.pop(stream_id, None)
        if self.media is None:
            return
        closed = self.media.end_stream(stream_id)
        for _, info in closed:  # final counts now; `complete` once finished
            self._index_file(info)
        if closed:
            task = asyncio.get_running_loop().create_task(self._finish_files([t for t, _ in closed]))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def files_finished(self) -> None:
        """Until every ended stream's files are finished (muxed) and indexed."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        await self.flush()

    async def _finish_files(self, tracks: list[Track]) -> None:
        assert self.media is not None
        for track in tracks:
            info = await asyncio.to_thread(self.media.finish, track)
            self._index_file(info)

    def run_in_order(self, op: Callable[[], Awaitable[Any]]) -> None:
        """Schedule a store operation to run in the writer task, after what is pending."""
        self._ops.append(op)
        self._wakeup.set()

    # ---- writer ---------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._writer(), name="pipeline-writer")
        if self.media is not None:
            self._media_task = loop.create_task(self._media_writer(), name="media-writer")

    async def _media_writer(self) -> None:
        """Files are written on their own beat: a slow database commit must not hold
        audio back (the store writer awaits the database; this never does)."""
        assert self.media is not None
        while not self._stopping:
            await asyncio.sleep(self.batch_interval)
            self.media.flush()

    async def _writer(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush()
            if not self._stopping:
                await asyncio.sleep(self.batch_interval)

    async def flush(self) -> None:
        """Commit everything pending. While the store fails, records go to the journal on
        disk (or stay in memory if there is none, or it is full) and updates wait; both
        are written, in order, once the store is back."""
        async with self._flush_lock:  # the writer's and a caller's flush: one at a time
            await self._flush()

    async def _flush(self) -> None:
        if self.media is not None:
            self.media.flush()
        if self.journal and not await self._replay_journal():
            self._park(self._take_records())
            await self._retry_later()
            return
        while self._ops or self.pending:
            batch = self._take_records()
            try:
                if len(batch):
                    await self.store.write_batch(segments=batch.segments, chats=batch.chats, events=batch.events)
                    self.counters["committed"] += len(batch)
            except StoreUnavailable as exc:
                self._park(batch)
                self._store_failed(exc)
                await self._retry_later()
                return
            except RecordRefused:
                if not await self._salvage(batch, park_the_rest=True):
                    await self._retry_later()
                    return
            finally:
                if self._paused and self.pending <= self.low_watermark:
                    self._paused = False
                    self.resume()
            if not await self._run_ops():
                await self._retry_later()
                return
        self._store_back()

    async def _run_ops(self) -> bool:
        """The ordered updates; False (the rest kept) if the store is away."""
        while self._ops:
            op = self._ops[0]
            try:
                await op()
            except StoreUnavailable as exc:
                self._store_failed(exc)
                return False
            except RecordRefused as exc:  # the store is there and refuses it: retrying cannot help
                self.counters["updates_failed"] += 1
                log.error("store refused an update (%s); skipped", exc)
            del self._ops[0]
        return True

    async def _salvage(self, batch: JournalBatch, *, park_the_rest: bool) -> bool:
        """A batch the store refused for its data holds a record it cannot take (a poison
        record): write the records one by one and set aside those refused, so one bad
        record never holds back the rest. False if the store went away meanwhile (the
        rest parked if asked; a journaled batch stays in the journal anyway)."""
        log.warning("store refused a batch of %d records for its data; writing them one by one", len(batch))
        records = [(kind, r) for kind in ("segments", "chats", "events") for r in getattr(batch, kind)]
        for n, (kind, record) in enumerate(records):
            try:
                await self.store.write_batch(**{kind: [record]})
                self.counters["committed"] += 1
            except RecordRefused as exc:
                self._set_aside(kind, record, exc)
            except StoreUnavailable as exc:
                if park_the_rest:
                    rest = JournalBatch()
                    for later_kind, later in records[n:]:
                        getattr(rest, later_kind).append(later)
                    self._park(rest)
                self._store_failed(exc)
                return False
        return True

    def _set_aside(self, kind: str, record: object, exc: StoreError) -> None:
        """A record the store refuses: counted, logged (the error's code, never the
        record), and kept in a file for a person with the driver's own words."""
        self.counters["records_rejected"] += 1
        reason = f"{type(exc).__name__}: {exc}"
        log.error("store refused a %s record (%s); kept in rejected/records.jsonl", kind, reason)
        if self.data_dir is None:
            return
        path = self.data_dir / "rejected" / "records.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"kind": kind, "error": reason, "detail": exc.detail, "record": record}
        with open(path, "ab") as f:
            f.write(msgspec.json.encode(entry) + b"\n")

    def _take_records(self) -> JournalBatch:
        batch = JournalBatch(self._segments, self._chats, self._events)
        self._segments, self._chats, self._events = [], [], []
        self._held_by.clear()
        if self._paused_streams:
            for stream in self._paused_streams.values():
                stream.resume_reading()
            self._paused_streams.clear()
        return batch

    def _park(self, batch: JournalBatch) -> None:
        """Records the store cannot take now: to the journal, else back in memory."""
        if not len(batch):
            return
        if self.journal is not None:
            try:
                self.journal.append(batch)
                self.counters["journaled"] += len(batch)
                return
            except (JournalFull, OSError) as exc:
                self.counters["journal_full"] += 1
                log.error("cannot journal %d records (%s); holding them in memory", len(batch), exc)
        self._segments[:0], self._chats[:0], self._events[:0] = batch.segments, batch.chats, batch.events

    async def _replay_journal(self) -> bool:
        assert self.journal is not None
        replayed = 0
        for batch in self.journal.batches():
            try:
                await self.store.write_batch(segments=batch.segments, chats=batch.chats, events=batch.events)
            except StoreUnavailable as exc:
                self._store_failed(exc)
                return False
            except RecordRefused:
                # The journal is kept until every batch is in: what was written of this
                # one is written again later, idempotently.
                if not await self._salvage(batch, park_the_rest=False):
                    return False
            replayed += len(batch)
        self.journal.clear()
        self.counters["replayed"] += replayed
        self.counters["committed"] += replayed
        log.info("store is back: %d journaled records written", replayed)
        return True

    def _store_failed(self, exc: StoreUnavailable) -> None:
        self.counters["commit_errors"] += 1
        if self.store_ok:
            self.store_ok = False
            log.error("store unavailable (%s); records wait in the %s until it is back",
                      exc, "journal" if self.journal is not None else "memory")

    def _store_back(self) -> None:
        if not self.store_ok:
            self.store_ok = True
            log.info("store writes succeed again")

    async def _retry_later(self) -> None:
        await asyncio.sleep(self.retry_interval)
        self._wakeup.set()

    def health(self) -> dict[str, Any]:
        return {
            "store_ok": self.store_ok,
            "pending_records": self.pending,
            "pending_updates": len(self._ops),
            "journal_records": self.journal.records if self.journal is not None else 0,
            "journal_bytes": self.journal.bytes if self.journal is not None else 0,
        }

    async def close(self) -> None:
        """Stop the writer after its current batch (a cancelled batch would be lost), then
        commit what is left."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._media_task is not None:
            self._media_task.cancel()
        if self.media is not None:
            for stream_id in self.media.stream_ids():
                self.end_stream(stream_id)
        await self.files_finished()


def _per_participant(stream: Any, kind: MediaType) -> bool:
    """Video in individual-stream mode comes one participant per stream."""
    if kind is not MediaType.VIDEO:
        return False
    return _params(stream, kind).data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM


def _params(stream: Any, kind: MediaType) -> AudioParams | VideoParams:
    """What Zoom accepted for `kind` on this stream; fields it left out take the protocol's
    defaults (audio L16 16 kHz mono, video and share JPG)."""
    accepted = stream.accepted_params(kind)
    if kind == MediaType.AUDIO:
        return (accepted.audio if accepted is not None else None) or AudioParams()
    if kind == MediaType.VIDEO:
        return (accepted.video if accepted is not None else None) or VideoParams()
    return (accepted.deskshare if accepted is not None else None) or VideoParams()

