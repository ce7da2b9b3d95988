"""The dashboard's pages: login and logout, the meetings list, one meeting, search, the admin
page (webhooks and keys) and health.

Pages are rendered on the server (Jinja2, autoescaped) from the same store the API reads;
the small scripts in `static/` then keep them current from the live feed and the API, with
the session cookie standing for the API key. A page asked without a session sends the
browser to `/login`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from ..client.lifecycle import MeetingState
from ..sinks.cursors import format_cursor
from ..sinks.exports import (
    chat_json,
    cursored_json,
    event_json,
    hit_json,
    media_file_json,
    segment_json,
)
from ..sinks.keys import Scope, key_hash
from ..sinks.media_export import IMAGE_TYPES, frame_files, locate
from ..sinks.participants import participants
from ..sinks.records import MediaFile
from ..sinks.search import BadSearch
from .session import Session, Sessions

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 4096
LIST_LIMIT = 500
SEARCH_LIMIT = 50
SHARE_STRIP_FRAMES = 12  # shared-screen frames the meeting page shows, spread over the share
EXPORT_FORMATS = ("txt", "vtt", "srt", "json")
# Same-origin only, nothing inline: a string from a meeting that slipped into markup still
# could not run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


class DashboardStore(Protocol):
    async def list_meetings(self, limit: int, offset: int) -> list[Any]: ...
    async def get_meeting(self, meeting_uuid: str) -> Any: ...
    async def transcript_page(self, meeting_uuid: str, *, after: int | None = None,
                              limit: int | None = None) -> list[Any]: ...
    async def chat_page(self, meeting_uuid: str, *, after: int | None = None,
                        limit: int | None = None) -> list[Any]: ...
    async def timeline_page(self, meeting_uuid: str, *, after: int | None = None,
                            limit: int | None = None) -> list[Any]: ...
    async def timeline(self, meeting_uuid: str) -> list[Any]: ...
    async def transcript(self, meeting_uuid: str) -> list[Any]: ...
    async def chat(self, meeting_uuid: str) -> list[Any]: ...
    async def search(self, q: str, *, meeting_uuid: str | None = None, kinds: Any = ...,
                     limit: int = 20) -> list[Any]: ...
    async def media_file(self, file_id: int) -> MediaFile | None: ...
    async def ping(self) -> bool: ...


class KeyHolder(Protocol):
    """Whose key: what the API's principals tell."""

    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> Scope: ...


class KeyChecker(Protocol):
    """The API's authenticator, as the pages use it (the dashboard does not import the API:
    the API mounts the dashboard)."""

    sessions: Any

    async def principal(self, key: str) -> KeyHolder | None: ...
    async def principal_of_hash(self, hashed: str) -> KeyHolder | None: ...
    def _refuse(self, why: str) -> None: ...


class HealthSource(Protocol):
    def health(self) -> dict[str, Any]: ...


class ToLogin(Exception):
    def __init__(self, target: str) -> None:
        self.target = target


def meeting_href(meeting_uuid: str) -> str:
    """The dashboard's address of a meeting (its UUID may hold `/`, `+` and `=`)."""
    return "/meetings/" + quote(meeting_uuid, safe="")


def safe_snippet(snippet: str) -> Markup:
    """A search snippet as markup: the store escapes the text and adds only `<mark>`; if
    anything else looks like a tag, the whole snippet is shown as text instead."""
    bare = snippet.replace("<mark>", "").replace("</mark>", "")
    if "<" in bare or ">" in bare:
        return escape(snippet)
    return Markup(snippet)  # checked just above: only <mark> tags remain


def _local_target(value: str | None) -> str:
    """Where to go after login: a path on this site, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def small_form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form of a few fields; 413 past `MAX_FORM_BYTES`, read no further."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"a form is at most {MAX_FORM_BYTES} bytes")
    return parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)


def route_paths(routes: Iterable[Any], prefix: str = "") -> Iterator[str]:
    """Every path `routes` answer, looking into included routers (FastAPI keeps them whole)."""
    for route in routes:
        path = getattr(route, "path", None)
        if path is not None:
            yield prefix + path
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from route_paths(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def has_route(request: Request, path: str) -> bool:
    return path in set(route_paths(request.app.routes))


def has_meeting_feed(request: Request) -> bool:
    return any(p.startswith("/api/meetings/") and p.endswith("/live")
               for p in route_paths(request.app.routes))


MediaFiles = Callable[[str], Awaitable[list[MediaFile]]]


FrameCounts = Callable[[], dict[str, int]]


def share_frame_url(file_id: int, number: int) -> str:
    return f"/share-frames/{file_id}/{number}"


def _strip_frames(data_dir: Path, files: list[MediaFile], limit: int) -> list[dict[str, Any]]:
    """Blocking: up to `limit` frames of the shared screen, evenly spread, each with its
    address and moment (ms since the epoch)."""
    frames: list[dict[str, Any]] = []
    for f in files:
        found = locate(data_dir, f.path) if f.kind == "share" and f.format == "frames" else None
        if found is None or not found[1] or f.id is None:
            continue
        file_id = f.id
        frames += [{"url": share_frame_url(file_id, number), "at_ms": f.origin_ms + offset}
                   for number, offset, _ in frame_files(found[0])]
    if len(frames) > limit:
        step = len(frames) / limit
        frames = [frames[int(i * step)] for i in range(limit)]
    return frames


def _frame_path(data_dir: Path, f: MediaFile | None, number: int) -> Path | None:
    """Blocking: the image of frame `number` of a shared-screen file of frames."""
    if f is None or f.kind != "share" or f.format != "frames":
        return None
    found = locate(data_dir, f.path)
    if found is None or not found[1]:
        return None
    return next((path for n, _, path in frame_files(found[0]) if n == number), None)


def web_routes(*, store: DashboardStore, manager: HealthSource, auth: KeyChecker,
               sessions: Sessions, media_files: MediaFiles, webhook_path: str,
               data_dir: Path, frames: FrameCounts | None = None) -> APIRouter:
    """The pages; `media_files` lists a meeting's files as the API's media route does;
    `frames` counts the frames received per media kind (the health page's rates)."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals["meeting_href"] = meeting_href
    templates.env.filters["snippet"] = safe_snippet
    router = APIRouter(include_in_schema=False)

    def page(request: Request, name: str, session: Session | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, {"session": session, **context},
                                              status_code=status)
        response.headers["content-security-policy"] = CSP
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "same-origin"
        response.headers["cache-control"] = "no-store"
        return response

    async def signed_in(request: Request) -> tuple[Session, KeyHolder]:
        """The session and whose key it stands for; without one, off to the login page."""
        session = sessions.read(request)
        principal = await auth.principal_of_hash(session.key_hash) if session is not None else None
        if session is None or principal is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise ToLogin(target)
        return session, principal

    def forbidden(request: Request, session: Session) -> Response:
        return page(request, "error.html", session, status=403,
                    title="Not allowed", message="This page needs an admin key; you logged in with a read key.")

    @router.get("/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        return page(request, "login.html", None, next=_local_target(next))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await small_form(request)
        key = (form.get("key") or [""])[0].strip()
        target = _local_target((form.get("next") or ["/"])[0])
        principal = await auth.principal(key) if key else None
        if principal is None:
            auth._refuse("dashboard login with " + ("an unknown key" if key else "no key"))
            return page(request, "login.html", None, status=401, next=target,
                        error="That key is not valid (unknown or revoked).")
        response = RedirectResponse(target, status_code=303)
        sessions.start(response, request, key_hash=key_hash(key), name=principal.name,
                       admin=principal.scope.allows(Scope.ADMIN))
        log.info("dashboard login with key %r", principal.name)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = sessions.read(request)
        form = await small_form(request)
        sent = (form.get("csrf_token") or [""])[0]
        if session is not None and not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, "logging out needs the page's CSRF token")
        response = RedirectResponse("/login", status_code=303)
        sessions.end(response, session)
        return response

    @router.get("/")
    async def meetings_page(request: Request, state: str = "", q: str = "") -> Response:
        session, _ = await signed_in(request)
        rows = [m.to_dict() for m in await store.list_meetings(LIST_LIMIT, 0)]
        rows.sort(key=lambda m: m["state"] != MeetingState.LIVE)  # stable: newest first within each group
        return page(request, "meetings.html", session, meetings=rows, state=state, q=q,
                    live_feed=has_route(request, "/api/live"))

    @router.get("/meetings/{meeting_uuid:uuid_path}")
    async def meeting_page(request: Request, meeting_uuid: str, at: str = "") -> Response:
        session, _ = await signed_in(request)
        found = await store.get_meeting(meeting_uuid)
        if found is None:
            return page(request, "error.html", session, status=404,
                        message="There is no meeting with that UUID.")
        meeting = found.to_dict()
        # Whole, by time, as the API's listings answer without `after` and `limit`.
        rows = (await store.transcript_page(meeting_uuid), await store.chat_page(meeting_uuid),
                await store.timeline_page(meeting_uuid))
        segments = cursored_json(rows[0], segment_json)
        chat = cursored_json(rows[1], chat_json)
        events = cursored_json(rows[2], event_json)
        last_seq = max((row.seq for listing in rows for row in listing), default=None)
        found_files = await media_files(meeting_uuid)
        files = [media_file_json(f) for f in found_files]
        share_frames = await asyncio.to_thread(_strip_frames, data_dir, found_files, SHARE_STRIP_FRAMES)
        end_ms = meeting.get("stopped_at_ms")
        people = [p.to_dict() for p in participants(
            await store.timeline(meeting_uuid), await store.transcript(meeting_uuid),
            await store.chat(meeting_uuid), end_ms=end_ms)]
        data = {"meeting_uuid": meeting_uuid, "state": meeting["state"],
                "started_at_ms": meeting.get("started_at_ms"), "stopped_at_ms": end_ms,
                "events": events, "participants": people,
                "media": [{**f, "url": f"/api/media/{f['id']}"} for f in files],
                "share_frames": share_frames,
                "after": format_cursor(last_seq) if last_seq is not None else None,
                "live_feed": has_meeting_feed(request)}
        api_base = "/api/meetings/" + quote(meeting_uuid, safe="")
        return page(request, "meeting.html", session, meeting=meeting, segments=segments, chat=chat,
                    events=events, people=people, files=files, data=data, at=at,
                    exports=[(fmt, f"{api_base}/transcript?format={fmt}") for fmt in EXPORT_FORMATS])

    @router.get("/share-frames/{file_id}/{number}")
    async def share_frame(request: Request, file_id: int, number: int) -> Response:
        """One frame of a shared screen, for the meeting page's strip."""
        await signed_in(request)
        if not (1 <= file_id <= 2**62 and 0 <= number <= 2**31):
            raise HTTPException(404, "no such frame")
        path = await asyncio.to_thread(_frame_path, data_dir, await store.media_file(file_id), number)
        if path is None:
            raise HTTPException(404, "no such frame")
        return FileResponse(path, media_type=IMAGE_TYPES[path.suffix],
                            headers={"x-content-type-options": "nosniff", "cache-control": "private, max-age=3600"})

    @router.get("/search")
    async def search_page(request: Request, q: str = "") -> Response:
        session, _ = await signed_in(request)
        results: list[dict[str, Any]] = []
        error = None
        if q.strip():
            try:
                hits = await store.search(q, limit=SEARCH_LIMIT)
            except BadSearch as exc:
                error = str(exc)
            else:
                results = [{**hit_json(hit), "href": meeting_href(hit.meeting_uuid) + "?" + urlencode(
                    {"at": _hit_cursor(hit)}) + "#c-" + _hit_cursor(hit)} for hit in hits]
        return page(request, "search.html", session, q=q, results=results, error=error,
                    status=400 if error else 200)

    @router.get("/webhooks")
    async def admin_page(request: Request) -> Response:
        session, principal = await signed_in(request)
        if not principal.scope.allows(Scope.ADMIN):
            return forbidden(request, session)
        return page(request, "admin.html", session, webhooks_api=has_route(request, "/api/webhooks"),
                    keys_api=has_route(request, "/api/keys"))

    @router.get("/health")
    async def health_page(request: Request) -> Response:
        session, _ = await signed_in(request)
        try:
            store_ok = bool(await store.ping())
        except Exception:  # any failure to answer is "not answering", as /healthz says
            store_ok = False
        health = manager.health()
        return page(request, "health.html", session, store_ok=store_ok, health=health,
                    webhook_path=webhook_path, frames=_frames_now(frames))

    @router.get("/health/frames")
    async def frame_counts(request: Request) -> Response:
        """The frames received so far per media kind, and when: the page reads this twice
        and shows the difference over the time between, as frames per second."""
        session = sessions.read(request)
        if session is None or await auth.principal_of_hash(session.key_hash) is None:
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return JSONResponse(_frames_now(frames), headers={"cache-control": "no-store"})

    return router


def _frames_now(frames: FrameCounts | None) -> dict[str, Any]:
    return {"at_ms": int(time.time() * 1000), "frames": frames() if frames is not None else {}}


def _hit_cursor(hit: Any) -> str:
    return format_cursor(hit.seq)


async def to_login(request: Request, exc: ToLogin) -> Response:
    return RedirectResponse("/login?" + urlencode({"next": exc.target}), status_code=303)
