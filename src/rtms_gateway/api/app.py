"""The HTTP face of the gateway: Zoom's webhook, meetings, transcripts, health.

Zoom's webhook (verified by its signature), `/healthz` and the API's own documentation are
open; every other route needs an API key (see `auth`), `/metrics` too unless
`RTMS_METRICS_PUBLIC` says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, Protocol

import msgspec
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi_offline import FastAPIOffline
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect

from ..client.control import StreamControl
from ..config import Settings
from ..metrics import METRICS_CONTENT_TYPE, GatewayMetrics, frames_by_kind, render_metrics
from ..protocol.constants import HEADER_TRACKING_ID
from ..protocol.errors import RecordRefused, RTMSError, StoreUnavailable
from ..protocol.signature import url_validation_response
from ..sinks.exports import (
    TRANSCRIPT_FORMATS,
    chat_json,
    chat_version_json,
    cursored_json,
    event_json,
    iso_names,
    media_file_json,
    render_transcript,
    transcript_document,
    with_iso,
)
from ..sinks.keys import KeyNameTaken, KeyStore, Scope
from ..sinks.live import LiveHub
from ..sinks.media_export import MEDIA_TYPES, frames_zip, locate
from ..sinks.outbox import Outbox
from ..sinks.participants import participants
from ..sinks.records import MediaFile
from ..sinks.revoke import Revocations
from ..web import mount_dashboard
from ..webhooks.concurrency import ConcurrencyWatch
from ..webhooks.dedup import Deliveries
from ..webhooks.events import (
    ConcurrencyNotice,
    UnhandledEvent,
    UrlValidation,
    WebhookPayloadError,
    delivery_key,
    parse_webhook,
)
from ..webhooks.verify import WebhookRejected, verify_request
from .auth import Authenticator
from .live import LiveFeed, live_routes
from .reads import PageParam, read_page, search_routes
from .streams import stream_routes
from .webhook_routes import webhook_routes

log = logging.getLogger(__name__)


class _UuidPath(PathConvertor):
    """A meeting UUID in a path: anything, `/` and line breaks included (Starlette's `path`
    stops at a line feed, and a UUID from the wire may hold one)."""

    regex = r"[\s\S]*"


register_url_convertor("uuid_path", _UuidPath())

MAX_WEBHOOK_BYTES = 1024 * 1024

TranscriptFormat = Literal["json", "txt", "vtt", "srt"]
FormatParam = Annotated[TranscriptFormat,
                        Query(description="txt, vtt and srt are always the whole transcript")]


class StoreReader(Protocol):
    async def list_meetings(self, limit: int, offset: int) -> list[Any]: ...
    async def get_meeting(self, meeting_uuid: str) -> Any: ...
    async def transcript(self, meeting_uuid: str) -> list[Any]: ...
    async def chat(self, meeting_uuid: str) -> list[Any]: ...
    async def timeline(self, meeting_uuid: str) -> list[Any]: ...
    async def transcript_page(self, meeting_uuid: str, *, after: int | None = None,
                              limit: int | None = None) -> list[Any]: ...
    async def chat_page(self, meeting_uuid: str, *, after: int | None = None,
                        limit: int | None = None) -> list[Any]: ...
    async def chat_message(self, meeting_uuid: str, message_id: str) -> Any: ...
    async def chat_history(self, meeting_uuid: str, message_ids: Any) -> dict[str, list[Any]]: ...
    async def timeline_page(self, meeting_uuid: str, *, after: int | None = None,
                            limit: int | None = None) -> list[Any]: ...
    async def search(self, q: str, *, meeting_uuid: str | None = None, kinds: Any = ...,
                     limit: int = 20) -> list[Any]: ...
    async def media_files(self, meeting_uuid: str) -> list[Any]: ...
    async def media_file(self, file_id: int) -> Any: ...
    async def ping(self) -> bool: ...


class Manager(Protocol):
    async def handle(self, event: object) -> None: ...
    def health(self) -> dict[str, Any]: ...


class _TooLarge(RTMSError):
    """A request body past its limit (answered 413, never read on)."""


class _Gone(RTMSError):
    """The client went away (or was cut for sending too slowly) before its body was in."""


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (without reading on) anything past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise _TooLarge
    except ClientDisconnect:
        raise _Gone from None
    return bytes(chunks)


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No meeting with that UUID"},
    410: {"description": "Zoom revoked the meeting's streams: their data was deleted "
                         "(`detail.revoked`: stream ids, stop reason, time)"}}
_UUID_DOC = "The meeting UUID; percent-encode `/`, `+` and `=` (`%2F`, `%2B`, `%3D`)."


def create_app(settings: Settings, *, store: StoreReader, manager: Manager,
               keys: KeyStore | None = None,
               clock: Callable[[], float] = time.time,
               live_media: Callable[[str], list[MediaFile]] = lambda meeting_uuid: [],
               deliveries: Deliveries | None = None, live: LiveHub | None = None,
               outbox: Outbox | None = None, metrics: GatewayMetrics | None = None,
               concurrency: ConcurrencyWatch | None = None,
               revocations: Revocations | None = None,
               control: StreamControl | None = None) -> FastAPI:
    """The app for `settings`; reads no environment. `keys` holds the API keys made with
    `rtms-gateway keys` (without it, only `RTMS_API_KEYS` open the API and the key routes
    are absent). `clock` gives Unix seconds; `live_media` tells how the files still being
    written stand right now; `deliveries` recognises webhook retries (this process's memory
    alone unless given the store's); `live` is the hub the store's committed items are
    published to (without it, the live feed routes are absent). `outbox` sends outbound
    webhooks (its routes are absent without it). `metrics` are what `/metrics` shows (the
    API adds its refused requests and the live feed's counts); `concurrency` keeps Zoom's
    account-level concurrency notices (one of its own if not given); `revocations` knows the
    streams Zoom revoked (their meetings answer 410 Gone); `control` acts on held streams
    (the stream routes are absent without it)."""
    # Swagger UI and ReDoc from files the gateway serves itself: /docs works offline.
    app = FastAPIOffline(title="rtms-gateway", version="0.1.0",
                         description="Zoom Realtime Media Streams in; durable, queryable, live data out. "
                                     "Every route but the webhook and `/healthz` takes "
                                     "`Authorization: Bearer <API key>`.")
    auth = Authenticator(settings.configured_api_keys, keys)
    app.state.auth = auth
    gateway_metrics = metrics if metrics is not None else GatewayMetrics.create()
    gateway_metrics.api_refused.read_from(lambda: auth.refused)
    if live is not None:
        hub = live
        gateway_metrics.live_subscribers.set_function(lambda: hub.subscribers)
        gateway_metrics.live_overflowed.read_from(lambda: hub.counters["overflowed"])
        gateway_metrics.live_refused.read_from(lambda: hub.counters["refused"])
    reader = [Depends(auth.require(Scope.READ))]
    api = APIRouter(dependencies=reader, responses=_AUTH_ERRORS)
    deliveries = deliveries if deliveries is not None else Deliveries()
    secret_token = settings.zoom_secret_token.get_secret_value()
    watch = concurrency if concurrency is not None else ConcurrencyWatch()
    gateway_metrics.concurrency_near_limit_notices.read_from(lambda: watch.counts["near_limit"])
    gateway_metrics.concurrency_limited_notices.read_from(lambda: watch.counts["limited"])
    gateway_metrics.concurrency_streams.read_from(watch.streams)

    def refuse(status: int, reason: str, request: Request, event: str | None = None) -> JSONResponse:
        # One line per refusal; never the token, the signature header or the body.
        log.warning("webhook refused: %d %s (event %s, tracking id %s)", status, reason,
                    event or "-", request.headers.get(HEADER_TRACKING_ID, "-"))
        return JSONResponse({"detail": reason}, status_code=status)

    @app.post(
        settings.webhook_path,
        summary="Zoom webhook receiver",
        response_description="`{\"status\": \"ok\"}`, `\"duplicate\"` for a retry, or the "
                             "URL-validation answer",
        responses={
            400: {"description": "Body is not a JSON object with an `event`"},
            401: {"description": "Missing, stale or wrong timestamp/signature"},
            413: {"description": "Body over 1 MiB"},
            422: {"description": "An RTMS event lacks a field or has the wrong type"},
        },
    )
    async def webhook(request: Request) -> Response:
        """Verify, parse and act on one delivery; answers well within Zoom's 3 s limit."""
        try:
            body = await _read_body(request, MAX_WEBHOOK_BYTES)
        except _TooLarge:
            return refuse(413, "body over 1 MiB", request)
        except _Gone:  # nobody to answer; nothing to log per connection (an attack makes thousands)
            return Response(status_code=408)
        try:
            verify_request(request.headers, body, secret_token, clock())
        except WebhookRejected as exc:
            return refuse(exc.status, str(exc), request)
        try:
            event = parse_webhook(body)
        except WebhookPayloadError as exc:
            return refuse(exc.status, str(exc), request, exc.event)
        if isinstance(event, UrlValidation):
            return JSONResponse(url_validation_response(secret_token, event.plain_token))
        if isinstance(event, UnhandledEvent):
            log.debug("webhook %s not handled", event.event)
            return JSONResponse({"status": "ignored"})
        key = delivery_key(event)
        if await deliveries.seen(key, clock()):
            log.info("webhook %s for %s is a repeat; ignored", type(event).__name__, key[1])
            return JSONResponse({"status": "duplicate"})
        if isinstance(event, ConcurrencyNotice):
            watch.note(event)
            try:
                await watch.forward(event)
            except BaseException:
                await deliveries.forget(key)  # not kept: Zoom's retry should bring it again
                raise
            return JSONResponse({"status": "ok"})
        log.debug("webhook %s for stream %s accepted", type(event).__name__, event.rtms_stream_id)
        try:
            await manager.handle(event)
        except BaseException:
            await deliveries.forget(key)  # Zoom's retry should be acted on, not dropped
            raise
        return JSONResponse({"status": "ok"})

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("API request answered 503: store unavailable (%s)", exc)
        return JSONResponse({"detail": "the store is unavailable; try again"}, status_code=503)

    @app.exception_handler(RecordRefused)
    async def store_refused(request: Request, exc: RecordRefused) -> JSONResponse:
        return JSONResponse({"detail": f"the store cannot look that up ({exc})"}, status_code=400)

    @app.get("/healthz", summary="Liveness, store reachability and stream counts",
             response_description="`status` ok, or degraded while records wait in the journal "
                                  "for the store; and the manager's counters",
             responses={503: {"description": "The store did not answer (`status`: degraded)"}})
    async def healthz() -> JSONResponse:
        try:
            store_ok = bool(await store.ping())
        except Exception:
            log.warning("health check: store ping failed", exc_info=True)
            store_ok = False
        health = manager.health()
        waiting = health.get("journal_records", 0) or not health.get("store_ok", True)
        body: dict[str, Any] = {"status": "ok" if store_ok and not waiting else "degraded", "store": store_ok}
        body.update({k: v for k, v in health.items() if k not in body})
        if watch.latest:
            body["concurrency"] = watch.health()
        return JSONResponse(body, status_code=200 if store_ok else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
             response_description="Counters and gauges in the Prometheus text format",
             dependencies=[] if settings.metrics_public else reader,
             responses={} if settings.metrics_public else _AUTH_ERRORS)
    async def metrics_text() -> Response:
        return Response(render_metrics(gateway_metrics), media_type=METRICS_CONTENT_TYPE)

    @api.get("/api/meetings", summary="List meetings",
             response_description="`{\"meetings\": [...]}`, newest first")
    async def list_meetings(limit: int = Query(100, ge=1, le=1000),
                            offset: int = Query(0, ge=0, le=2**31)) -> dict[str, Any]:
        return {"meetings": [m.to_dict() for m in await store.list_meetings(limit, offset)]}

    async def meeting_or_404(meeting_uuid: str) -> Any:
        found = await store.get_meeting(meeting_uuid)
        if found is None:
            gone = await revocations.gone(meeting_uuid) if revocations is not None else []
            if gone:  # Zoom revoked its streams: their data was deleted, as Zoom asks
                raise HTTPException(410, {"message": f"meeting {meeting_uuid!r}: its streams were "
                                                     "revoked by Zoom and their data deleted",
                                          "revoked": [t.to_json() for t in gone]})
            raise HTTPException(404, f"no meeting {meeting_uuid!r}")
        return found

    async def files_of(meeting_uuid: str) -> list[MediaFile]:
        """Stored index entries, brought up to date by the writers of files still growing."""
        live = {(f.rtms_stream_id, f.kind, str(f.user_id)): f for f in live_media(meeting_uuid)}
        files = []
        for f in await store.media_files(meeting_uuid):
            now = live.get((f.rtms_stream_id, f.kind, str(f.user_id)))
            if now is not None and not f.complete:
                f = MediaFile(**{**msgspec.structs.asdict(now), "id": f.id})
            files.append(f)
        return files

    # Declared before the detail route: `{meeting_uuid:uuid_path}` there would swallow "/transcript".
    @api.get("/api/meetings/{meeting_uuid:uuid_path}/transcript",
        summary="A meeting's transcript: JSON (whole or a page at a time), text, WebVTT or SRT",
        response_description="The transcript in the requested format; JSON: `{\"meeting_uuid\", "
                             "\"segments\": [...], \"next\"}`, each segment with its `cursor`",
        responses={200: {"content": {"text/plain": {}, "text/vtt": {}, "application/x-subrip": {}}},
                   400: {"description": "A malformed cursor, or a page asked of a text format"},
                   **_NOT_FOUND},
    )
    async def transcript(page: PageParam, meeting_uuid: str = Path(description=_UUID_DOC),
                         format: FormatParam = "json") -> Response:
        if format != "json" and not page.whole:
            raise HTTPException(400, f"after, limit: pages are JSON only; {format} is always whole")
        await meeting_or_404(meeting_uuid)
        rows, after = await read_page(store.transcript_page, meeting_uuid, page)
        if format == "json":
            return JSONResponse(transcript_document(meeting_uuid, rows, after))
        return PlainTextResponse(render_transcript(rows, format, meeting_uuid=meeting_uuid),
                                 media_type=TRANSCRIPT_FORMATS[format])

    @api.get("/api/meetings/{meeting_uuid:uuid_path}/chat/{message_id:path}/history",
             summary="One chat message as it stands and every version of it as it came",
             response_description="`{\"message\": {...}, \"versions\": [...]}`: the versions "
                                  "(new, update, delete, ...) oldest first, each with its "
                                  "`operation`, text, time and `cursor`",
             responses=_NOT_FOUND)
    async def chat_history(meeting_uuid: str = Path(description=_UUID_DOC),
                           message_id: str = Path(description="Zoom's `message_id`")) -> dict[str, Any]:
        await meeting_or_404(meeting_uuid)
        found = await store.chat_message(meeting_uuid, message_id)
        if found is None:
            raise HTTPException(404, "no such chat message in this meeting")
        versions = (await store.chat_history(meeting_uuid, [message_id])).get(message_id, [])
        return {"meeting_uuid": meeting_uuid, "message_id": message_id,
                "message": cursored_json([found], chat_json)[0],
                "versions": cursored_json(versions, chat_version_json)}

    @api.get("/api/meetings/{meeting_uuid:uuid_path}/chat",
             summary="A meeting's chat messages as they stand, oldest first (whole or a page at a time)",
             description="One entry per message: its current text (\"\" once deleted), `edited` "
                         "and `deleted` with their times, `parent_message_id` and `replies` "
                         "(its thread), `files`, and who sent it to whom. Paged, a message sits "
                         "at its latest change: a page after a cursor lists each message changed "
                         "since. `history=true` adds each message's versions.",
             response_description="`{\"messages\": [...], \"next\"}` with sender, recipient, "
                                  "time and `cursor`",
             responses={400: {"description": "A malformed cursor"}, **_NOT_FOUND})
    async def chat(page: PageParam,
                   meeting_uuid: str = Path(description=_UUID_DOC),
                   history: Annotated[bool, Query(description="Add `history` to each message: "
                                                              "every version of it as it came "
                                                              "(new, update, delete), oldest "
                                                              "first")] = False) -> dict[str, Any]:
        await meeting_or_404(meeting_uuid)
        rows, after = await read_page(store.chat_page, meeting_uuid, page)
        messages = cursored_json(rows, chat_json)
        if history:
            ids = [row.record.message_id for row in rows if row.record.message_id is not None]
            versions = await store.chat_history(meeting_uuid, ids)
            for message in messages:
                message["history"] = cursored_json(versions.get(message["message_id"], []),
                                                   chat_version_json)
        return {"meeting_uuid": meeting_uuid, "messages": messages, "next": after}

    @api.get("/api/meetings/{meeting_uuid:uuid_path}/events",
             summary="A meeting's timeline: joins, leaves, active speakers, sharing, video on/off, "
                     "chat groups, Contact Center events, interruptions, session states, audio metadata",
             response_description="`{\"events\": [...], \"next\"}`, oldest first (whole or a "
                                  "page at a time), each with its `cursor`",
             responses={400: {"description": "A malformed cursor"}, **_NOT_FOUND})
    async def events(page: PageParam,
                     meeting_uuid: str = Path(description=_UUID_DOC)) -> dict[str, Any]:
        await meeting_or_404(meeting_uuid)
        rows, after = await read_page(store.timeline_page, meeting_uuid, page)
        return {"meeting_uuid": meeting_uuid, "events": cursored_json(rows, event_json),
                "next": after}

    @api.get("/api/meetings/{meeting_uuid:uuid_path}/participants",
             summary="Who took part: when they joined and left, talk time, segments, chat",
             response_description="`{\"participants\": [...]}`; talk time comes from the "
                                  "active-speaker timeline", responses=_NOT_FOUND)
    async def people(meeting_uuid: str = Path(description=_UUID_DOC)) -> dict[str, Any]:
        found = await meeting_or_404(meeting_uuid)
        end_ms = found.stopped_at_ms or int(clock() * 1000)
        found_people = participants(await store.timeline(meeting_uuid), await store.transcript(meeting_uuid),
                                    await store.chat(meeting_uuid), end_ms=end_ms)
        return {"meeting_uuid": meeting_uuid, "participants": [p.to_dict() for p in found_people]}

    @api.get("/api/meetings/{meeting_uuid:uuid_path}/media",
             summary="A meeting's media files: kind, participant, codec, duration, bytes, download URL",
             response_description="`{\"files\": [...]}`", responses=_NOT_FOUND)
    async def media(request: Request, meeting_uuid: str = Path(description=_UUID_DOC)) -> dict[str, Any]:
        await meeting_or_404(meeting_uuid)
        return {"meeting_uuid": meeting_uuid,
                "files": [{**media_file_json(f),
                           "url": str(request.url_for("download_media", file_id=f.id))}
                          for f in await files_of(meeting_uuid)]}

    @api.get("/api/media/{file_id}", name="download_media",
             summary="Download one media file (numbered frames come as one ZIP)",
             responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}},
                        404: {"description": "No such file"}})
    async def download_media(file_id: int = Path(ge=1, le=2**62)) -> Response:
        f = await store.media_file(file_id)
        if f is None:
            raise HTTPException(404, f"no media file {file_id}")
        found = await asyncio.to_thread(locate, settings.data_dir, f.path)
        if found is None:
            raise HTTPException(404, f"media file {file_id} is not on this gateway's disk")
        path, folder = found
        if folder:
            return StreamingResponse(frames_zip(path), media_type="application/zip", headers={
                "content-disposition": f'attachment; filename="{path.name}.zip"'})
        return FileResponse(path, media_type=MEDIA_TYPES.get(f.format, "application/octet-stream"),
                            filename=path.name)

    @api.get("/api/meetings/{meeting_uuid:uuid_path}", summary="One meeting and its streams",
             response_description="The meeting", responses=_NOT_FOUND)
    async def meeting(meeting_uuid: str = Path(description=_UUID_DOC)) -> dict[str, Any]:
        body: dict[str, Any] = (await meeting_or_404(meeting_uuid)).to_dict()
        return body

    if live is not None:  # before `api`: its meeting route would take ".../live" as a UUID
        feed = LiveFeed(store, live, settings.live_heartbeat_s)  # type: ignore[arg-type]
        app.include_router(live_routes(feed, auth, _AUTH_ERRORS))
    app.include_router(api)
    app.include_router(search_routes(store, _AUTH_ERRORS), dependencies=reader)
    if keys is not None:
        app.include_router(key_routes(keys, auth))
    if outbox is not None:
        app.include_router(webhook_routes(outbox, auth, _AUTH_ERRORS))
    if control is not None:
        app.include_router(stream_routes(control, auth, _AUTH_ERRORS))
    mount_dashboard(app, settings, store=store, manager=manager, auth=auth, media_files=files_of,
                    frames=partial(frames_by_kind, gateway_metrics))
    return app


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or not a valid one (`WWW-Authenticate: Bearer`)"},
    403: {"description": "The key lacks the scope this route needs"},
}
_KEY_NAME = Path(min_length=1, max_length=64, description="The key's name")
_KEY_TIMES = iso_names("created_at_ms", "last_used_at_ms")


def key_routes(keys: KeyStore, auth: Authenticator) -> APIRouter:
    """Managing the stored keys: admin keys only."""
    router = APIRouter(dependencies=[Depends(auth.require(Scope.ADMIN))], responses=_AUTH_ERRORS)

    @router.get("/api/keys", summary="The API keys kept in the store (never the keys themselves)",
                response_description="`{\"keys\": [{name, scope, shown, created_at_ms, last_used_at_ms}]}`; "
                                     "keys from RTMS_API_KEYS are not listed")
    async def list_keys() -> dict[str, Any]:
        listed = msgspec.to_builtins(await keys.list())
        return {"keys": [with_iso(key, _KEY_TIMES) for key in listed]}

    @router.post("/api/keys", status_code=201, summary="Make a key; the answer is the only time it is shown",
                 responses={409: {"description": "A live key has that name"}})
    async def create_key(name: str = Body(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$"),
                         scope: Scope = Body(Scope.READ)) -> dict[str, Any]:
        try:
            key = await keys.create(name, scope)
        except KeyNameTaken as exc:
            raise HTTPException(409, str(exc)) from None
        log.info("API key %r (%s) created", name, scope.value)
        return {"name": name, "scope": scope.value, "key": key}

    @router.delete("/api/keys/{name}", status_code=204, summary="Revoke a key at once",
                   responses={404: {"description": "No live key has that name"}})
    async def revoke_key(name: str = _KEY_NAME) -> Response:
        if not await keys.revoke(name):
            raise HTTPException(404, f"no live key named {name!r}")
        log.info("API key %r revoked", name)
        return Response(status_code=204)

    return router
