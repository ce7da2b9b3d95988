"""HTTP limits over real sockets: requests that trickle in are cut at their deadline while
others are served, connections past the bound get 503, long responses are never cut."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn

from rtms_gateway.api.http_limits import LimitedH11Protocol
from rtms_gateway.gateway.service import bind_socket

from .gateway_harness import GatewayWithSimulator
from .serve_process import eventually

TIMEOUT_S = 2.0


async def _trickle(port: int, head: bytes, drip: bytes, dripping: list[int]) -> tuple[float, bytes]:
    """Send `head`, then `drip` every 0.2 s for as long as the server keeps the connection;
    (seconds until the server closed it, what it answered). Appends to `dripping` once the
    head is sent."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(head)
        await writer.drain()
        dripping.append(port)
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.2)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if not chunk:
                break
            answer += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    return loop.time() - started, answer


SLOW_HEAD = (b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ", b"a")
SLOW_BODY = (b"POST /webhook HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{", b" ")


async def test_trickling_headers_and_bodies_are_cut_while_other_requests_are_served(tmp_path):
    async with GatewayWithSimulator(tmp_path, RTMS_HTTP_REQUEST_TIMEOUT_S=str(TIMEOUT_S)) as run:
        port = int(run.base_url.rsplit(":", 1)[1])
        dripping: list[int] = []
        slow = [asyncio.create_task(_trickle(port, *(SLOW_HEAD if i % 2 else SLOW_BODY), dripping))
                for i in range(200)]
        assert await eventually(lambda: len(dripping) == len(slow))  # all connected and dripping
        async with run.http() as http:
            assert (await http.get("/healthz")).status_code == 200
        # Without the deadline they would drip forever: this wait is the test's bound.
        results = await asyncio.wait_for(asyncio.gather(*slow), TIMEOUT_S + 60)
    for elapsed, answer in results:
        assert elapsed >= TIMEOUT_S - 0.1, "cut at the deadline, not before"
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]


async def test_connections_past_the_bound_are_answered_503(tmp_path):
    bound = 20
    async with GatewayWithSimulator(tmp_path, RTMS_HTTP_MAX_CONNECTIONS=str(bound),
                                    RTMS_HTTP_REQUEST_TIMEOUT_S="60") as run:
        port = int(run.base_url.rsplit(":", 1)[1])
        held = []
        for _ in range(bound):
            # A whole request (so the server has surely counted the connection), then the
            # start of the next one, which keeps it open.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            writer.write(b"GET /healthz HTTP/1.1\r\n")
            held.append((reader, writer))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await asyncio.wait_for(reader.read(), 30)  # answered, then closed
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        held.pop()[1].close()  # one fewer: a new connection is served again
        async with run.http() as http:

            async def served() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            assert await eventually(served, 10), "no connection was served after one closed"
        for _, w in held:
            w.close()


async def test_a_response_longer_than_the_deadline_is_not_cut():
    """Once the request is in, the deadline is lifted: a feed streams on."""
    async def feed(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(8):
            await send({"type": "http.response.body", "body": f"item {i}\n".encode(), "more_body": True})
            await asyncio.sleep(0.25)
        await send({"type": "http.response.body", "body": b"end\n"})

    sock = bind_socket("127.0.0.1", 0)
    protocol = LimitedH11Protocol.with_limits(request_timeout=0.5, max_connections=10)
    server = uvicorn.Server(uvicorn.Config(feed, http=protocol, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        assert await eventually(lambda: server.started)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=30)).text
        assert loop.time() - started > 4 * 0.5
        assert body == "".join(f"item {i}\n" for i in range(8)) + "end\n"
    finally:
        server.should_exit = True
        await task
