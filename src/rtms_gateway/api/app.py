"""The HTTP face of the gateway: Zoom's webhook, meetings, transcripts, health."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Literal, Protocol

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..config import Settings
from ..protocol.constants import HEADER_TRACKING_ID
from ..protocol.signature import url_validation_response
from ..sinks.exports import TRANSCRIPT_FORMATS, render_transcript, segment_json
from ..webhooks.dedup import RecentDeliveries
from ..webhooks.events import (
    UnhandledEvent,
    UrlValidation,
    WebhookPayloadError,
    delivery_key,
    parse_webhook,
)
from ..webhooks.verify import WebhookRejected, verify_request

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024


class StoreReader(Protocol):
    async def list_meetings(self, limit: int, offset: int) -> list[Any]: ...
    async def get_meeting(self, meeting_uuid: str) -> Any: ...
    async def transcript(self, meeting_uuid: str) -> list[Any]: ...
    async def ping(self) -> bool: ...


class Manager(Protocol):
    async def handle(self, event: object) -> None: ...
    def health(self) -> dict[str, Any]: ...


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (without reading on) anything past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise _TooLarge
    return bytes(chunks)


def create_app(settings: Settings, *, store: StoreReader, manager: Manager,
               clock: Callable[[], float] = time.time) -> FastAPI:
    app = FastAPI(title="rtms-gateway", version="0.1.0",
                  description="Zoom Realtime Media Streams in; durable, queryable, live data out.")
    deliveries = RecentDeliveries()
    secret_token = settings.zoom_secret_token.get_secret_value()

    def refuse(status: int, reason: str, request: Request, event: str = "-") -> JSONResponse:
        log.warning("webhook refused: %d %s (event %s, tracking id %s)", status, reason, event,
                    request.headers.get(HEADER_TRACKING_ID, "-"))
        return JSONResponse({"detail": reason}, status_code=status)

    @app.post(settings.webhook_path, summary="Zoom webhook",
              responses={401: {"description": "unverified"}, 413: {"description": "body over 1 MiB"},
                         400: {"description": "malformed"}, 422: {"description": "missing field"}})
    async def webhook(request: Request) -> Response:
        """Verify, parse and act on one webhook delivery; answers within Zoom's limit."""
        try:
            body = await _read_body(request, MAX_WEBHOOK_BYTES)
        except _TooLarge:
            return refuse(413, "body over 1 MiB", request)
        try:
            verify_request(request.headers, body, secret_token, clock())
            event = parse_webhook(body)
        except (WebhookRejected, WebhookPayloadError) as exc:
            return refuse(exc.status, str(exc), request)
        if isinstance(event, UrlValidation):
            return JSONResponse(url_validation_response(secret_token, event.plain_token))
        if isinstance(event, UnhandledEvent):
            log.debug("webhook %s not handled", event.event)
            return JSONResponse({"status": "ignored"})
        if deliveries.seen(delivery_key(event), clock()):
            log.info("webhook %s for stream %s is a repeat; ignored", type(event).__name__, event.rtms_stream_id)
            return JSONResponse({"status": "duplicate"})
        await manager.handle(event)
        return JSONResponse({"status": "ok"})

    @app.get("/healthz", summary="Liveness, store reachability and stream counts")
    async def healthz() -> JSONResponse:
        try:
            store_ok = bool(await store.ping())
        except Exception:
            store_ok = False
        body = {"status": "ok" if store_ok else "degraded", "store": store_ok, **manager.health()}
        return JSONResponse(body, status_code=200 if store_ok else 503)

    @app.get("/api/meetings", summary="Meetings, newest first")
    async def list_meetings(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return {"meetings": [m.to_dict() for m in await store.list_meetings(limit=limit, offset=offset)]}

    @app.get("/api/meetings/{meeting_uuid:path}/transcript", summary="A meeting's transcript",
             responses={200: {"content": {t: {} for t in TRANSCRIPT_FORMATS.values()}},
                        404: {"description": "unknown meeting"}})
    async def transcript(meeting_uuid: str,
                         format: Literal["json", "txt", "vtt", "srt"] = Query("json")) -> Response:
        if await store.get_meeting(meeting_uuid) is None:
            raise HTTPException(404, f"no meeting {meeting_uuid!r}")
        segments = await store.transcript(meeting_uuid)
        if format == "json":
            return JSONResponse({"meeting_uuid": meeting_uuid, "segments": [segment_json(s) for s in segments]})
        return PlainTextResponse(render_transcript(segments, format), media_type=TRANSCRIPT_FORMATS[format])

    @app.get("/api/meetings/{meeting_uuid:path}", summary="One meeting and its streams",
             responses={404: {"description": "unknown meeting"}})
    async def meeting(meeting_uuid: str) -> dict[str, Any]:
        found = await store.get_meeting(meeting_uuid)
        if found is None:
            raise HTTPException(404, f"no meeting {meeting_uuid!r}")
        return found.to_dict()

    return app
