"""A small RTMS client and webhook receiver, written from the protocol reference alone.

It deliberately imports nothing from `rtms_gateway`: message numbers, field names and
both HMACs are spelled out here, so the simulator is checked against the reference and
not against our own protocol module. It uses python-websockets (asyncio API) and trusts
the simulator's CA explicitly; TLS is verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

# msg_type numbers (protocol reference §2)
SIG_HANDSHAKE_REQ, SIG_HANDSHAKE_RESP = 1, 2
DATA_HANDSHAKE_REQ, DATA_HANDSHAKE_RESP = 3, 4
EVENT_SUBSCRIPTION, EVENT_UPDATE, CLIENT_READY_ACK = 5, 6, 7
STREAM_STATE_UPDATE, SESSION_STATE_UPDATE = 8, 9
KEEP_ALIVE_REQ, KEEP_ALIVE_RESP = 12, 13
STREAM_CLOSE_REQ, STREAM_CLOSE_RESP = 21, 22
ID_KEYS = ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id")


def handshake_signature(client_id: str, client_secret: str, owner_id: str, stream_id: str) -> str:
    message = f"{client_id},{owner_id},{stream_id}".encode()
    return hmac.new(client_secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature(secret_token: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret_token.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


# ---- webhook receiver -------------------------------------------------------------------


@dataclass
class Delivery:
    event: str
    payload: dict[str, Any]
    event_ts: Any
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    timestamp_ok: bool
    status: int


class WebhookReceiver:
    """A raw asyncio HTTP/1.1 endpoint that checks Zoom's webhook headers and signature on
    the exact bytes received, answers URL validation, and hands events to a callback."""

    def __init__(self, secret_token: str,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.secret_token = secret_token
        self.on_event = on_event
        self.received: list[Delivery] = []
        self.scripted_statuses: list[int] = []  # answer these first (retry tests)
        self.scripted_delay = 0.0  # seconds to wait before answering the next request
        self.wrong_validation = False
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self.url = ""

    async def start(self, host: str = "127.0.0.1", path: str = "/webhook") -> str:
        self._server = await asyncio.start_server(self._serve, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{port}{path}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._connections.values():
                writer.close()  # ends each handler's read: they return on their own
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    def events(self, suffix: str = "") -> list[Delivery]:
        return [d for d in self.received if d.event.endswith(suffix)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, reply = self._handle(headers, body)
                if self.scripted_delay:
                    delay, self.scripted_delay = self.scripted_delay, 0.0
                    await asyncio.sleep(delay)
                data = json.dumps(reply).encode()
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        ts = headers.get("x-zm-request-timestamp", "")
        sig = headers.get("x-zm-signature", "")
        signature_ok = bool(ts) and hmac.compare_digest(webhook_signature(self.secret_token, ts, body), sig)
        timestamp_ok = ts.isdigit() and abs(time.time() - int(ts)) < 300
        envelope = json.loads(body)
        event, payload = envelope.get("event", ""), envelope.get("payload", {})
        status = self.scripted_statuses.pop(0) if self.scripted_statuses else 200
        if not (signature_ok and timestamp_ok):
            status = 401
        self.received.append(Delivery(event, payload, envelope.get("event_ts"), headers, body,
                                      signature_ok, timestamp_ok, status))
        if status != 200:
            return status, {"error": "refused"}
        if event == "endpoint.url_validation":
            plain = payload["plainToken"]
            key = "wrong" if self.wrong_validation else self.secret_token
            encrypted = hmac.new(key.encode(), plain.encode(), hashlib.sha256).hexdigest()
            return 200, {"plainToken": plain, "encryptedToken": encrypted}
        if self.on_event is not None:
            self.on_event(event, payload)
        return 200, {"status": "ok"}


# ---- client -----------------------------------------------------------------------------


@dataclass
class MediaRequest:
    url_key: str  # which media_server.server_urls entry to open
    media_type: int
    media_params: dict[str, Any] | None = None


@dataclass
class StreamLog:
    payload: dict[str, Any]
    signaling: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    handshakes: dict[str, dict[str, Any]] = field(default_factory=dict)  # socket -> response
    close_codes: dict[str, int | None] = field(default_factory=dict)
    keepalives_answered: dict[str, int] = field(default_factory=dict)
    stopped_payload: dict[str, Any] | None = None
    interrupted: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def of_type(self, msg_type: int, socket: str | None = None) -> list[dict[str, Any]]:
        pool = self.signaling if socket is None else self.media.get(socket, [])
        return [m for m in pool if m.get("msg_type") == msg_type]


class MinimalClient:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        secret_token: str = "",
        ca: bytes | Path | None = None,
        media: list[MediaRequest] | None = None,
        events: tuple[int, ...] = (2, 3, 4),
        answer_keepalives: bool = True,
        binary_frames: bool = False,
        fragmented: bool = False,
        ready_per_socket: bool = False,
        close_after: float | None = None,
        signature: str | None = None,
        reconnect_on_interrupt: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ca = ca
        self.media = media if media is not None else [MediaRequest("transcript", 8)]
        self.events = events
        self.answer_keepalives = answer_keepalives
        self.binary_frames = binary_frames
        self.fragmented = fragmented
        self.ready_per_socket = ready_per_socket
        self.close_after = close_after
        self.signature = signature
        self.reconnect_on_interrupt = reconnect_on_interrupt
        self.streams: dict[str, StreamLog] = {}
        self.receiver = WebhookReceiver(secret_token, self._on_webhook)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        return await self.receiver.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.receiver.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_webhook(self, event: str, payload: dict[str, Any]) -> None:
        sid = payload.get("rtms_stream_id", "")
        if event.endswith("rtms_started"):
            self._spawn(self.run_stream(payload))
        elif event.endswith("rtms_stopped") and sid in self.streams:
            self.streams[sid].stopped_payload = payload
        elif event.endswith("rtms_interrupted") and sid in self.streams:
            log = self.streams[sid]
            log.interrupted += 1
            if self.reconnect_on_interrupt:
                self.answer_keepalives = True
                self._spawn(self.run_stream(log.payload))

    def _ssl(self) -> ssl.SSLContext | None:
        if self.ca is None:
            return None
        pem = self.ca.read_bytes() if isinstance(self.ca, Path) else self.ca
        return ssl.create_default_context(cadata=pem.decode())

    async def _send(self, ws: Any, msg: dict[str, Any]) -> None:
        text = json.dumps(msg)
        if self.fragmented:
            third = max(1, len(text) // 3)
            parts = [text[:third], text[third:2 * third], text[2 * third:]]
            await ws.send([p.encode() for p in parts] if self.binary_frames else parts)
        else:
            await ws.send(text.encode() if self.binary_frames else text)

    async def run_stream(self, payload: dict[str, Any]) -> StreamLog:
        id_key = next(k for k in ID_KEYS if k in payload)
        owner, sid = payload[id_key], payload["rtms_stream_id"]
        url = payload["server_urls"].split(",")[0].strip()
        sig = self.signature or handshake_signature(self.client_id, self.client_secret, owner, sid)
        ids = {"meeting_uuid": owner, id_key: owner}
        log = self.streams.setdefault(sid, StreamLog(payload))
        log.done.clear()
        ctx = self._ssl()
        try:
            async with websockets.connect(url, ssl=ctx, subprotocols=["websocket"]) as sws:  # type: ignore[list-item]
                await self._send(sws, {"msg_type": SIG_HANDSHAKE_REQ, "protocol_version": 1, "sequence": 1,
                                       **ids, "rtms_stream_id": sid, "signature": sig})
                resp = json.loads(await sws.recv())
                log.handshakes["signaling"] = resp
                if resp.get("status_code") != 0:
                    await sws.wait_closed()
                    log.close_codes["signaling"] = sws.close_code
                    return log
                if self.events:
                    await self._send(sws, {"msg_type": EVENT_SUBSCRIPTION, "events": [
                        {"event_type": e, "subscribe": True} for e in self.events]})
                urls = resp["media_server"]["server_urls"]
                results = [asyncio.get_running_loop().create_future() for _ in self.media]
                media_tasks = [asyncio.ensure_future(self._media(log, urls[r.url_key], r, ids, sid, sig, sws, f))
                               for r, f in zip(self.media, results)]
                oks = await asyncio.gather(*results)
                if not self.ready_per_socket and any(oks):
                    await self._send(sws, {"msg_type": CLIENT_READY_ACK, "rtms_stream_id": sid})
                if self.close_after is not None:
                    self._spawn(self._close_later(sws, sid))
                async for raw in sws:
                    msg = json.loads(raw)
                    if msg.get("msg_type") == KEEP_ALIVE_REQ:
                        await self._keepalive(sws, msg, log, "signaling")
                        continue
                    log.signaling.append(msg)
                log.close_codes["signaling"] = sws.close_code
                await asyncio.gather(*media_tasks, return_exceptions=True)
        except websockets.ConnectionClosed as exc:
            log.close_codes.setdefault("signaling", exc.rcvd.code if exc.rcvd else None)
        finally:
            log.done.set()
        return log

    async def _close_later(self, sws: Any, sid: str) -> None:
        await asyncio.sleep(self.close_after or 0)
        await self._send(sws, {"msg_type": STREAM_CLOSE_REQ, "rtms_stream_id": sid})

    async def _keepalive(self, ws: Any, msg: dict[str, Any], log: StreamLog, socket: str) -> None:
        if not self.answer_keepalives:
            return
        await self._send(ws, {"msg_type": KEEP_ALIVE_RESP, "timestamp": msg["timestamp"],
                              "sequence": msg.get("sequence")})
        log.keepalives_answered[socket] = log.keepalives_answered.get(socket, 0) + 1

    async def _media(self, log: StreamLog, url: str, req: MediaRequest, ids: dict[str, str], sid: str,
                     sig: str, sws: Any, result: asyncio.Future[bool]) -> None:
        key = req.url_key if req.media_type != 32 else "all"
        try:
            async with websockets.connect(url, ssl=self._ssl(), max_size=None) as ws:
                hello: dict[str, Any] = {"msg_type": DATA_HANDSHAKE_REQ, "protocol_version": 1, "sequence": 1,
                                         **ids, "rtms_stream_id": sid, "signature": sig,
                                         "media_type": req.media_type, "payload_encryption": False}
                if req.media_params is not None:
                    hello["media_params"] = req.media_params
                await self._send(ws, hello)
                resp = json.loads(await ws.recv())
                log.handshakes[key] = resp
                ok = resp.get("status_code") == 0
                result.set_result(ok)
                if ok and self.ready_per_socket:
                    await self._send(sws, {"msg_type": CLIENT_READY_ACK, "rtms_stream_id": sid})
                received = log.media.setdefault(key, [])
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("msg_type") == KEEP_ALIVE_REQ:
                        await self._keepalive(ws, msg, log, key)
                    else:
                        received.append(msg)
                log.close_codes[key] = ws.close_code
        except websockets.ConnectionClosed as exc:
            log.close_codes.setdefault(key, exc.rcvd.code if exc.rcvd else None)
        finally:
            if not result.done():
                result.set_result(False)
