"""A TCP proxy on loopback that a test switches off and on, to take a real server (the
shared PostgreSQL) away from one client without touching the server.

Off: the listening socket is closed, so new connections are refused (RST), and every
connection through it is cut. On: it listens again on the same port. The port stays
reserved meanwhile by a second socket bound to it but never listening (both use
SO_REUSEPORT), so nothing else can take it while the proxy is off.
"""

from __future__ import annotations

import asyncio
import socket


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._reserved: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._reserved = _socket()
        self._reserved.bind(("127.0.0.1", 0))
        self.port = self._reserved.getsockname()[1]
        await self.switch_on()
        return self.port

    @property
    def on(self) -> bool:
        return self._server is not None

    async def switch_on(self) -> None:
        assert self._server is None
        sock = _socket()
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def switch_off(self) -> None:
        """Refuse new connections and cut the open ones (both ways, at once)."""
        assert self._server is not None
        self._server.close()
        self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        if self._server is not None:
            await self.switch_off()
        if self._reserved is not None:
            self._reserved.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # switched off while connecting upstream
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not dst.is_closing():
                dst.close()
            self._pipes.discard(dst)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock
