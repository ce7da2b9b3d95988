"""Zoom RTMS protocol core: constants, typed messages, signatures, client state machines.

Pure and synchronous: no sockets, no asyncio, no clock. Transports drive it.
"""

from .constants import *  # noqa: F403  (every constant, by name)
from .errors import (
    ConnectionLost,
    HandshakeRejected,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RTMSError,
    SignatureInvalid,
)
from .signature import (
    handshake_signature_valid,
    signature,
    url_validation_response,
    webhook_signature,
    webhook_signature_valid,
)

__all__ = [  # noqa: RUF022  (grouped by module, as imported)
    "ConnectionLost",
    "HandshakeRejected",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RTMSError",
    "SignatureInvalid",
    "handshake_signature_valid",
    "signature",
    "url_validation_response",
    "webhook_signature",
    "webhook_signature_valid",
]
