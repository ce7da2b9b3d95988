"""One RTMS stream as Zoom runs it: its sockets, media timeline, keep-alives,
interruptions and stop. The server decides whether a handshake is accepted; the stream
holds what follows from it.

Phases:

    WAITING --signaling ok--> CONNECTED --CLIENT_READY_ACK--> STREAMING
    CONNECTED (never streamed) --signaling lost--> WAITING
    STREAMING | CONNECTED (streamed before) --signaling lost / 3 keep-alives missed--> INTERRUPTED
    INTERRUPTED --signaling ok--> CONNECTED --ready--> STREAMING (resumed)
    any --stop()--> STOPPED

All methods but `stop()` are synchronous and run inside picows callbacks or the pacer's
tick; the meeting's supervisor (runner) calls `poll()` for timers and `stop()` to end.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from picows import WSCloseCode

from ..protocol.constants import (
    AUTOMATIC_EVENTS,
    KEEP_ALIVE_INTERVAL_S,
    KEEP_ALIVE_MAX_MISSED,
    MEDIA_RECONNECT_WINDOW_S,
    SIGNALING_RECONNECT_WINDOW_S,
    SINGLE_MEDIA_TYPES,
    DataOption,
    EventType,
    MediaType,
    Product,
    SessionState,
    StatusCode,
    StopReason,
    StreamState,
)
from ..protocol.messages import (
    ClientReadyAck,
    DataHandshakeReq,
    Event,
    EventSubscription,
    EventSubscriptionItem,
    KeepAliveReq,
    KeepAliveResp,
    MediaParams,
    Participant,
    SessionStateReq,
    SessionStateResp,
    SessionStateUpdate,
    SignalingHandshakeReq,
    StreamCloseReq,
    StreamCloseResp,
    StreamStateReq,
    StreamStateResp,
    StreamStateUpdate,
    VideoSubscriptionReq,
    VideoSubscriptionResp,
)
from .media import (
    MAX_CATCH_UP,
    AudioFeed,
    VideoFeed,
    VideoSource,
    chat_message,
    event_message,
    transcript_message,
)
from .records import HandshakeRecord, MeetingRecord, TimestampJitter
from .faults import Fault, FaultKind, garbage_frame
from .scenario import CHUNK_MS, ChatLine, MeetingScript, ScriptEvent, Speaker, Utterance, present_at
from .video import TestPatternVideo

if TYPE_CHECKING:
    from .pacer import Pacer
    from .servers import Connection, RTMSServer


MEDIA_DRAIN_S = 0.25  # gap between the last media frame and the terminate update

class Phase(Enum):
    WAITING = "waiting"
    CONNECTED = "connected"
    STREAMING = "streaming"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    keepalive_interval: float = KEEP_ALIVE_INTERVAL_S
    signaling_reconnect_window: float = SIGNALING_RECONNECT_WINDOW_S
    media_reconnect_window: float = MEDIA_RECONNECT_WINDOW_S
    timestamp_jitter_ms: int = 0  # media timestamps off their slot by up to this, either way


# What a `malformed` fault sends: not JSON, JSON that is not an object, and messages of
# known types with fields of the wrong shape.
MALFORMED_FRAMES = (
    b"\x00\xffnot json at all",
    b"[1, 2, 3]",
    b'{"msg_type": "fourteen"}',
    b'{"msg_type": 17, "content": "not an object"}',
    b'{"msg_type": 14, "content": {"data": "%%%not base64%%%", "timestamp": 1}}',
)

FUZZ_PER_TICK = 200  # garbage frames per 20 ms tick: 10,000/s
STARTUP_BUFFER_S = 60.0  # Zoom holds at most this much audio from the start webhook


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SimStream:
    def __init__(self, script: MeetingScript, server: RTMSServer, pacer: Pacer,
                 settings: StreamSettings = StreamSettings(),
                 video_source: VideoSource | None = None) -> None:
        self.script = script
        self.server = server
        self.pacer = pacer
        self.settings = settings
        self.video_source = video_source or TestPatternVideo()
        self.record = MeetingRecord(product=str(script.product), owner_id=script.owner_id,
                                    rtms_stream_id=script.rtms_stream_id,
                                    rtms_session_id=script.rtms_session_id)
        if settings.timestamp_jitter_ms:
            self.record.jitter = TimestampJitter(settings.timestamp_jitter_ms,
                                                 f"rtms-sim-jitter:{script.rtms_stream_id}")
        self.phase = Phase.WAITING
        self.signaling: Connection | None = None
        self.media: list[Connection] = []
        self.served: dict[MediaType, Connection] = {}
        self.subscribed: set[int] = set()
        self.video_user: int | str | None = None
        self.t0: float | None = None
        self.end_at = float("inf")
        self.stop_requested: StopReason | None = None
        self.interruptions_to_report = 0
        # For startup buffering: when rtms_started went out, and whether the client
        # declined the buffer (`buffer_data: false` in its signaling handshake).
        self.announced_at: float | None = None
        self.announced_ms: int | None = None
        self.buffer_data = True
        self._buffering = False  # true while the first feeds start: audio from t0, in a burst
        self._started_once = False  # feeds started later are a resumption
        self.silent_until = 0.0  # faults (see `inject`)
        self._fuzz_left = 0
        self._fuzz_rng = random.Random(0)
        self.reject_next: int | None = None
        self._feeds: dict[Connection, list[AudioFeed | VideoFeed]] = {}
        self._timeline = script.timeline()
        self._cursor = 0
        self._join_missed = False
        self._deadline: float | None = None  # reconnection window of an interruption
        self._deadline_reason = StopReason.AWAIT_RECONNECTION_TIMEOUT
        self._media_lost = MediaType.UNDEFINED
        self._media_deadline: float | None = None
        self._media_reason = StopReason.AWAIT_RECONNECTION_TIMEOUT
        self._changed = asyncio.Event()
        self._clock = asyncio.get_running_loop().time

    @property
    def ended(self) -> bool:
        return self.phase is Phase.STOPPED

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
        except asyncio.TimeoutError:
            pass
        self._changed.clear()

    # ---- sockets (attached by the server once their handshake is accepted) -------------

    @property
    def signaling_live(self) -> bool:
        return self.signaling is not None and self.signaling.live

    def media_in_use(self) -> tuple[bool, MediaType]:
        """Whether an `all` socket is open, and the media types live sockets carry."""
        taken, unified = MediaType.UNDEFINED, False
        for conn in self.media:
            if conn.live:
                taken |= conn.media
                unified = unified or conn.unified
        return unified, taken

    def take_over(self) -> None:
        """A newcomer replaces the live signaling socket, and its media sockets with it."""
        self._drop_sockets(WSCloseCode.POLICY_VIOLATION, "replaced by a new signaling connection")
        if self.phase is Phase.STREAMING:
            self.phase = Phase.CONNECTED  # streaming resumes on the newcomer's ready

    def attach_signaling(self, conn: Connection, req: SignalingHandshakeReq) -> None:
        conn.stream = self
        self.signaling = conn
        self.buffer_data = req.buffer_data is not False
        self.record.handshakes.append(HandshakeRecord(conn.label, int(StatusCode.OK), ""))
        # The session's first packet: the first buffered one if Zoom buffers, else now.
        first = self.record.t0_ms
        if first is None:
            first = self.announced_ms if self.buffer_data and self.announced_ms is not None else now_ms()
        self._send_event(Event(event_type=int(EventType.FIRST_PACKET_TIMESTAMP), timestamp=first))
        if self.phase in (Phase.WAITING, Phase.INTERRUPTED):
            self.phase = Phase.CONNECTED
            self._deadline = None
        self.wake()

    def attach_media(self, conn: Connection, wanted: MediaType, params: MediaParams) -> None:
        conn.stream = self
        conn.media = wanted
        conn.params = params
        self.media.append(conn)
        for kind in SINGLE_MEDIA_TYPES:
            if wanted & kind:
                self.served[kind] = conn
        self.record.handshakes.append(HandshakeRecord(conn.label, int(StatusCode.OK), ""))
        self._media_lost &= ~wanted
        if not self._media_lost:
            self._media_deadline = None
        if self.phase is Phase.STREAMING:
            self._start_feeds(conn)
        self.wake()

    # ---- messages on attached sockets --------------------------------------------------

    def on_message(self, conn: Connection, msg: object) -> None:
        kind = type(msg)
        sig = conn is self.signaling
        if kind is KeepAliveResp:
            self._on_keepalive(conn, msg)  # type: ignore[arg-type]
        elif kind is ClientReadyAck and sig:
            self.record.ready_acks += 1
            if self.phase is Phase.CONNECTED:
                self._start_streaming()
        elif kind is EventSubscription and sig:
            self._on_subscription(msg)  # type: ignore[arg-type]
        elif kind is StreamCloseReq and sig:
            conn.send_message(StreamCloseResp(status_code=int(StatusCode.OK), reason="OK",
                                              rtms_stream_id=self.script.rtms_stream_id, timestamp=now_ms()))
            self.record.close_requested = True
            self.stop_requested = StopReason.RECEIVER_REQUEST_CLOSE
            self.wake()
        elif kind is StreamStateReq and sig:
            stream_state = StreamState.ACTIVE if self.phase is Phase.STREAMING else StreamState.INACTIVE
            conn.send_message(StreamStateResp(state=int(stream_state), rtms_stream_id=self.script.rtms_stream_id,
                                              timestamp=now_ms()))
        elif kind is SessionStateReq and sig:
            session = SessionState.STARTED if self.phase is Phase.STREAMING else SessionState.INACTIVE
            conn.send_message(SessionStateResp(state=int(session), rtms_session_id=self.script.rtms_session_id,
                                               timestamp=now_ms()))
        elif kind is VideoSubscriptionReq and sig:
            self._on_video_subscription(conn, msg)  # type: ignore[arg-type]
        else:
            if kind in (SignalingHandshakeReq, DataHandshakeReq):  # again, on a socket that did it
                status = StatusCode.DUPLICATE_SIGNAL_REQUEST if sig else StatusCode.DUPLICATE_MEDIA_DATA_CONNECTION
                self.server.reply(conn, status, "this socket already completed its handshake",
                                  msg.sequence)  # type: ignore[attr-defined]
            self.record.unexpected[f"{conn.label}:{kind.__name__}"] += 1

    def _on_keepalive(self, conn: Connection, msg: KeepAliveResp) -> None:
        if msg.timestamp is not None and msg.timestamp in conn.ka_pending:
            conn.ka_pending.clear()
            self.record.keepalives_answered[conn.label] += 1
        else:
            self.record.keepalive_bad_echoes += 1

    def _on_subscription(self, msg: EventSubscription) -> None:
        for item in msg.events:
            if not isinstance(item, EventSubscriptionItem):
                self.record.unexpected["signaling:EventSubscription item"] += 1
            elif item.event_type in AUTOMATIC_EVENTS:
                continue  # always sent; subscribing changes nothing
            elif item.subscribe:
                self.subscribed.add(item.event_type)
            else:
                self.subscribed.discard(item.event_type)
        self.record.subscribed = set(self.subscribed)
        if self._join_missed and EventType.PARTICIPANT_JOIN in self.subscribed:
            # who is already here, for a client that subscribed after the first joins
            self._join_missed = False
            self._send_event(Event(event_type=int(EventType.PARTICIPANT_JOIN),
                                   participants=_participants(self._present(), names=True)))

    def _on_video_subscription(self, conn: Connection, msg: VideoSubscriptionReq) -> None:
        status, reason = StatusCode.OK, ""
        if msg.subscribe and msg.user_id == self.video_user:
            status, reason = StatusCode.DUPLICATE_VIDEO_SUBSCRIPTION, "already subscribed to this user"
        elif msg.subscribe:
            self.video_user = msg.user_id
        elif msg.user_id == self.video_user:
            self.video_user = None
        conn.send_message(VideoSubscriptionResp(user_id=msg.user_id, status_code=int(status), reason=reason,
                                                subscribe=msg.subscribe, timestamp=now_ms()))

    # ---- streaming ----------------------------------------------------------------------

    def _present(self) -> list[Speaker]:
        return present_at(self.script, int((self._clock() - (self.t0 or 0)) * 1000))

    def _start_streaming(self) -> None:
        now = self._clock()
        resumed = self.t0 is not None
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
            # It streams `duration_s` from now, however long the client took to connect.
            self.end_at = now + self.script.duration_s
            self._buffering = self.buffer_data
        else:  # back from an interruption: what was due meanwhile is lost
            elapsed = (now - self.t0) * 1000
            while self._cursor < len(self._timeline) and self._timeline[self._cursor][0] <= elapsed:
                self._cursor += 1
                self.record.sent.dropped += 1
        self.phase = Phase.STREAMING
        stamp = now_ms()
        if self.signaling is not None:
            self.signaling.send_message(StreamStateUpdate(
                state=int(StreamState.ACTIVE), reason=int(StopReason.UNDEFINED), timestamp=stamp))
            self.signaling.send_message(SessionStateUpdate(
                state=int(SessionState.RESUMED if resumed else SessionState.STARTED), timestamp=stamp,
                reason=int(StopReason.UNDEFINED), rtms_session_id=self.script.rtms_session_id))
        # Zoom's startup buffer: audio since the start webhook, sent ahead of the live
        # feeds as fast as the pacer's catch-up allows (unless the client declined it).
        for conn in self.media:
            if conn.live:
                self._start_feeds(conn)
        self._buffering = False
        self._started_once = True
        self.pacer.add(self)
        self.wake()

    def _start_feeds(self, conn: Connection) -> None:
        assert self.t0 is not None
        start_ms = int((self._clock() - self.t0) * 1000)
        jitter = self.record.jitter
        args = (self.t0, self.t0_ms, start_ms, self.record.sent, jitter)
        p = conn.params
        assert p is not None
        feeds: list[AudioFeed | VideoFeed] = []
        if p.audio is not None:
            # Live audio starts with the next packet boundary: none is stamped before now.
            first = -(-start_ms // CHUNK_MS) * CHUNK_MS
            if self._buffering:
                first = 0
                self.record.sent.buffered += start_ms // CHUNK_MS
            elif self._started_once:
                self.record.resumed_at_ms.append(first)
            feeds.append(AudioFeed(conn, self.script, p.audio, self.t0, self.t0_ms, first, self.record.sent,
                                   zcc=self.zcc, jitter=jitter))
        if p.video is not None:
            who = self._video_subject if p.video.data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM \
                else self.script.active_speaker_at
            feeds.append(VideoFeed(conn, MediaType.VIDEO, p.video, who, self.video_source, *args))
        if p.deskshare is not None:
            feeds.append(VideoFeed(conn, MediaType.DESKSHARE, p.deskshare, self.script.sharer_at,
                                   self.video_source, *args))
        if feeds:
            self._feeds[conn] = feeds

    def _video_subject(self, offset_ms: int) -> Speaker | None:
        return next((p for p in self.script.participants if p.user_id == self.video_user), None)

    def tick(self, now: float) -> None:
        """Send everything due by `now` (called by the pacer every 20 ms)."""
        if now < self.silent_until:  # a `silent` fault: what falls due waits
            return
        if now >= self.end_at:  # nothing past the meeting's end; the supervisor stops it
            now = self.end_at
            self.wake()
        elapsed = (now - self.t0) * 1000  # type: ignore[operator]
        timeline = self._timeline
        while self._cursor < len(timeline) and timeline[self._cursor][0] <= elapsed:
            self._dispatch(timeline[self._cursor][1])
            self._cursor += 1
        for feeds in self._feeds.values():
            for feed in feeds:
                feed.pump(now)
        if self._fuzz_left:
            self._send_garbage()

    def _send_the_rest(self) -> None:
        """Everything due by the meeting's end, however late the pacer's last tick was: a
        meeting of D seconds carries D seconds of media."""
        self.tick(self.end_at)
        if self.end_at < self.silent_until:  # a `silent` fault holds everything, as in `tick`
            return
        for feeds in self._feeds.values():
            for feed in feeds:
                while feed.pump(self.end_at) == MAX_CATCH_UP:
                    pass

    def _send_garbage(self) -> None:
        """A share of the `fuzz` fault's frames per tick, over every live socket."""
        live = [c for c in (self.signaling, *self.media) if c is not None and c.live]
        if not live:
            return
        rng = self._fuzz_rng
        for _ in range(min(FUZZ_PER_TICK, self._fuzz_left)):
            conn = rng.choice(live)
            conn.send(garbage_frame(rng, conn.last_payload))
            self._fuzz_left -= 1
            self.record.garbage_sent += 1

    def _dispatch(self, item: Utterance | ChatLine | ScriptEvent) -> None:
        if isinstance(item, ScriptEvent):
            if item.event.event_type == EventType.PARTICIPANT_JOIN and item.event.event_type not in self.subscribed:
                self._join_missed = True
            self._send_event(item.event, self.t0_ms + item.at_ms)
            return
        kind = MediaType.TRANSCRIPT if isinstance(item, Utterance) else MediaType.CHAT
        conn = self.served.get(kind)
        if conn is None or not conn.live:
            self.record.sent.dropped += 1
        elif isinstance(item, Utterance):
            params = conn.params.transcript if conn.params is not None else None
            msg = transcript_message(item, self.t0_ms, params, zcc=self.zcc)
            conn.send_message(msg)
            self.record.transcripts.append(msg.content)
            self.record.sent.transcripts += 1
        else:
            chat = chat_message(item, self.t0_ms)
            conn.send_message(chat)
            self.record.chat.append(chat.content)
            self.record.sent.chat += 1

    def _send_event(self, event: Event, at_ms: int | None = None) -> None:
        kind = event.event_type
        if not self.signaling_live or (kind not in self.subscribed and kind not in AUTOMATIC_EVENTS):
            return
        self.signaling.send_message(event_message(event, at_ms or now_ms()))  # type: ignore[union-attr]
        self.record.events[kind] += 1
        self.record.sent.events += 1

    # ---- keep-alive, losses, timers -----------------------------------------------------

    def poll(self, now: float) -> StopReason | None:
        """Keep-alives and deadlines; the reason to stop now, if any."""
        if self.stop_requested is not None:
            return self.stop_requested
        if now >= self.end_at:
            return StopReason.MEETING_ENDED
        if self._deadline is not None and now >= self._deadline:
            return self._deadline_reason
        if self._media_deadline is not None and now >= self._media_deadline:
            return self._media_reason
        interval = self.settings.keepalive_interval
        if now < self.silent_until:
            return None
        for conn in [self.signaling, *self.media]:
            if conn is None or not conn.live or now - conn.last_sent < interval:
                continue
            if len(conn.ka_pending) >= KEEP_ALIVE_MAX_MISSED:
                if conn is self.signaling:
                    self._interrupt(StopReason.KEEP_ALIVE_TIMEOUT)
                    return None
                self._lose_media(conn, StopReason.KEEP_ALIVE_TIMEOUT)
                continue
            conn.ka_sequence += 1
            stamp = now_ms()
            conn.ka_pending.append(stamp)
            conn.send_message(KeepAliveReq(timestamp=stamp, sequence=conn.ka_sequence))
            self.record.keepalives_sent[conn.label] += 1
            self.record.sent.keepalives += 1
        return None

    def on_disconnected(self, conn: Connection) -> None:
        self._feeds.pop(conn, None)
        if self.phase is Phase.STOPPED:
            return
        if conn is self.signaling:
            self.signaling = None
            if self.t0 is None:
                self.phase = Phase.WAITING  # never streamed: just wait for the client again
            else:
                self._interrupt(StopReason.AWAIT_RECONNECTION_TIMEOUT)
        elif conn in self.media:
            self._lose_media(conn, StopReason.AWAIT_RECONNECTION_TIMEOUT)

    def _interrupt(self, reason: StopReason) -> None:
        """Signaling is gone: drop every socket, tell the app by webhook, wait for it."""
        if self.phase is Phase.INTERRUPTED:
            return
        self.phase = Phase.INTERRUPTED
        self._drop_sockets(WSCloseCode.GOING_AWAY,
                           "keep-alive timeout" if reason == StopReason.KEEP_ALIVE_TIMEOUT else "")
        self._deadline = self._clock() + self.settings.signaling_reconnect_window
        self._deadline_reason = reason
        self.record.interruptions += 1
        self.interruptions_to_report += 1
        self.wake()

    def _drop_sockets(self, code: WSCloseCode, reason: str) -> None:
        self.pacer.remove(self)
        self._feeds.clear()
        for conn in [self.signaling, *self.media]:
            if conn is not None:
                conn.stream = None  # its disconnect is no news any more
                conn.close(code, reason)
        self.signaling = None
        self.media.clear()
        self.served.clear()
        self._media_lost = MediaType.UNDEFINED
        self._media_deadline = None

    def _lose_media(self, conn: Connection, reason: StopReason) -> None:
        """A media socket is gone: tell the client on signaling and wait for a new one."""
        self._feeds.pop(conn, None)
        self.media.remove(conn)
        for kind in [k for k, c in self.served.items() if c is conn]:
            del self.served[kind]
        conn.stream = None
        conn.close(WSCloseCode.GOING_AWAY)
        self.record.media_interruptions += 1
        self._send_event(Event(event_type=int(EventType.MEDIA_CONNECTION_INTERRUPTED), timestamp=now_ms()))
        self._media_lost |= conn.media
        if self._media_deadline is None:
            self._media_deadline = self._clock() + self.settings.media_reconnect_window
            self._media_reason = reason
        self.wake()

    # ---- faults -------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Do one socket-level fault now (the runner does the webhook ones)."""
        kind = fault.kind
        self.record.faults.append(str(fault))
        media = [c for c in self.media if c.live]
        live = [c for c in (self.signaling, *self.media) if c is not None and c.live]
        if kind is FaultKind.DROP_SIGNALING and self.signaling is not None:
            self.signaling.drop()
        elif kind is FaultKind.DROP_MEDIA and media:
            media[0].drop()
        elif kind is FaultKind.SILENT:
            self.silent_until = self._clock() + (fault.value or 0)
        elif kind is FaultKind.REJECT:
            self.reject_next = int(fault.value or StatusCode.INVALID_SIGNATURE)
            if self.signaling is not None:
                self.signaling.drop()  # so that the client has to handshake again
        elif kind is FaultKind.MALFORMED:
            for conn in live:
                for junk in MALFORMED_FRAMES:
                    conn.send(junk)
        elif kind is FaultKind.TRUNCATED:
            for conn in live:
                whole = conn.last_payload or b'{"msg_type":12,"timestamp":1}'
                conn.send(whole[: max(1, len(whole) // 2)])
        elif kind is FaultKind.UNKNOWN_TYPE:
            for conn in live:
                conn.send(b'{"msg_type":99,"content":{"data":"from the future"}}')
                conn.send(b'{"msg_type":0}')
        elif kind is FaultKind.DUPLICATE:
            for conn in media:
                for data in list(conn.recent):
                    conn.send(data)
        elif kind is FaultKind.SLOW_READER:
            for conn in live:
                conn.pause_reading_for(fault.value or 0)
        elif kind is FaultKind.FUZZ:
            self._fuzz_left += int(fault.value or 0)
            self._fuzz_rng = random.Random(f"rtms-fuzz:{self.script.rtms_stream_id}:{fault}")

    # ---- stop ---------------------------------------------------------------------------

    async def stop(self, reason: StopReason) -> None:
        """End the stream: state updates, participants leave, sockets close with 1000."""
        if self.phase is Phase.STOPPED:
            return
        started = self.t0 is not None and self.phase is not Phase.INTERRUPTED
        if reason == StopReason.MEETING_ENDED and self.phase is Phase.STREAMING:
            self._send_the_rest()
        self.phase = Phase.STOPPED
        self.pacer.remove(self)
        self._feeds.clear()
        self.record.stop_reason = int(reason)
        sig = self.signaling
        if started and sig is not None and sig.live:
            # Media ends before the terminate update: the last frames are already on the
            # wire when a client that tears down on TERMINATED hears about it.
            await asyncio.sleep(MEDIA_DRAIN_S)
        if sig is not None and sig.live:
            stamp = now_ms()
            sig.send_message(StreamStateUpdate(state=int(StreamState.TERMINATED), reason=int(reason),
                                               timestamp=stamp))
            if started:
                sig.send_message(SessionStateUpdate(state=int(SessionState.STOPPED), timestamp=stamp,
                                                    rtms_session_id=self.script.rtms_session_id,
                                                    reason=int(reason), stop_reason=int(reason)))
            if started and not self.zcc:
                self._send_event(Event(event_type=int(EventType.PARTICIPANT_LEAVE),
                                       participants=_participants(self._present(), names=False)))
        conns = [c for c in (sig, *self.media) if c is not None]
        for conn in conns:
            conn.close(WSCloseCode.OK)
        if conns:
            waits = [asyncio.ensure_future(c.wait_closed()) for c in conns]
            _, late = await asyncio.wait(waits, timeout=1.5)
            for task in late:
                task.cancel()
        self.wake()


def _participants(people: list[Speaker], *, names: bool) -> list[Participant]:
    return [Participant(user_id=p.user_id, user_name=p.user_name if names else None) for p in people]
