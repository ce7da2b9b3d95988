"""HTTP/1.1 with limits: uvicorn's h11 protocol, plus a deadline for each request to
arrive and a bound on open connections.

uvicorn closes kept-alive connections that go idle, but a connection that sends nothing,
or whose headers or body trickle in a byte at a time, holds its socket for as long as the
client likes: a few thousand of them exhaust the gateway's descriptors. Here each request
must arrive whole (headers and body) within `request_timeout` seconds of its first byte,
the first one within that time of the connection; past it, the client gets 408 (if no
response has started) and the connection is closed. The deadline is lifted as soon as the
request is in, so a long response (a live feed, a download, a WebSocket) is never cut.
A connection past `max_connections` is answered 503 and closed before anything is read.

This subclasses uvicorn's H11Protocol and uses its attributes (`conn`, `cycle`,
`connections`, `transport`) and hooks (`data_received`, `on_response_complete`,
`handle_websocket_upgrade`): pyproject.toml pins uvicorn to the versions it is tested with.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from h11._state import MIGHT_SWITCH_PROTOCOL  # defined by h11, left out of its __all__
from uvicorn.protocols.http.h11_impl import H11Protocol


def _response(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


BUSY = _response("503 Service Unavailable", "too many connections; try again\n")
TOO_SLOW = _response("408 Request Timeout", "the request did not arrive in time\n")

# Their side's states once a request is in: nothing more to wait for.
_ARRIVED = frozenset({h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, MIGHT_SWITCH_PROTOCOL,
                      h11.SWITCHED_PROTOCOL})


class LimitedH11Protocol(H11Protocol):
    request_timeout: float = 20.0
    max_connections: int = 500

    @classmethod
    def with_limits(cls, *, request_timeout: float, max_connections: int) -> type[LimitedH11Protocol]:
        """The protocol class to hand to uvicorn (`http=`) with these limits."""
        return type(cls.__name__, (cls,), {"request_timeout": request_timeout, "max_connections": max_connections})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    # The parameter is narrowed as uvicorn's own is (asyncio.Protocol takes a BaseTransport).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have begun

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # ---- the deadline -------------------------------------------------------------------

    def _follow(self) -> None:
        """On while a request is arriving (bytes of its head buffered, or its body still
        to come), off once it has arrived or nothing is pending (the keep-alive timer
        then watches the idle connection)."""
        state = self.conn.their_state
        if state in _ARRIVED or (state is h11.IDLE and not self.conn.trailing_data[0]):
            self._disarm()
        elif self._deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        # No response yet for this request: its head is still arriving (IDLE), or its body
        # is and the app has not answered.
        unanswered = self.conn.their_state is h11.IDLE or (
            self.cycle is not None and not self.cycle.response_started)
        if unanswered:
            self.transport.write(TOO_SLOW)
        self.transport.close()
