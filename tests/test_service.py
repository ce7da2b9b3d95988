"""The gateway's listening socket."""

from __future__ import annotations

import socket

from rtms_gateway.gateway.service import bind_socket


def test_the_listening_socket_is_tcp_so_responses_go_out_without_nagle_delays():
    # asyncio turns TCP_NODELAY on for accepted connections only when the listening socket
    # says IPPROTO_TCP; without it each keep-alive response waited 40 ms for a delayed ACK.
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
