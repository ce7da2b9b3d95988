"""A transport and a clock in memory, for tests: no socket, no sleep.

A test plays Zoom's side of each socket the client opens, with the protocol's own encoder
and decoder, and moves time on by hand:

    clock = VirtualClock()
    transport = MemoryTransport(clock)
    ...                                             # a stream connects through them
    signaling = await transport.accept()            # the next socket the client opened
    request = await signaling.receive()             # what the client sent, decoded
    signaling.send(SignalingHandshakeResp(...))     # delivered to the client at once
    signaling.close()                               # the server drops it
    clock.advance(3.0)                              # sleeps due by then return

Frames reach the client synchronously, as picows hands them over. A client that pauses
reading gets nothing more until it resumes (as TCP holds it back), the close included.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

from ..protocol.errors import ConnectionLost
from ..protocol.messages import (
    ClientMessage,
    Message,
    UnknownMessage,
    decode_client_message,
    encode,
)
from .transport import SYSTEM_CLOCK, Clock, EventHandler, Session, Socket

NORMAL_CLOSURE = 1000


class VirtualClock:
    """Time that moves only when a test says so: `sleep()` returns once `advance()` has
    carried `now()` to its deadline (a sleep of 0 or less just yields)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), wake))
        try:
            await wake
        finally:
            wake.cancel()  # a cancelled sleep leaves a done entry, skipped by `advance`

    def advance(self, seconds: float) -> None:
        """Move time on; every sleep due by then returns (at the loop's next turn)."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)

    @property
    def deadlines(self) -> list[float]:
        """When the pending sleeps are due, soonest first."""
        return sorted(at for at, _, wake in self._sleepers if not wake.done())


class MemorySocket:
    """The client's end of one in-memory WebSocket (a `transport.Socket`)."""

    def __init__(self, url: str, session: Session, on_event: EventHandler, name: str,
                 clock: Clock) -> None:
        self.url = url
        self.session = session
        self.on_event = on_event
        self._name = name
        self.clock = clock
        self.paused = False
        self.close_code: int | None = None
        self._closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._backlog: deque[bytes | int] = deque()  # held while paused; an int is a close
        self.server = ServerEnd(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_open(self) -> bool:
        return not self._closed.done()

    def flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.is_open:
            self.server._inbox.extend(out)
            self.server._arrived.set()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        while self._backlog and not self.paused and self.is_open:
            item = self._backlog.popleft()
            if isinstance(item, int):
                self._drop(item)
            else:
                self._feed(item)

    async def wait_closed(self) -> int | None:
        return await asyncio.shield(self._closed)

    async def close(self) -> None:
        self._drop(NORMAL_CLOSURE)

    # ---- what the server end does ------------------------------------------------------

    def _arrive(self, item: bytes | int) -> None:
        if not self.is_open:
            return
        if self.paused or self._backlog:
            self._backlog.append(item)
        elif isinstance(item, int):
            self._drop(item)
        else:
            self._feed(item)

    def _feed(self, data: bytes) -> None:
        event = self.session.receive(data, self.clock.now())
        self.flush()
        if event is not None:
            self.on_event(self, event)

    def _drop(self, code: int | None) -> None:
        if self.is_open:
            self.close_code = code
            self.session.closed()
            self._closed.set_result(code)
            self.server._arrived.set()


class ServerEnd:
    """Zoom's end of one in-memory WebSocket, as a test drives it."""

    def __init__(self, client: MemorySocket) -> None:
        self.client = client
        self._inbox: deque[bytes] = deque()
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return self.client.url

    @property
    def closed(self) -> bool:
        return not self.client.is_open

    @property
    def paused(self) -> bool:
        """Whether the client has stopped reading this socket."""
        return self.client.paused

    @property
    def unread(self) -> int:
        """How many frames the client sent that were not taken yet."""
        return len(self._inbox)

    def send(self, msg: Message | bytes) -> None:
        """A message (encoded as Zoom would) or raw bytes, to the client."""
        self.client._arrive(msg if isinstance(msg, bytes) else encode(msg))

    def close(self, code: int = NORMAL_CLOSURE) -> None:
        """The server closes the socket (after what it sent before)."""
        self.client._arrive(code)

    def drop(self) -> None:
        """The connection dies at once, with no close frame (and no backlog delivered)."""
        self.client._drop(None)

    def take(self) -> list[ClientMessage | UnknownMessage]:
        """Every frame the client sent that was not taken yet, decoded."""
        frames = [decode_client_message(data) for data in self._inbox]
        self._inbox.clear()
        return frames

    async def receive(self) -> ClientMessage | UnknownMessage:
        """The client's next frame, decoded (ConnectionLost once closed with none left)."""
        while not self._inbox:
            if self.closed:
                raise ConnectionLost(f"{self.url}: closed")
            self._arrived.clear()
            await self._arrived.wait()
        return decode_client_message(self._inbox.popleft())


class MemoryTransport:
    """Opens in-memory sockets; a test accepts each one's server end in turn."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.urls: list[str] = []  # every URL the client asked for, refused ones too
        self.opened: list[ServerEnd] = []
        self._refused: set[str] = set()
        self._taken = 0
        self._opened = asyncio.Event()

    def refuse(self, url: str) -> None:
        """Connections to `url` fail (ConnectionLost) until `allow(url)`."""
        self._refused.add(url)

    def allow(self, url: str) -> None:
        self._refused.discard(url)

    async def connect(self, url: str, session: Session, on_event: EventHandler, *,
                      name: str, timeout: float) -> Socket:
        self.urls.append(url)
        await asyncio.sleep(0)  # a connect takes a turn of the loop, as a real one does
        if url in self._refused:
            raise ConnectionLost(f"{name}: cannot connect: {url} refused")
        socket = MemorySocket(url, session, on_event, name, self.clock)
        self.opened.append(socket.server)
        self._opened.set()
        return socket

    async def accept(self) -> ServerEnd:
        """The server end of the next socket the client opened (in order), once it has."""
        while self._taken == len(self.opened):
            self._opened.clear()
            await self._opened.wait()
        self._taken += 1
        return self.opened[self._taken - 1]
