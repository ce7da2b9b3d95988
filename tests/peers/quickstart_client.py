"""Zoom's Python RTMS transcript quickstart, as a test peer.

The flow is the quickstart's (FastAPI webhook route, websockets, one media socket to the
`all` URL with media_type 8, keep-alive answers without `sequence`, CLIENT_READY_ACK
after the media handshake, random-looking signaling `sequence`, none on media), with two
changes: TLS trusts the simulator's CA file instead of disabling verification, and
transcripts are collected instead of printed. Like the quickstart it does not verify
webhook signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI, Request

from tests.serve_process import eventually


@dataclass
class QuickstartState:
    client_id: str
    client_secret: str
    ca_file: Path
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by meeting_uuid
    started: list[str] = field(default_factory=list)
    stopped: list[dict[str, Any]] = field(default_factory=list)
    keepalives_answered: int = 0
    errors: list[str] = field(default_factory=list)
    active_connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhook_url: str = ""

    def ssl_context(self) -> ssl.SSLContext:
        # the CA is written by the simulator before its first webhook: read it per connection
        return ssl.create_default_context(cafile=str(self.ca_file))


def generate_signature(client_id: str, meeting_uuid: str, stream_id: str, client_secret: str) -> str:
    message = f"{client_id},{meeting_uuid},{stream_id}"
    return hmac.new(client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


async def connect_to_signaling_websocket(state: QuickstartState, meeting_uuid: str, stream_id: str,
                                         server_url: str) -> None:
    try:
        async with websockets.connect(server_url, ssl=state.ssl_context()) as ws:
            state.active_connections.setdefault(meeting_uuid, {})["signaling"] = ws
            signature = generate_signature(state.client_id, meeting_uuid, stream_id, state.client_secret)
            handshake = {
                "msg_type": 1,  # SIGNALING_HAND_SHAKE_REQ
                "protocol_version": 1,
                "meeting_uuid": meeting_uuid,
                "rtms_stream_id": stream_id,
                "sequence": int(asyncio.get_event_loop().time() * 1e9),
                "signature": signature,
            }
            await ws.send(json.dumps(handshake))
            while True:
                try:
                    msg = json.loads(await ws.recv())
                    if msg["msg_type"] == 2 and msg["status_code"] == 0:  # SIGNALING_HAND_SHAKE_RESP
                        media_url = msg.get("media_server", {}).get("server_urls", {}).get("all")
                        if media_url:
                            asyncio.create_task(  # noqa: RUF006 - as the quickstart writes it
                                connect_to_media_websocket(state, media_url, meeting_uuid, stream_id, ws))
                    if msg["msg_type"] == 12:  # KEEP_ALIVE_REQ
                        await ws.send(json.dumps({"msg_type": 13, "timestamp": msg["timestamp"]}))
                        state.keepalives_answered += 1
                except websockets.exceptions.ConnectionClosed:
                    break
    except Exception as e:  # the quickstart logs and carries on
        state.errors.append(f"signaling: {e!r}")
    finally:
        state.active_connections.get(meeting_uuid, {}).pop("signaling", None)


async def connect_to_media_websocket(state: QuickstartState, media_url: str, meeting_uuid: str,
                                     stream_id: str, signaling_socket: Any) -> None:
    try:
        async with websockets.connect(media_url, ssl=state.ssl_context()) as media_ws:
            state.active_connections.setdefault(meeting_uuid, {})["media"] = media_ws
            signature = generate_signature(state.client_id, meeting_uuid, stream_id, state.client_secret)
            handshake = {
                "msg_type": 3,  # DATA_HAND_SHAKE_REQ
                "protocol_version": 1,
                "meeting_uuid": meeting_uuid,
                "rtms_stream_id": stream_id,
                "signature": signature,
                "media_type": 8,  # MEDIA_DATA_TRANSCRIPT
                "payload_encryption": False,
            }
            await media_ws.send(json.dumps(handshake))
            while True:
                try:
                    msg = json.loads(await media_ws.recv())
                    if msg["msg_type"] == 4 and msg["status_code"] == 0:  # DATA_HAND_SHAKE_RESP
                        await signaling_socket.send(json.dumps({"msg_type": 7, "rtms_stream_id": stream_id}))
                    if msg["msg_type"] == 12:  # KEEP_ALIVE_REQ
                        await media_ws.send(json.dumps({"msg_type": 13, "timestamp": msg["timestamp"]}))
                        state.keepalives_answered += 1
                    if msg["msg_type"] == 17:  # MEDIA_DATA_TRANSCRIPT
                        state.transcripts.setdefault(meeting_uuid, []).append(msg["content"])
                except websockets.exceptions.ConnectionClosed:
                    break
    except Exception as e:
        state.errors.append(f"media: {e!r}")
    finally:
        state.active_connections.get(meeting_uuid, {}).pop("media", None)


def make_app(state: QuickstartState, webhook_path: str = "/webhook") -> FastAPI:
    app = FastAPI()

    @app.post(webhook_path)
    async def webhook(request: Request) -> dict[str, str]:
        body = await request.json()
        event = body.get("event")
        payload = body.get("payload", {})
        if event == "meeting.rtms_started":
            meeting_uuid = payload.get("meeting_uuid")
            rtms_stream_id = payload.get("rtms_stream_id")
            server_urls = payload.get("server_urls")
            if all([meeting_uuid, rtms_stream_id, server_urls]):
                state.started.append(meeting_uuid)
                asyncio.create_task(  # noqa: RUF006 - as the quickstart writes it
                    connect_to_signaling_websocket(state, meeting_uuid, rtms_stream_id, server_urls))
        if event == "meeting.rtms_stopped":
            state.stopped.append(payload)
            meeting_uuid = payload.get("meeting_uuid")
            for conn in state.active_connections.pop(meeting_uuid, {}).values():
                await conn.close()
        return {"status": "ok"}

    return app


@contextlib.asynccontextmanager
async def run_quickstart(client_id: str, client_secret: str, ca_file: Path) -> AsyncIterator[QuickstartState]:
    """Serve the quickstart on an ephemeral loopback port for the duration of the block."""
    state = QuickstartState(client_id, client_secret, ca_file)
    config = uvicorn.Config(make_app(state), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    started = await eventually(lambda: server.started or task.done())
    if task.done():
        task.result()  # raises what stopped it
    assert started, "the quickstart never started"
    port = server.servers[0].sockets[0].getsockname()[1]
    state.webhook_url = f"http://127.0.0.1:{port}/webhook"
    try:
        yield state
    finally:
        server.should_exit = True
        await task
