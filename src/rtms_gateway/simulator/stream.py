"""One RTMS stream as Zoom runs it, on the wire: its media timeline, the feeds on its media
sockets, its events, its stop. The rules (handshakes, phases, keep-alives, replies) are its
`StreamSession` (session.py), what faults do its `FaultInjector` (faults.py); this class
pumps frames and time through them and carries out the effects they queue.

All methods but `stop()` are synchronous and run inside picows callbacks or the pacer's
tick; the meeting's supervisor (runner) calls `poll()` for timers and `stop()` to end.
"""

from __future__ import annotations

import asyncio
import time

from ..protocol.constants import (
    DataOption,
    EventType,
    MediaType,
    Product,
    StopReason,
)
from ..protocol.messages import (
    ChatData,
    Event,
    EventUpdate,
    Participant,
    SignalingHandshakeReq,
    TranscriptData,
)
from .faults import Fault, FaultInjector
from .media import (
    MAX_CATCH_UP,
    AudioFeed,
    VideoFeed,
    VideoSource,
    chat_message,
    event_message,
    interpreter_metadata,
    transcript_message,
    with_future_fields,
)
from .pacer import Pacer
from .records import MeetingRecord, TimestampJitter
from .scenario import CHUNK_MS, ChatLine, MeetingScript, ScriptEvent, Speaker, Utterance, present_at
from .session import (
    DEFAULT_SETTINGS,
    ClientFrame,
    Close,
    Drop,
    Effect,
    MediaGrant,
    PauseReading,
    Phase,
    Send,
    SendEvent,
    SendRaw,
    ServerSocket,
    StartFeeds,
    StartStreaming,
    StopFeeds,
    StreamSession,
    StreamSettings,
    Wake,
)
from .video import TestPatternVideo
from .wire import Wire

__all__ = ["Phase", "SimStream", "StreamSettings", "now_ms"]

MEDIA_DRAIN_S = 0.25  # gap between the last media frame and the terminate update
STARTUP_BUFFER_S = 60.0  # Zoom holds at most this much audio from the start webhook


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SimStream:
    def __init__(self, script: MeetingScript, pacer: Pacer,
                 settings: StreamSettings = DEFAULT_SETTINGS,
                 video_source: VideoSource | None = None) -> None:
        self.script = script
        self.pacer = pacer
        self.settings = settings
        self.video_source = video_source or TestPatternVideo()
        self.record = MeetingRecord(product=str(script.product), owner_id=script.owner_id,
                                    rtms_stream_id=script.rtms_stream_id,
                                    rtms_session_id=script.rtms_session_id)
        if settings.timestamp_jitter_ms:
            self.record.jitter = TimestampJitter(settings.timestamp_jitter_ms,
                                                 f"rtms-sim-jitter:{script.rtms_stream_id}")
        self.session = StreamSession(self.record, duration_s=script.duration_s, id_key=script.product.id_key,
                                     offered=script.offered, settings=settings)
        self._wires: dict[ServerSocket, Wire] = {}  # the sockets attached, and how to reach them
        self.t0: float | None = None
        # For startup buffering: when rtms_started went out.
        self.announced_at: float | None = None
        self.announced_ms: int | None = None
        self._buffering = False  # true while the first feeds start: audio from t0, in a burst
        self._started_once = False  # feeds started later are a resumption
        self._feeds: dict[ServerSocket, list[AudioFeed | VideoFeed]] = {}
        self._timeline = script.timeline()
        self._cursor = 0
        self.injector = FaultInjector(self.session)
        self._changed = asyncio.Event()
        self._clock = asyncio.get_running_loop().time

    @property
    def phase(self) -> Phase:
        return self.session.phase

    @property
    def ended(self) -> bool:
        return self.session.phase is Phase.STOPPED

    @property
    def stop_requested(self) -> StopReason | None:
        return self.session.stop_requested

    @property
    def end_at(self) -> float:
        return self.session.end_at

    @property
    def served(self) -> dict[MediaType, Wire]:
        """The socket each media type goes out on."""
        return {kind: self._wires[s] for kind, s in self.session.served.items() if s in self._wires}

    @property
    def zcc(self) -> bool:
        return self.script.product is Product.CONTACT_CENTER

    @property
    def t0_ms(self) -> int:
        return self.record.t0_ms or 0

    def wake(self) -> None:
        self._changed.set()

    async def wait_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass
        self._changed.clear()

    # ---- the session's effects ----------------------------------------------------------

    def _apply(self) -> None:
        for effect in self.session.effects():
            self._do(effect)

    def _do(self, effect: Effect) -> None:
        match effect:
            case Send(socket, message):
                if (wire := self._wires.get(socket)) is not None:
                    wire.send_message(message)
            case SendRaw(socket, frames):
                if (wire := self._wires.get(socket)) is not None:
                    for frame in frames:
                        wire.send(frame)
            case Close(socket, code, reason):
                if (wire := self._wires.pop(socket, None)) is not None:
                    wire.detach()  # its disconnect is no news any more
                    wire.close(code, reason)
            case Drop(socket):
                if (wire := self._wires.get(socket)) is not None:
                    wire.drop()
            case PauseReading(socket, seconds):
                if (wire := self._wires.get(socket)) is not None:
                    wire.pause_reading_for(seconds)
            case StartStreaming(resumed):
                self._start_streaming(resumed)
            case StartFeeds(socket):
                self._start_feeds(socket)
            case StopFeeds(socket):
                if socket is None:
                    self.pacer.remove(self)
                    self._feeds.clear()
                else:
                    self._feeds.pop(socket, None)
            case SendEvent(event_type, present):
                self._session_event(event_type, present)
            case Wake():
                self.wake()

    def _session_event(self, event_type: EventType, present: bool) -> None:
        if event_type == EventType.FIRST_PACKET_TIMESTAMP:
            # The session's first packet: the first buffered one if Zoom buffers, else now.
            first = self.record.t0_ms
            if first is None:
                buffered = self.session.buffer_data and self.announced_ms is not None
                first = self.announced_ms if buffered and self.announced_ms is not None else now_ms()
            self._send_event(Event(event_type=int(event_type), timestamp=first))
        elif present:
            self._send_event(Event(event_type=int(event_type), participants=_participants(self._present(), names=True)))
        else:
            self._send_event(Event(event_type=int(event_type), timestamp=now_ms()))

    # ---- sockets (attached by the server once their handshake is accepted) -------------

    def attach_signaling(self, wire: Wire, req: SignalingHandshakeReq) -> None:
        self._wires[wire.socket] = wire
        self.session.attach_signaling(wire.socket, req)
        self._apply()

    def attach_media(self, wire: Wire, grant: MediaGrant) -> None:
        self._wires[wire.socket] = wire
        self.session.attach_media(wire.socket, grant)
        self._apply()

    def on_frame(self, wire: Wire, frame: ClientFrame) -> None:
        self.session.receive(wire.socket, frame, self._clock(), now_ms())
        self._apply()

    def on_disconnected(self, wire: Wire) -> None:
        self.session.disconnected(wire.socket, self._clock())
        self._apply()
        self._wires.pop(wire.socket, None)

    def request_stop(self, reason: StopReason) -> None:
        self.session.request_stop(reason)
        self._apply()

    def inject(self, fault: Fault) -> None:
        """Do one socket-level fault now (the runner does the webhook ones)."""
        self.injector.inject(fault, self._clock(), now_ms())
        self._apply()

    def poll(self, now: float) -> StopReason | None:
        """Keep-alives and deadlines; the reason to stop now, if any."""
        reason = self.session.poll(now, now_ms())
        self._apply()
        return reason

    # ---- streaming ----------------------------------------------------------------------

    def _present(self) -> list[Speaker]:
        return present_at(self.script, int((self._clock() - (self.t0 or 0)) * 1000))

    def _start_streaming(self, resumed: bool) -> None:
        now = self._clock()
        if self.t0 is None:
            # The meeting (and Zoom's audio buffer) began with the start webhook; the
            # buffer holds at most its last 60 s.
            if self.announced_at is not None and self.announced_ms is not None:
                lead = min(now - self.announced_at, STARTUP_BUFFER_S)
                self.t0 = now - lead
                self.record.t0_ms = self.announced_ms + int((now - self.announced_at - lead) * 1000)
            else:
                self.t0 = now
                self.record.t0_ms = now_ms()
            self._buffering = self.session.buffer_data
        else:  # back from an interruption: what was due meanwhile is lost
            elapsed = (now - self.t0) * 1000
            while self._cursor < len(self._timeline) and self._timeline[self._cursor][0] <= elapsed:
                self._cursor += 1
                self.record.sent.dropped += 1
        # Zoom's startup buffer: audio since the start webhook, sent ahead of the live
        # feeds as fast as the pacer's catch-up allows (unless the client declined it).
        for socket in self.session.media:
            if socket.live:
                self._start_feeds(socket)
        self._buffering = False
        self._started_once = True
        self.pacer.add(self, origin=self.t0)

    def _start_feeds(self, socket: ServerSocket) -> None:
        assert self.t0 is not None
        wire = self._wires.get(socket)
        p = socket.params
        if wire is None or p is None:
            return
        start_ms = int((self._clock() - self.t0) * 1000)
        jitter = self.record.jitter
        args = (self.t0, self.t0_ms, start_ms, self.record.sent, jitter)
        feeds: list[AudioFeed | VideoFeed] = []
        if p.audio is not None:
            # Live audio starts with the next packet boundary: none is stamped before now.
            first = -(-start_ms // CHUNK_MS) * CHUNK_MS
            if self._buffering:
                first = 0
                self.record.sent.buffered += start_ms // CHUNK_MS
            elif self._started_once:
                self.record.resumed_at_ms.append(first)
            feeds.append(AudioFeed(wire, self.script, p.audio, self.t0, self.t0_ms, first, self.record.sent,
                                   zcc=self.zcc, jitter=jitter))
            if self.settings.ai_interpreter:  # the interpreter's language pairs, ahead of its audio
                wire.send_message(interpreter_metadata(self.script, p.audio, self.t0_ms + first))
                self.record.audio_metadata += 1
        if p.video is not None:
            who = self._video_subject if p.video.data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM \
                else self.script.video_subject_at
            feeds.append(VideoFeed(wire, MediaType.VIDEO, p.video, who, self.video_source, *args))
        if p.deskshare is not None:
            feeds.append(VideoFeed(wire, MediaType.DESKSHARE, p.deskshare, self.script.sharer_at,
                                   self.video_source, *args))
        if feeds:
            self._feeds[socket] = feeds

    def _video_subject(self, offset_ms: int) -> Speaker | None:
        """The participant subscribed to (VIDEO_SUBSCRIPTION_REQ), while their video is on."""
        user = self.session.video_user
        if user is None or (not self.zcc and user not in self.script.video_on_at(offset_ms)):
            return None
        return next((p for p in self.script.participants if p.user_id == user), None)

    def tick(self, now: float) -> None:
        """Send everything due by `now` (called by the pacer every 20 ms)."""
        session = self.session
        if session.silent(now):  # a `silent` fault: what falls due waits
            return
        if session.paused_until is not None:  # paused: what falls due is lost (dropped on resume)
            return
        if now >= session.end_at:  # nothing past the meeting's end; the supervisor stops it
            now = session.end_at
            self.wake()
        assert self.t0 is not None
        elapsed = (now - self.t0) * 1000
        timeline = self._timeline
        while self._cursor < len(timeline) and timeline[self._cursor][0] <= elapsed:
            self._dispatch(timeline[self._cursor][1])
            self._cursor += 1
        for feeds in self._feeds.values():
            for feed in feeds:
                feed.pump(now)
        if self.injector.fuzzing:
            self.injector.fuzz()
            self._apply()

    def _send_the_rest(self) -> None:
        """Everything due by the meeting's end, however late the pacer's last tick was: a
        meeting of D seconds carries D seconds of media."""
        end_at = self.session.end_at
        self.tick(end_at)
        if self.session.silent(end_at):  # a `silent` fault holds everything, as in `tick`
            return
        for feeds in self._feeds.values():
            for feed in feeds:
                while feed.pump(end_at) == MAX_CATCH_UP:
                    pass

    def _dispatch(self, item: Utterance | ChatLine | ScriptEvent) -> None:
        if isinstance(item, ScriptEvent):
            self.session.scripted_event(item.event.event_type)
            self._send_event(item.event, self.t0_ms + item.at_ms)
            return
        kind = MediaType.TRANSCRIPT if isinstance(item, Utterance) else MediaType.CHAT
        socket = self.session.served.get(kind)
        wire = self._wires.get(socket) if socket is not None else None
        if socket is None or wire is None or not socket.live:
            self.record.sent.dropped += 1
        elif isinstance(item, Utterance):
            params = socket.params.transcript if socket.params is not None else None
            msg = transcript_message(item, self.t0_ms, params, zcc=self.zcc,
                                     lid_warmup_ms=int(self.settings.lid_warmup_s * 1000))
            self._send_text(wire, msg)
            self.record.transcripts.append(msg.content)
            self.record.sent.transcripts += 1
        else:
            chat = chat_message(item, self.t0_ms)
            self._send_text(wire, chat)
            self.record.chat.append(chat.content)
            self.record.sent.chat += 1

    def _send_event(self, event: Event, at_ms: int | None = None) -> None:
        signaling = self.session.signaling
        if signaling is None or not self.session.wants_event(event.event_type):
            return
        wire = self._wires.get(signaling)
        if wire is None:
            return
        self._send_text(wire, event_message(event, at_ms or now_ms()))
        self.record.events[event.event_type] += 1
        self.record.sent.events += 1

    def _send_text(self, wire: Wire, msg: TranscriptData | ChatData | EventUpdate) -> None:
        if self.settings.future_fields:
            wire.send(with_future_fields(msg))
        else:
            wire.send_message(msg)

    # ---- stop ---------------------------------------------------------------------------

    async def stop(self, reason: StopReason) -> None:
        """End the stream: state updates, participants leave, sockets close with 1000."""
        session = self.session
        if session.phase is Phase.STOPPED:
            return
        if reason == StopReason.MEETING_ENDED and session.phase is Phase.STREAMING:
            self._send_the_rest()
        streamed = session.stop(reason)
        self._apply()
        sig = session.signaling
        if streamed and sig is not None and sig.live:
            # Media ends before the terminate update: the last frames are already on the
            # wire when a client that tears down on TERMINATED hears about it.
            await asyncio.sleep(MEDIA_DRAIN_S)
        if sig is not None and sig.live:
            session.farewell(reason, now_ms(), streamed=streamed)
            self._apply()
            if streamed and not self.zcc:
                self._send_event(Event(event_type=int(EventType.PARTICIPANT_LEAVE),
                                       participants=_participants(self._present(), names=False)))
        wires = [self._wires[s] for s in (sig, *session.media) if s is not None and s in self._wires]
        for wire in wires:
            wire.close()
        if wires:
            waits = [asyncio.ensure_future(w.wait_closed()) for w in wires]
            _, late = await asyncio.wait(waits, timeout=1.5)
            for task in late:
                task.cancel()
        self.wake()


def _participants(people: list[Speaker], *, names: bool) -> list[Participant]:
    return [Participant(user_id=p.user_id, user_name=p.user_name if names else None) for p in people]
