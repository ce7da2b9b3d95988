"""One error hierarchy for the whole project, rooted at RTMSError.

Inside the sans-I/O core a malformed frame becomes an event, never a raise; these are
raised at the edges (decode helpers called directly, transports, webhook handling).
"""

from __future__ import annotations


class RTMSError(Exception):
    """Base of every error this project raises on purpose."""


class ProtocolError(RTMSError):
    """A frame or message does not follow the protocol.

    `field` names the offending field as a JSON path (`$.content.timestamp`) when known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LocalProtocolError(ProtocolError):
    """We were about to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids: bytes that do not decode to a
    message, a field out of its range, a reply nobody asked for. The decoders raise it;
    inside a session it arrives as a `FrameRejected` event."""


class HandshakeRejected(RTMSError):
    """Zoom answered a handshake with a non-zero status code."""

    def __init__(self, status_code: int, reason: str, *, socket: str = "signaling") -> None:
        from .constants import status_name

        super().__init__(f"{socket} handshake rejected: {status_code} {status_name(status_code)}: {reason}")
        self.status_code = status_code
        self.reason = reason
        self.socket = socket


class SignatureInvalid(RTMSError):
    """A webhook signature or timestamp did not verify."""


class ConnectionLost(RTMSError):
    """A socket closed or went silent while the stream was live."""


class InsecureUrl(RTMSError):
    """A server URL that is not `wss://`: refused unless plain WebSockets are allowed."""


class StartupError(RTMSError):
    """What keeps the gateway from starting as configured, in one line for whoever runs
    it: the setting at fault and what to do about it."""


class StoreError(RTMSError):
    """A store operation failed: one of the two kinds below, and nothing else leaves the
    store (`sinks.store_errors` decides which). The message names the database's error
    code and type, never the values written."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # the driver's own first line, for the rejected-records file


class StoreUnavailable(StoreError):
    """The database is away (down, unreachable, the connection lost, locked, overloaded,
    shutting down, a serialization failure): the same write can succeed later."""


class RecordRefused(StoreError):
    """The database answers and refuses what was written (a data exception, a constraint,
    a value out of range, an encoding, a program limit): retrying cannot help."""
