"""Records on their way to the writer, and the backpressure that bounds them.

`add_*` runs in the socket callback, once per message: it appends and returns, never
waits. The writer `take`s everything pending at once, and says when what it took is
`settled` (committed, journaled or put back).

Bounds, per stream and in all. A stream holding `stream_high_watermark` records has its
own sockets paused until what it holds is settled, so one flooding stream slows only
itself; past `high_watermark` records in all, `pause` stops every socket, and once no
more than `low_watermark` are pending, `resume` starts them again. Nothing is dropped:
TCP carries the pressure back to Zoom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from ..metrics import GatewayMetrics
from ..sinks.journal import JournalBatch
from ..sinks.records import ChatMessage, TimelineEvent, TranscriptSegment

log = logging.getLogger(__name__)


class Pausable(Protocol):
    """A stream as intake sees it: its id, and its sockets' reading."""

    @property
    def stream_id(self) -> str: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def _nothing() -> None:
    pass


class Intake:
    def __init__(self, metrics: GatewayMetrics, *, high_watermark: int = 50_000,
                 low_watermark: int = 10_000, stream_high_watermark: int = 2_000,
                 wake: Callable[[], None] = _nothing) -> None:
        if not 0 <= low_watermark < high_watermark or stream_high_watermark < 1:
            raise ValueError("watermarks: need 0 <= low < high and a stream's at least 1")
        self.metrics = metrics
        self.high_watermark = high_watermark
        self.low_watermark = low_watermark
        self.stream_high_watermark = stream_high_watermark
        self.wake = wake  # the writer: there is something to take
        self.pause: Callable[[], None] = _nothing  # stop reading every socket
        self.resume: Callable[[], None] = _nothing  # and start again
        self.paused = False  # by `pause`
        self._segments: list[TranscriptSegment] = []
        self._chats: list[ChatMessage] = []
        self._events: list[TimelineEvent] = []
        self._held_by: dict[str, int] = {}  # records pending, per stream
        self._paused_streams: dict[str, Pausable] = {}

    @property
    def pending(self) -> int:
        return len(self._segments) + len(self._chats) + len(self._events)

    def add_segment(self, stream: Pausable, record: TranscriptSegment) -> None:
        self._segments.append(record)
        self._held(stream, 1)

    def add_chat(self, stream: Pausable, record: ChatMessage) -> None:
        self._chats.append(record)
        self._held(stream, 1)

    def add_events(self, stream: Pausable, records: Iterable[TimelineEvent]) -> None:
        before = len(self._events)
        self._events.extend(records)
        if len(self._events) > before:
            self._held(stream, len(self._events) - before)

    def _held(self, stream: Pausable, added: int) -> None:
        stream_id = stream.stream_id
        held = self._held_by.get(stream_id, 0) + added
        self._held_by[stream_id] = held
        if held >= self.stream_high_watermark and stream_id not in self._paused_streams:
            # This stream alone outruns the store: stop reading its sockets (TCP pushes
            # back to Zoom) until what it holds is settled.
            stream.pause_reading()
            self._paused_streams[stream_id] = stream
            self.metrics.paused.inc()
        if not self.paused and self.pending >= self.high_watermark:
            self.paused = True
            self.metrics.paused.inc()
            log.warning("pipeline holds %d records; pausing intake", self.pending)
            self.pause()
        self.wake()

    def take(self) -> JournalBatch:
        """Everything pending, oldest first; the per-stream counts start over."""
        batch = JournalBatch(self._segments, self._chats, self._events)
        self._segments, self._chats, self._events = [], [], []
        self._held_by.clear()
        return batch

    def put_back(self, batch: JournalBatch) -> None:
        """Records taken that could go nowhere: pending again, before those since."""
        self._segments[:0], self._chats[:0], self._events[:0] = batch.segments, batch.chats, batch.events

    def settled(self) -> None:
        """What was taken is committed, journaled or put back: paused streams read again,
        and every socket does once few enough records are pending."""
        if self._paused_streams:
            streams = list(self._paused_streams.values())
            self._paused_streams.clear()
            for stream in streams:
                if self._held_by.get(stream.stream_id, 0) < self.stream_high_watermark:
                    stream.resume_reading()
                else:  # it filled up again meanwhile
                    self._paused_streams[stream.stream_id] = stream
        if self.paused and self.pending <= self.low_watermark:
            self.paused = False
            self.resume()
