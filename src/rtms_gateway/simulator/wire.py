"""What the WebSocket server and the streams know of each other: two small interfaces, so
that neither module imports the other. `servers.Connection` is a `Wire`; `stream.SimStream`
is a `StreamEndpoint`."""

from __future__ import annotations

from typing import Protocol

from ..protocol.messages import Message, SignalingHandshakeReq
from .session import ClientFrame, CloseCode, MediaGrant, ServerSocket, StreamSession


class Wire(Protocol):
    """One accepted WebSocket, as a stream uses it."""

    socket: ServerSocket

    def send(self, data: bytes) -> None: ...

    def send_message(self, msg: Message) -> None: ...

    def close(self, code: CloseCode = CloseCode.OK, reason: str = "") -> None: ...

    def drop(self) -> None: ...

    def detach(self) -> None:
        """The stream is done with this socket: its frames and its loss are no news any more."""

    def pause_reading_for(self, seconds: float) -> None: ...

    async def wait_closed(self) -> None: ...


class StreamEndpoint(Protocol):
    """A stream, as the server hands it the sockets whose handshake was accepted."""

    @property
    def session(self) -> StreamSession: ...

    def attach_signaling(self, wire: Wire, req: SignalingHandshakeReq) -> None: ...

    def attach_media(self, wire: Wire, grant: MediaGrant) -> None: ...

    def on_frame(self, wire: Wire, frame: ClientFrame) -> None: ...

    def on_disconnected(self, wire: Wire) -> None: ...
