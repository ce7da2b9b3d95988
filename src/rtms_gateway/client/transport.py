"""The seam between a stream and its sockets, and between a stream and time.

A stream opens each WebSocket through a `Transport` and waits through a `Clock`. In
service they are picows (`connection.PicowsTransport`, the only module that touches it)
and the system's monotonic clock; in tests they are in memory (`memory`), so a test
scripts Zoom's side with real protocol messages and moves time on by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..protocol.errors import ConnectionLost
from ..protocol.session import SessionEvent

if TYPE_CHECKING:
    from ..protocol.session import MediaSession, SignalingSession

T = TypeVar("T")


class Session(Protocol):
    """What a socket needs of a protocol session (`SignalingSession`, `MediaSession`)."""

    def receive(self, data: bytes | memoryview | str, now: float) -> SessionEvent | None: ...
    def data_to_send(self) -> list[bytes]: ...
    def closed(self) -> None: ...
    def silent_for(self, now: float) -> float: ...


if TYPE_CHECKING:
    def _sessions_are_sessions(signaling: SignalingSession, media: MediaSession) -> list[Session]:
        """Never called: mypy checks here that the real sessions keep to `Session`."""
        return [signaling, media]


class Socket(Protocol):
    """One open WebSocket whose frames feed a session."""

    @property
    def name(self) -> str: ...
    @property
    def is_open(self) -> bool: ...

    def flush(self) -> None:
        """Send whatever the session queued (handshakes, keep-alive answers, acks)."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    async def wait_closed(self) -> int | None:
        """Until the socket is closed, by either side; its close code if one came."""

    async def close(self) -> None:
        """Close with 1000 and wait for the peer (bounded)."""


# Called with each event the session returns for a received frame (never None), in order.
EventHandler = Callable[[Socket, SessionEvent], None]


class Transport(Protocol):
    async def connect(self, url: str, session: Session, on_event: EventHandler, *,
                      name: str, timeout: float) -> Socket:
        """A socket to `url` whose frames feed `session`; ConnectionLost if it cannot."""


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


async def _race(clock: Clock, waited: asyncio.Future[T], timeout: float) -> bool:
    """Whether `waited` is done before `timeout` seconds of `clock` pass."""
    if waited.done():
        return True
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait((waited, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return waited.done()


async def first_of(clock: Clock, waited: asyncio.Future[T], timeout: float, what: str) -> T:
    """`waited`'s result, or ConnectionLost naming `what` if `timeout` seconds of `clock`
    pass first; `waited` itself is left alone (not cancelled) either way."""
    if await _race(clock, waited, timeout):
        return waited.result()
    raise ConnectionLost(f"{what}: no answer within {timeout:g} s")


async def until_set(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds of `clock`; whether it was set."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        return await _race(clock, waiter, timeout)
    finally:
        waiter.cancel()
