"""Zoom RTMS protocol core: constants, typed messages, signatures, client state machines.

Pure and synchronous: no sockets, no asyncio, no clock. Transports drive it.
"""

from .constants import *  # noqa: F403
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
