"""Controlling a stream the gateway holds: ask Zoom to close it (STREAM_CLOSE_REQ, 21 ->
22; the stream then ends with stop reason 20), and subscribe to one participant's video
(VIDEO_SUBSCRIPTION_REQ, 28 -> 29). Each request waits for Zoom's answer, bounded in time
and in how many wait at once.

With `RTMS_VIDEO_STREAM=individual` Zoom sends one participant's video only once asked:
`VideoFollower` asks by itself, for the active speaker as each speaker change says (or,
with `RTMS_VIDEO_FOLLOW`, for the participant of that user id or name, once they join).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.constants import EventType, StatusCode, status_name
from ..protocol.errors import LocalProtocolError
from ..protocol.messages import (
    Event,
    EventUpdate,
    ReceivedMessage,
    StreamCloseResp,
    UserId,
    VideoSubscriptionResp,
)
from ..protocol.session import SignalingState
from .stream import RtmsStream

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0
MAX_WAITING = 16  # requests waiting for Zoom's answer, per stream


class NotHeld(LookupError):
    """The gateway holds no such stream (never had it, or it ended)."""


class NotReady(RuntimeError):
    """The stream cannot take the request now (not ready yet, or closing)."""


class TooMany(RuntimeError):
    """Too many requests of this stream wait for Zoom's answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Zoom's answer to a control request (None: none came in time)."""

    status_code: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code == StatusCode.OK

    def to_json(self) -> dict[str, Any]:
        code = self.status_code
        return {"status_code": code, "status": None if code is None else status_name(code),
                "reason": self.reason, "answered": code is not None}


_Key = tuple[str, str]  # (stream id, what the answer is to)


class StreamControl:
    """Requests to held streams and Zoom's answers to them (fed by the stream manager)."""

    def __init__(self, streams: Callable[[str], RtmsStream | None], *,
                 timeout: float = ANSWER_TIMEOUT_S) -> None:
        self._streams = streams
        self.timeout = timeout
        self._waiting: dict[_Key, list[asyncio.Future[Answer]]] = {}
        self.counters = {"close_requests": 0, "video_requests": 0}

    def answered(self, stream_id: str, msg: ReceivedMessage) -> None:
        """A message from a stream's signaling: resolves the requests it answers."""
        match msg:
            case StreamCloseResp(status_code=code, reason=reason):
                self._resolve((stream_id, "close"), Answer(code, reason))
            case VideoSubscriptionResp(user_id=user, status_code=code, reason=reason):
                self._resolve((stream_id, f"video:{user}"), Answer(code, reason))
            case _:
                pass

    async def close(self, stream_id: str) -> Answer:
        """Ask Zoom to end the stream; its answer. NotHeld, NotReady, TooMany."""
        stream = self._held(stream_id)
        waiter = self._wait((stream_id, "close"))
        try:
            stream.signaling.request_close()
        except LocalProtocolError as exc:
            self._drop((stream_id, "close"), waiter)
            raise NotReady(f"stream cannot be closed now: {exc}") from None
        _flush(stream)
        self.counters["close_requests"] += 1
        log.info("stream %s: close requested", stream_id)
        return await self._answer((stream_id, "close"), waiter)

    async def video(self, stream_id: str, user_id: int, subscribe: bool) -> Answer:
        """Subscribe to (or leave) one participant's video; Zoom's answer."""
        stream = self._held(stream_id)
        key = (stream_id, f"video:{user_id}")
        waiter = self._wait(key)
        try:
            stream.signaling.subscribe_video(user_id, subscribe, int(time.time() * 1000))
        except LocalProtocolError as exc:
            self._drop(key, waiter)
            raise NotReady(str(exc)) from None
        _flush(stream)
        self.counters["video_requests"] += 1
        return await self._answer(key, waiter)

    def _held(self, stream_id: str) -> RtmsStream:
        stream = self._streams(stream_id)
        if stream is None or stream.outcome is not None:
            raise NotHeld(stream_id)
        if stream.signaling.state not in (SignalingState.CONNECTED, SignalingState.READY):
            raise NotReady(f"stream is {stream.signaling.state.value}")
        return stream

    def _wait(self, key: _Key) -> asyncio.Future[Answer]:
        stream_id = key[0]
        if sum(len(w) for k, w in self._waiting.items() if k[0] == stream_id) >= MAX_WAITING:
            raise TooMany(f"{MAX_WAITING} requests of this stream wait for Zoom's answer")
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(waiter)
        return waiter

    def _drop(self, key: _Key, waiter: asyncio.Future[Answer]) -> None:
        waiters = self._waiting.get(key, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiting.pop(key, None)

    async def _answer(self, key: _Key, waiter: asyncio.Future[Answer]) -> Answer:
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except TimeoutError:
            return Answer(None, "no answer from Zoom in time")
        finally:
            self._drop(key, waiter)

    def _resolve(self, key: _Key, answer: Answer) -> None:
        waiters = self._waiting.pop(key, [])
        for waiter in waiters:  # the same request twice: one answer for both
            if not waiter.done():
                waiter.set_result(answer)


class VideoFollower:
    """`RTMS_VIDEO_STREAM=individual`: keep one participant's video subscribed, without
    being asked. `follow` is a user id or a user name (None: the active speaker)."""

    def __init__(self, control: StreamControl, follow: str | None = None) -> None:
        self.control = control
        self.follow = follow
        # Per connection (a reconnect starts with no subscription): the user subscribed to.
        self._current: weakref.WeakKeyDictionary[RtmsStream, int] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_message(self, stream: RtmsStream, msg: ReceivedMessage) -> None:
        if not isinstance(msg, EventUpdate):
            return
        event = msg.event
        user: UserId | None = None
        if self.follow is None and event.event_type == EventType.ACTIVE_SPEAKER_CHANGE:
            user = event.user_id
        elif self.follow is not None and event.event_type == EventType.PARTICIPANT_JOIN:
            user = _followed(event, self.follow)
        if isinstance(user, str):  # Zoom documents uint32; a numeric string is taken as one
            user = int(user) if user.isdigit() else None
        if not user or self._current.get(stream) == user:
            return
        self._current[stream] = user
        task = asyncio.get_running_loop().create_task(self._subscribe(stream.stream_id, user))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, stream_id: str, user: int) -> None:
        try:
            answer = await self.control.video(stream_id, user, True)
        except (NotHeld, NotReady, TooMany) as exc:
            log.info("stream %s: video of the followed participant not asked (%s)",
                     stream_id, type(exc).__name__)
            return
        if not answer.ok and answer.status_code != StatusCode.DUPLICATE_VIDEO_SUBSCRIPTION:
            log.warning("stream %s: Zoom refused the video subscription: %s %s", stream_id,
                        answer.status_code, answer.reason)


def _followed(event: Event, follow: str) -> UserId | None:
    """The user id of the followed participant among those the join event names."""
    candidates = [(p.user_id, p.user_name) for p in event.participants or []]
    if event.user_id is not None:
        candidates.append((event.user_id, event.user_name))
    for user_id, user_name in candidates:
        if str(user_id) == follow or user_name == follow:
            return user_id
    return None


def _flush(stream: RtmsStream) -> None:
    socket = stream.signaling_socket
    if socket is not None:
        socket.flush()
