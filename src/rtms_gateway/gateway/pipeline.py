"""From protocol messages to stored records and media files, in three parts:

- `convert`: each message to the records it becomes (pure);
- `intake`: records waiting for the writer, bounded, with backpressure on the sockets;
- `writer`: the durable writer (batches, the journal while the store is away, replay),
  which also runs the stream's store updates in order with its records.

Media frames go to their files (`sinks.media_files`): placed on the event loop, written
by a thread of their own every `media_interval`, so a slow database commit never holds
audio back and the loop never waits on the disk. One write is in flight at a time; if
the frames placed meanwhile pass `media_buffer_limit` bytes (the disk has stalled), every
socket stops being read until they are handed to the thread.

`on_message` runs in the socket callback, once per frame: it converts and hands over,
no awaiting. The stream manager talks to this class only: its store updates go through
the `record_*` methods, which run them in order with the stream's records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from ..metrics import GatewayMetrics
from ..protocol.constants import EventType, MediaType, SessionState
from ..protocol.messages import (
    AudioData,
    AudioMetadata,
    ChatData,
    EventUpdate,
    SessionStateResp,
    SessionStateUpdate,
    ShareData,
    StreamStateUpdate,
    TranscriptData,
    VideoData,
)
from ..sinks.disk_thread import DiskThread
from ..sinks.journal import Journal
from ..sinks.media_files import MediaFiles
from ..sinks.paths import loggable
from ..sinks.records import MediaFile, MeetingRecord, StreamRecord
from ..sinks.store import Store
from ..sinks.tracks import Track
from .convert import (
    accepted_params,
    audio_metadata_record,
    chat_record,
    per_participant,
    session_state_record,
    timeline_records,
    transcript_record,
)
from .intake import Intake
from .speakers import SpeakerTimeline
from .writer import StoreOp, Writer

log = logging.getLogger(__name__)


class Hold(Enum):
    """Why every socket is paused."""

    RECORDS = "too many records pending"
    MEDIA = "media waiting on the disk"


class Pipeline:
    """Messages in (`on_message`), records and files out. `journal`: one opened already
    (opening reads it whole: the gateway does it off the event loop); without it, the one
    in `data_dir` is opened here."""

    def __init__(
        self,
        store: Store,
        *,
        metrics: GatewayMetrics | None = None,
        journal: Journal | None = None,
        commit_interval: float = 0.005,
        media_interval: float = 0.02,
        high_watermark: int = 50_000,
        low_watermark: int = 10_000,
        data_dir: Path | None = None,
        journal_max_bytes: int = 1 << 30,
        stream_high_watermark: int = 2_000,
        retry_interval: float = 0.5,
        media_buffer_limit: int = 64 << 20,
    ) -> None:
        self.metrics = metrics if metrics is not None else GatewayMetrics.create()
        self.media_interval = media_interval
        if journal is None and data_dir is not None:
            journal = Journal(journal_path(data_dir), max_bytes=journal_max_bytes)
        self.intake = Intake(self.metrics, high_watermark=high_watermark, low_watermark=low_watermark,
                             stream_high_watermark=stream_high_watermark)
        self.writer = Writer(store, self.intake, self.metrics, journal=journal,
                             rejected_path=data_dir / "rejected" / "records.jsonl" if data_dir is not None else None,
                             commit_interval=commit_interval, retry_interval=retry_interval)
        self.intake.wake = self.writer.wake
        # Every socket is paused while anything holds it (too many records, or media
        # waiting on a stalled disk) and resumed once nothing does.
        self._holds: set[Hold] = set()
        self._pause_all: Callable[[], None] = _nothing
        self._resume_all: Callable[[], None] = _nothing
        self.intake.pause, self.intake.resume = partial(self._hold, Hold.RECORDS), partial(self._release, Hold.RECORDS)
        self.media_buffer_limit = media_buffer_limit
        self.media = MediaFiles(data_dir, params_of=accepted_params, on_file=self._index_file,
                                metrics=self.metrics) if data_dir is not None else None
        self.media_disk = DiskThread("media-writer") if data_dir is not None else None
        self._media_task: asyncio.Task[None] | None = None
        self._speakers: dict[str, SpeakerTimeline] = {}
        self._session_states: dict[str, int] = {}  # per stream: Zoom's session state, last heard
        self._finishing: set[asyncio.Task[None]] = set()
        self.audio_frames = self.video_frames = self.share_frames = 0  # received
        self.metrics.audio_frames.read_from(lambda: self.audio_frames)
        self.metrics.video_frames.read_from(lambda: self.video_frames)
        self.metrics.share_frames.read_from(lambda: self.share_frames)
        self.metrics.pending_records.set_function(lambda: self.intake.pending)
        self.metrics.journal_records.set_function(lambda: journal.records if journal is not None else 0)

    @property
    def journal(self) -> Journal | None:
        return self.writer.journal

    @property
    def store_ok(self) -> bool:
        return self.writer.store_ok

    def set_pause(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """What stops every socket when too much is pending, and starts them again."""
        self._pause_all, self._resume_all = pause, resume

    def _hold(self, reason: Hold) -> None:
        if reason not in self._holds:
            if not self._holds:
                self._pause_all()
            self._holds.add(reason)

    def _release(self, reason: Hold) -> None:
        if reason in self._holds:
            self._holds.discard(reason)
            if not self._holds:
                self._resume_all()

    # ---- per frame ------------------------------------------------------------------------

    def on_message(self, stream: Any, msg: object) -> None:
        kind = type(msg)
        m = self.metrics
        if kind is AudioData:
            self.audio_frames += 1
            if self.media is not None:
                self._place(stream, MediaType.AUDIO, msg)
        elif kind is TranscriptData:
            m.segments.inc()
            self.intake.add_segment(stream, transcript_record(
                stream.meeting_uuid, stream.stream_id, msg,  # type: ignore[arg-type]
                self._speakers.get(stream.stream_id)))
        elif kind is ChatData:
            m.chats.inc()
            self.intake.add_chat(stream, chat_record(stream.meeting_uuid, stream.stream_id, msg))  # type: ignore[arg-type]
        elif kind is EventUpdate:
            event = msg.event  # type: ignore[attr-defined]
            speakers = self._speakers.get(stream.stream_id)
            if speakers is None:
                speakers = self._speakers[stream.stream_id] = SpeakerTimeline()
            speakers.on_event(event)
            if event.event_type == EventType.FIRST_PACKET_TIMESTAMP and self.media is not None \
                    and event.timestamp:
                self.media.set_origin(stream.stream_id, event.timestamp)
            records = timeline_records(stream.meeting_uuid, stream.stream_id, msg,  # type: ignore[arg-type]
                                       speakers, stream.product)
            m.events.inc(len(records))
            self.intake.add_events(stream, records)
        elif kind is VideoData:
            self.video_frames += 1
            if self.media is not None:
                self._place(stream, MediaType.VIDEO, msg)
        elif kind is ShareData:
            self.share_frames += 1
            if self.media is not None:
                self._place(stream, MediaType.DESKSHARE, msg)
        elif kind is SessionStateUpdate or kind is SessionStateResp:
            # An answer to our request after a reconnection is kept only when it tells
            # something new (the session paused or resumed while no socket was up).
            state = _RUNNING if msg.state in _RUNNING_STATES else msg.state  # type: ignore[attr-defined]
            if kind is SessionStateUpdate or self._session_states.get(stream.stream_id) != state:
                self._session_states[stream.stream_id] = state
                m.events.inc()
                self.intake.add_events(stream, [session_state_record(
                    stream.meeting_uuid, stream.stream_id, msg)])  # type: ignore[arg-type]
        elif kind is AudioMetadata:
            m.events.inc()
            self.intake.add_events(stream, [audio_metadata_record(
                stream.meeting_uuid, stream.stream_id, msg)])  # type: ignore[arg-type]
        elif kind is StreamStateUpdate:
            pass  # the stream acts on these; nothing to keep

    def _place(self, stream: Any, kind: MediaType, msg: Any) -> None:
        c = msg.content
        payload = c.data
        user = c.user_id if c.user_id is not None else c.channel_id
        if kind is not MediaType.AUDIO and not per_participant(stream, kind):
            # One encoded stream whatever its subject (active speaker, whoever shares):
            # one file, since its frames depend on each other.
            user = None
        media = self.media
        assert media is not None
        media.place(stream, kind, user, c.user_name, c.timestamp, payload)
        if media.buffered > self.media_buffer_limit and Hold.MEDIA not in self._holds:
            self.metrics.paused.inc()
            log.warning("%d bytes of media wait for the disk; pausing intake", media.buffered)
            self._hold(Hold.MEDIA)

    # ---- the stream's store updates, in order with its records ----------------------------

    def run_in_order(self, op: StoreOp) -> None:
        """Schedule a store operation to run in the writer, after what is pending."""
        self.writer.run_in_order(op)

    def record_start(self, meeting: MeetingRecord, stream: StreamRecord) -> None:
        store = self.writer.store
        self.run_in_order(partial(store.upsert_meeting, meeting))
        self.run_in_order(partial(store.upsert_stream, stream))

    def record_alive(self, stream_ids: list[str]) -> None:
        """These streams are still held (a restart rejoins only recent ones)."""
        self.run_in_order(partial(self.writer.store.touch_streams, stream_ids))

    def record_stream(self, stream_id: str, *, state: str | None = None, stopped_at_ms: int | None = None,
                      stop_reason: int | None = None, status_code: int | None = None,
                      status_reason: str | None = None, server_urls: str | None = None) -> None:
        self.run_in_order(partial(self.writer.store.mark_stream, stream_id, state=state,
                                  stopped_at_ms=stopped_at_ms, stop_reason=stop_reason,
                                  status_code=status_code, status_reason=status_reason,
                                  server_urls=server_urls))

    def record_meeting_stopped(self, meeting_uuid: str, stopped_at_ms: int, stop_reason: int | None) -> None:
        self.run_in_order(partial(self.writer.store.mark_meeting_stopped, meeting_uuid, stopped_at_ms,
                                  stop_reason))

    def _index_file(self, info: MediaFile) -> None:
        snapshot = msgspec.structs.replace(info)  # as it stands now, not when the op runs
        self.run_in_order(partial(self.writer.store.upsert_media_file, snapshot))

    # ---- media files ------------------------------------------------------------------------

    def end_stream(self, stream_id: str) -> None:
        """Close the stream's files (headers final) and finish them (H.264 muxed to MP4),
        in the media thread, after the frames placed before."""
        self._speakers.pop(stream_id, None)
        self._session_states.pop(stream_id, None)
        if self.media is None:
            return
        closed = self.media.end_stream(stream_id)
        for track, _ in closed:  # final counts now; `complete` once finished
            self._index_file(track.info)
        if closed:
            task = asyncio.get_running_loop().create_task(self._finish_files(closed))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def _finish_files(self, closed: list[tuple[Track, Callable[[], None]]]) -> None:
        assert self.media is not None and self.media_disk is not None
        media = self.media
        for track, close in closed:
            try:
                info = await self.media_disk.run(partial(_close_and_finish, media, track, close))
            except OSError as exc:
                log.error("media file %s not closed: %s", loggable(track.info.path, 200), exc)
                continue
            self._index_file(info)

    async def files_finished(self) -> None:
        """Until every ended stream's files are finished (muxed) and indexed."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        await self.flush()

    async def _media_writer(self) -> None:
        """Files are written on their own beat, in their own thread: a slow database
        commit must not hold audio back, nor the disk the event loop. One write in flight
        at a time: frames placed meanwhile wait in their tracks for the next."""
        assert self.media is not None and self.media_disk is not None
        while True:
            await asyncio.sleep(self.media_interval)
            await self._write_media()

    async def _write_media(self) -> None:
        if self.media is None or self.media_disk is None:
            return
        writes = self.media.take_writes()
        if writes:
            try:
                # shielded: a write taken must run even if the task awaiting it is
                # cancelled (at close), or its frames would be lost
                await asyncio.shield(self.media_disk.run(partial(_run_all, writes)))
            except OSError as exc:
                log.error("media files not written: %s", exc)
            except Exception:
                log.exception("media files not written")
        if Hold.MEDIA in self._holds and self.media.buffered <= self.media_buffer_limit // 2:
            self._release(Hold.MEDIA)

    # ---- running ------------------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        if self.media is not None:
            self._media_task = asyncio.get_running_loop().create_task(self._media_writer(), name="media-writer")

    async def flush(self) -> None:
        """Write the media frames placed so far, and commit every record pending."""
        await self._write_media()
        await self.writer.flush()

    def health(self) -> dict[str, Any]:
        return self.writer.health()

    async def close(self) -> None:
        """Stop the writer after its current batch, close every file, commit what is left."""
        await self.writer.stop()
        if self._media_task is not None:
            self._media_task.cancel()
            await asyncio.gather(self._media_task, return_exceptions=True)
        if self.media is not None:
            for stream_id in self.media.stream_ids():
                self.end_stream(stream_id)
        await self.files_finished()
        await self.writer.close()
        if self.media_disk is not None:
            await asyncio.to_thread(self.media_disk.close)


# A session that started and one that resumed are both running: an answer saying STARTED
# after a RESUMED tells nothing new.
_RUNNING_STATES = frozenset({SessionState.STARTED, SessionState.RESUMED})
_RUNNING = -1


def journal_path(data_dir: Path) -> Path:
    return data_dir / "journal" / "records.bin"


def _nothing() -> None:
    pass


def _run_all(writes: list[Callable[[], None]]) -> None:
    for write in writes:
        write()


def _close_and_finish(media: MediaFiles, track: Track, close: Callable[[], None]) -> MediaFile:
    close()
    return media.finish(track)
