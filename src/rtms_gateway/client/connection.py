"""WebSockets over picows, the stream's transport in service: the only module that
touches picows.

picows hands us frames through synchronous callbacks; each frame goes straight into the
session and its result straight to the stream's handler, with no task or queue per frame
(this path runs 50 times a second per media socket).

With an egress proxy (`RTMS_PROXY_URL`) every socket, signaling and media, is opened
through it, as Zoom's SDK offers: an HTTP(S) proxy by CONNECT, a SOCKS4/5 proxy by its
own handshake (picows does both, SOCKS through python-socks). TLS to Zoom runs inside the
tunnel, verified as without a proxy. The proxy URL (checked by the settings) may carry
credentials: it is shown only as `proxy_display` gives it, and removed from error text.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from python_socks import ProxyError

from ..protocol.errors import ConnectionLost
from .transport import EventHandler, Session, Socket

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # bounds a message reassembled from fragments
_TEXT, _BINARY = WSMsgType.TEXT, WSMsgType.BINARY


def proxy_display(url: str) -> str:
    """`url` as it may be shown: scheme, host and port, never the credentials."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}" + (f":{parsed.port}" if parsed.port else "")


def _redacted(text: str, proxy: str | None) -> str:
    """`text` without the proxy's credentials, should a library have put them in."""
    if proxy is None:
        return text
    userinfo, at, _ = urllib.parse.urlsplit(proxy).netloc.rpartition("@")
    password = userinfo.partition(":")[2]
    for secret in (proxy, userinfo if at else "", password):
        if secret:
            text = text.replace(secret, "***")
    return text


def client_ssl_context(ca_file: Path | str | None = None) -> ssl.SSLContext:
    """Verifying TLS context: the system store plus an extra CA file when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


class TlsTrust:
    """The verifying context for RTMS servers, rebuilt when the extra CA file changes (a
    simulator started after the gateway writes its CA then)."""

    def __init__(self, ca_file: Path | str | None = None) -> None:
        self.ca_file = Path(ca_file) if ca_file else None
        self._stamp: int | None = None
        self._context: ssl.SSLContext | None = None

    def context(self, *, strict: bool = False) -> ssl.SSLContext:
        """The current context; a file that does not load is logged and left out (the
        system store still applies), or raised when `strict` (checked at start)."""
        stamp = None
        if self.ca_file is not None:
            try:
                stamp = self.ca_file.stat().st_mtime_ns
            except OSError:
                stamp = None
        if self._context is None or stamp != self._stamp:
            present = self.ca_file if stamp is not None else None
            if self.ca_file is not None and present is None:
                log.warning("RTMS_CA_FILE %s is missing; trusting the system store only",
                            self.ca_file)
            try:
                context = client_ssl_context(present)
            except (ssl.SSLError, OSError) as exc:
                if strict:
                    raise
                log.error("RTMS_CA_FILE %s does not load (%s); trusting the system store only",
                          present, exc)
                context = client_ssl_context(None)
            self._context, self._stamp = context, stamp
        return self._context


class PicowsTransport:
    """Opens each socket with picows, verifying TLS with `tls`'s current context, through
    `proxy` when given (see the module's note)."""

    def __init__(self, tls: TlsTrust, clock: Callable[[], float] = time.monotonic, *,
                 proxy: str | None = None) -> None:
        self.tls = tls
        self.clock = clock
        self._proxy = proxy

    def __repr__(self) -> str:
        shown = None if self._proxy is None else proxy_display(self._proxy)
        return f"PicowsTransport(proxy={shown!r})"

    async def connect(self, url: str, session: Session, on_event: EventHandler, *,
                      name: str, timeout: float) -> Socket:
        conn = Connection(session, on_event, name=name, clock=self.clock)
        tls = self.tls.context() if url[:6].lower() == "wss://" else None
        await conn.connect(url, tls, timeout, proxy=self._proxy)
        return conn


class Connection(WSListener):
    """A client WebSocket whose frames feed `session`; `on_event` gets each result."""

    def __init__(
        self,
        session: Session,
        on_event: EventHandler,
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.on_event = on_event
        self._name = name
        self.clock = clock
        self.transport: WSTransport | None = None
        self.close_code: int | None = None
        self._fragments: bytearray | None = None
        self._closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._paused = False

    async def connect(self, url: str, ssl_context: ssl.SSLContext | None, timeout: float, *,
                      proxy: str | None = None) -> None:
        """Open the socket (through `proxy` if given); ConnectionLost if it cannot be,
        within `timeout` seconds (the proxy's handshake included)."""
        try:
            await asyncio.wait_for(
                picows.ws_connect(
                    lambda: self,
                    url,
                    ssl_context=ssl_context,
                    websocket_handshake_timeout=timeout,
                    max_frame_size=MAX_MESSAGE_BYTES,
                    proxy=proxy,
                ),
                timeout,
            )
        except (TimeoutError, OSError, picows.WSError, ProxyError) as exc:
            self._finish(None)
            why = _redacted(f"{type(exc).__name__}: {exc}", proxy)
            via = "" if proxy is None else f" through proxy {proxy_display(proxy)}"
            # Through a proxy, the original exception's text may name its URL in full.
            raise ConnectionLost(f"{self._name}: cannot connect{via}: {why}") from (
                exc if proxy is None else None)

    @property
    def name(self) -> str:
        return self._name

    # ---- picows callbacks ---------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _TEXT or msg_type is _BINARY:
            if frame.fin:  # `_feed` inlined: every media frame comes this way
                event = self.session.receive(frame.get_payload_as_memoryview(), self.clock())
                self.flush()
                if event is not None:
                    self.on_event(self, event)
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif msg_type is WSMsgType.CONTINUATION and self._fragments is not None:
            self._fragments += frame.get_payload_as_memoryview()
            if len(self._fragments) > MAX_MESSAGE_BYTES:
                self._fragments = None
                transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
                transport.disconnect()
            elif frame.fin:
                data, self._fragments = bytes(self._fragments), None
                self._feed(data)
        elif msg_type is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.session.closed()
        self._finish(self.close_code)

    # ---- driving the session ------------------------------------------------------------

    def _feed(self, data: bytes | memoryview) -> None:
        event = self.session.receive(data, self.clock())
        self.flush()
        if event is not None:
            self.on_event(self, event)

    def flush(self) -> None:
        """Send whatever the session queued (handshakes, keep-alive answers, acks)."""
        out = self.session.data_to_send()
        if out and self.transport is not None and not self.transport.is_close_frame_sent:
            for data in out:
                self.transport.send(WSMsgType.TEXT, data)

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.underlying_transport.resume_reading()

    @property
    def is_open(self) -> bool:
        return not self._closed.done()

    async def wait_closed(self) -> int | None:
        return await asyncio.shield(self._closed)

    def _finish(self, code: int | None) -> None:
        if not self._closed.done():
            self._closed.set_result(code)

    async def close(self, code: WSCloseCode = WSCloseCode.OK, timeout: float = 2.0) -> None:
        transport = self.transport
        if transport is None or self._closed.done():
            self._finish(self.close_code)
            return
        if not transport.is_close_frame_sent:
            transport.send_close(code)
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            transport.disconnect(graceful=False)
            self._finish(None)
