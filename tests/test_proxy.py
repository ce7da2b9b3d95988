"""The egress proxy (RTMS_PROXY_URL): every signaling and media socket goes through it,
against the real gateway and simulator and a real proxy on loopback (HTTP CONNECT and
SOCKS5, written here); its credentials reach the proxy and nothing else."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import struct
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from rtms_gateway.client.connection import PicowsTransport, TlsTrust, _redacted, proxy_display
from rtms_gateway.config import Settings, load_settings
from rtms_gateway.protocol.constants import MediaType
from rtms_gateway.protocol.errors import StartupError

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually

FAST = {"RTMS_RECONNECT_INITIAL_S": "0.2", "RTMS_RECONNECT_MAX_S": "1"}
USER, PASSWORD = "proxy-user", "proxy-pass-s3cret"
MAX_REQUEST_BYTES = 8192  # the proxy's own bound on a CONNECT request's head


@dataclass
class LoopbackProxy:
    """A forwarding proxy on 127.0.0.1: HTTP CONNECT or SOCKS5 (no auth or user/password).
    It records what each client asked for; `refuse` answers every request with a failure."""

    kind: str = "http"
    refuse: bool = False
    port: int = 0
    tunnels: list[str] = field(default_factory=list)  # "host:port" asked, in order
    credentials: list[str | None] = field(default_factory=list)  # "user:password" given
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, auth: bool = True) -> str:
        userinfo = f"{USER}:{PASSWORD}@" if auth else ""
        return f"{self.kind}://{userinfo}127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            target = await (self._http(reader, writer) if self.kind == "http"
                            else self._socks5(reader, writer))
            if target is None:
                return
            up_reader, up_writer = await asyncio.open_connection(*target)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _http(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> tuple[str, int] | None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert len(head) <= MAX_REQUEST_BYTES
        request, *headers = head.decode("latin-1").split("\r\n")
        method, authority, _ = request.split(" ")
        assert method == "CONNECT", request
        given = None
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization":
                given = base64.b64decode(value.strip().removeprefix("Basic ")).decode()
        self.tunnels.append(authority)
        self.credentials.append(given)
        if self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return None
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        host, _, port = authority.rpartition(":")
        return host.strip("[]"), int(port)

    async def _socks5(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[str, int] | None:
        version, count = await reader.readexactly(2)
        assert version == 5
        methods = await reader.readexactly(count)
        given = None
        if 2 in methods:  # username/password (RFC 1929)
            writer.write(b"\x05\x02")
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            given = f"{user}:{(await reader.readexactly(plen)).decode()}"
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _, command, _, atyp = await reader.readexactly(4)
        assert command == 1  # CONNECT
        if atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        elif atyp == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        else:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.tunnels.append(f"{host}:{port}")
        self.credentials.append(given)
        reply = 2 if self.refuse else 0  # 2: connection not allowed by ruleset
        writer.write(bytes([5, reply, 0, 1, 0, 0, 0, 0, 0, 0]))
        await writer.drain()
        return None if self.refuse else (host, port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy(request):
    server = LoopbackProxy(**getattr(request, "param", {}))
    await server.start()
    yield server
    await server.close()


def _no_secret_in(caplog) -> None:
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        assert PASSWORD not in text and USER not in text, text


@pytest.mark.parametrize("proxy", [{"kind": "http"}, {"kind": "socks5"}], indirect=True,
                         ids=["http-connect", "socks5"])
async def test_every_signaling_and_media_socket_goes_through_the_proxy(tmp_path, proxy, caplog):
    caplog.set_level(logging.DEBUG, logger="rtms_gateway")
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="audio,transcript",
                                    RTMS_PROXY_URL=proxy.url(), **FAST) as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.AUDIO | MediaType.TRANSCRIPT)
        record = await handle.wait(40)
        await run.settle()
        assert record.outcome == "completed"
        assert [s.text for s in await run.gateway.store.transcript(handle.script.owner_id)] == \
            [t.data for t in record.transcripts]
        # One tunnel per socket: signaling, then audio and transcript media, all to the
        # simulator, each given the proxy's credentials.
        authority = f"localhost:{run.simulator.port}"
        assert proxy.tunnels == [authority] * 3
        assert proxy.credentials == [f"{USER}:{PASSWORD}"] * 3
    _no_secret_in(caplog)


@pytest.mark.parametrize("proxy", [{"kind": "http", "refuse": True},
                                   {"kind": "socks5", "refuse": True}], indirect=True,
                         ids=["http-connect", "socks5"])
async def test_a_proxy_that_refuses_loses_the_stream_with_a_clear_reason_and_no_secret(
        tmp_path, proxy, caplog):
    caplog.set_level(logging.DEBUG, logger="rtms_gateway")
    async with GatewayWithSimulator(tmp_path, RTMS_MEDIA="transcript", RTMS_PROXY_URL=proxy.url(),
                                    RTMS_SIGNALING_WINDOW_S="1", **FAST) as run:
        handle = run.simulator.start_meeting(duration=3.0, media=MediaType.TRANSCRIPT)
        stream_id = handle.script.rtms_stream_id
        assert await eventually(lambda: run.gateway.manager.outcomes.get("lost") == 1, 30)
        await run.gateway.pipeline.flush()  # the end is written in order, after the retries
        stored = await run.gateway.store.stream(stream_id)
        assert stored.state == "lost"
        assert f"through proxy {proxy.kind}://127.0.0.1:{proxy.port}" in stored.status_reason
        assert PASSWORD not in stored.status_reason and USER not in stored.status_reason
        assert len(proxy.tunnels) >= 2  # the first attempt and at least one retry
        handle.request_stop()
        await handle.wait(20)
    _no_secret_in(caplog)


@pytest.mark.parametrize("url", ["ftp://user:pw-s3cret@proxy.example:21", "http://:8080",
                                 "http://user:pw-s3cret@proxy.example:notaport",
                                 "http://user:pw-s3cret@proxy.example:3128/path"])
def test_a_proxy_url_that_cannot_work_is_refused_at_start_without_repeating_it(
        url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("RTMS_PROXY_URL", url)
    with pytest.raises(StartupError) as caught:
        load_settings()
    assert "RTMS_PROXY_URL" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, RTMS_PROXY_URL=url)


def test_the_proxy_setting_is_a_secret_and_empty_means_direct():
    settings = Settings(_env_file=None, RTMS_PROXY_URL=f"http://{USER}:{PASSWORD}@proxy.example:3128")
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert settings.proxy == f"http://{USER}:{PASSWORD}@proxy.example:3128"
    assert Settings(_env_file=None).proxy is None
    for scheme in ("https", "socks4", "socks5"):
        assert Settings(_env_file=None, RTMS_PROXY_URL=f"{scheme}://proxy.example:1080").proxy


def test_a_proxy_is_shown_without_its_credentials_and_they_are_cut_from_error_text():
    url = "http://us%40er:p%3Ass-word@proxy.example:3128"
    assert proxy_display(url) == "http://proxy.example:3128"
    assert proxy_display("socks5://[::1]:1080") == "socks5://[::1]:1080"
    text = f"WSInvalidURL: {url}: bad; us%40er:p%3Ass-word; p%3Ass-word"
    assert _redacted(text, url) == "WSInvalidURL: ***: bad; ***; ***"
    assert repr(PicowsTransport(TlsTrust(), proxy=url)) == \
        "PicowsTransport(proxy='http://proxy.example:3128')"
