"""The live feeds: Server-Sent Events and a WebSocket, resuming without a gap.

Each subscriber first subscribes to the hub, then (with a cursor to resume from) replays
the store's feed after it, a page at a time, up to the newest item; then it goes on with
what the hub hands it, skipping items at or before the last one replayed. An item
committed before the subscription is in the store, one committed after it is in the
queue, and the seam sees nothing twice: no gap, no duplicate, across restarts too
(cursors are the store's sequence numbers).

SSE: `id:` the item's cursor, `event:` its kind, `data:` the feed item's JSON (cursor,
kind, type, meeting_uuid, stored_at_ms/iso and `data`, the record as the REST API shows
it). `Last-Event-ID` (what EventSource sends on reconnecting) or `?after=` resumes.
WebSocket: the same JSON, one message per item; the same query parameters; the key as
`Authorization: Bearer`, or (browsers cannot set headers) as the subprotocol
`bearer.<key>` offered beside `rtms.live`.

A subscriber too slow for its queue gets an `overflow` item whose cursor resumes just
after the last item it got, then the stream closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Protocol

import msgspec
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from ..protocol.errors import StoreUnavailable
from ..sinks.cursors import format_cursor
from ..sinks.feed import FeedItem, FeedKind
from ..sinks.keys import Scope as KeyScope
from ..sinks.live import OVERFLOWED, HubFull, LiveFilter, LiveHub, Subscription
from .auth import Authenticator
from .reads import cursor_param

log = logging.getLogger(__name__)

REPLAY_PAGE = 500
SUBPROTOCOL = "rtms.live"
BEARER_SUBPROTOCOL = "bearer."
OVERFLOW = "overflow"
WS_TRY_AGAIN_LATER, WS_GOING_AWAY = 1013, 1001

KINDS_DOC = ("Only these kinds, comma-separated (" + ", ".join(k.value for k in FeedKind)
             + "); all if absent")
LIVE_AFTER_DOC = ("A cursor: replays everything stored after it, then goes on live (empty: "
                  "from the first item). Without it (and without `Last-Event-ID`), only what "
                  "comes next. Opaque: pass it back as it came.")
AfterParam = Annotated[str | None, Query(max_length=64, description=LIVE_AFTER_DOC)]
KindsParam = Annotated[str | None, Query(max_length=200, description=KINDS_DOC)]
LastEventId = Annotated[str | None, Header(
    alias="Last-Event-ID", max_length=64,
    description="What EventSource sends on reconnecting: resume after it")]
UuidParam = Annotated[str, Path(description="The meeting's UUID, percent-encoded")]
MAX_MEETING_PARAM = 4096
MeetingParam = Annotated[str | None, Query(max_length=MAX_MEETING_PARAM,
                                           description="Only this meeting (its UUID)")]


class FeedReader(Protocol):
    async def feed(self, *, after: int | None = None, meeting_uuid: str | None = None,
                   kinds: Any = None, limit: int = 1000) -> list[FeedItem]: ...
    async def feed_head(self) -> int | None: ...


class Overflow(msgspec.Struct):
    """The last message of a subscriber that fell too far behind."""

    cursor: str
    kind: str = OVERFLOW
    detail: str = ("this subscriber fell too far behind and is closed; "
                   "resume after `cursor` (Last-Event-ID or ?after=)")


_encode = msgspec.json.Encoder().encode


def parse_feed_kinds(value: str | None) -> list[FeedKind] | None:
    """`transcript,chat` as feed kinds (None: all); ValueError naming what is unknown."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    known = {k.value for k in FeedKind}
    wrong = [name for name in names if name not in known]
    if wrong or not names:
        raise ValueError(f"kinds: {', '.join(wrong) or 'none given'}: use any of "
                         f"{', '.join(k.value for k in FeedKind)}")
    return [FeedKind(name) for name in names]


class LiveFeed:
    """Subscribing (bounded), replaying and following, for either transport."""

    def __init__(self, store: FeedReader, hub: LiveHub, heartbeat_s: float) -> None:
        self.store, self.hub, self.heartbeat_s = store, hub, heartbeat_s

    async def open(self, wanted: LiveFilter, after: int | None) -> tuple[Subscription, int, bool]:
        """A subscription, the sequence number it starts after, and whether to replay the
        store from there. HubFull or StoreUnavailable leave nothing subscribed."""
        sub = self.hub.subscribe(wanted)
        if after is not None:
            return sub, after, True
        try:
            head = await self.store.feed_head()  # read after subscribing: nothing between
        except BaseException:
            sub.close()
            raise
        return sub, head or 0, False

    async def follow(self, sub: Subscription, start: int, replay: bool
                     ) -> AsyncIterator[FeedItem | Overflow | None]:
        """Items after `start` (the store's, then the hub's); None when nothing came for
        a heartbeat's time; an Overflow last if the subscriber fell behind."""
        last = start
        try:
            while replay:
                page = await self.store.feed(after=last, meeting_uuid=sub.wanted.meeting_uuid,
                                             kinds=sub.wanted.kinds, limit=REPLAY_PAGE)
                for item in page:
                    yield item
                    last = item.seq
                sub.drop_through(last)
                replay = len(page) == REPLAY_PAGE
            while True:
                got = await sub.get(self.heartbeat_s)
                if got is OVERFLOWED:
                    yield Overflow(format_cursor(last))
                    return
                if isinstance(got, FeedItem):
                    if got.seq > last:  # at or before: replayed from the store already
                        yield got
                        last = got.seq
                else:
                    yield None
        except StopAsyncIteration:  # the hub closed: the gateway is stopping
            return
        finally:
            sub.close()


MediaUrl = Callable[[int], str]


def media_url_of(connection: HTTPConnection) -> MediaUrl:
    """Where the API serves a media file, as `/media` lists it (http(s), even for a
    WebSocket subscriber)."""

    def url(file_id: int) -> str:
        found = connection.url_for("download_media", file_id=file_id)
        return str(found.replace(scheme={"ws": "http", "wss": "https"}.get(found.scheme,
                                                                         found.scheme)))

    return url


def item_json(item: FeedItem, media_url: MediaUrl) -> bytes:
    """The item's JSON; a media file's with its download `url`, as the REST API shows it."""
    if item.kind is FeedKind.MEDIA:
        body = msgspec.json.decode(item.data)
        if isinstance(body, dict) and isinstance(body.get("id"), int):
            body["url"] = media_url(body["id"])
            item = msgspec.structs.replace(item, data=msgspec.Raw(_encode(body)))
    return item.to_json()


def sse_event(got: FeedItem | Overflow | None, media_url: MediaUrl) -> bytes:
    if got is None:
        return b": keep-alive\n\n"
    if isinstance(got, Overflow):
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (got.cursor.encode(), OVERFLOW.encode(),
                                                     _encode(got))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (got.cursor.encode(), got.kind.value.encode(),
                                                 item_json(got, media_url))


class _LiveResponse(StreamingResponse):
    """An SSE response whose subscription is let go however the response ends (even
    before its body began)."""

    def __init__(self, body: AsyncIterator[bytes], sub: Subscription) -> None:
        super().__init__(body, media_type="text/event-stream", headers={
            "cache-control": "no-cache", "x-accel-buffering": "no"})  # no proxy buffering
        self._sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._sub.close()


def live_routes(live: LiveFeed, auth: Authenticator, responses: dict[int | str, dict[str, Any]]
                ) -> APIRouter:
    router = APIRouter(responses=responses)
    reader = [Depends(auth.require(KeyScope.READ))]

    async def stream(request: Request, wanted: LiveFilter, after: str | None,
                     last_event_id: str | None) -> _LiveResponse:
        # EventSource reconnects with its first URL (?after= included) and Last-Event-ID:
        # the header is the newer of the two.
        start = (start_after(last_event_id, "Last-Event-ID") if last_event_id
                 else start_after(after, "after"))
        try:
            sub, begin, replay = await live.open(wanted, start)
        except HubFull:
            raise HTTPException(503, "too many live subscribers; try again later",
                                headers={"Retry-After": "5"}) from None

        media_url = media_url_of(request)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for got in live.follow(sub, begin, replay):
                    yield sse_event(got, media_url)
            except StoreUnavailable:  # the client resumes from its last id once it is back
                log.warning("live feed ended: the store does not answer")

        return _LiveResponse(body(), sub)

    sse: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}},
                 "description": "Server-Sent Events: `id:` cursor, `event:` kind, `data:` the "
                                "item's JSON; `: keep-alive` comments while idle; an "
                                "`overflow` event, then the end, for a subscriber too slow"},
           400: {"description": "A malformed cursor or an unknown kind"},
           503: {"description": "As many live subscribers as the gateway takes"}}

    @router.get("/api/meetings/{meeting_uuid:uuid_path}/live", dependencies=reader,
                response_class=StreamingResponse, responses=sse,
                summary="One meeting's live feed (Server-Sent Events), resumable by cursor")
    async def meeting_live(
        request: Request,
        meeting_uuid: UuidParam,
        after: AfterParam = None,
        kinds: KindsParam = None,
        last_event_id: LastEventId = None,
    ) -> _LiveResponse:
        return await stream(request, LiveFilter(meeting_uuid, _kinds(kinds)), after, last_event_id)

    @router.get("/api/live", dependencies=reader, response_class=StreamingResponse,
                responses=sse,
                summary="Every meeting's live feed (Server-Sent Events), filters optional")
    async def all_live(
        request: Request,
        after: AfterParam = None,
        kinds: KindsParam = None,
        meeting: MeetingParam = None,
        last_event_id: LastEventId = None,
    ) -> _LiveResponse:
        return await stream(request, LiveFilter(meeting, _kinds(kinds)), after, last_event_id)

    @router.websocket("/api/live/ws")
    async def live_ws(websocket: WebSocket) -> None:
        await serve_websocket(websocket, live, auth)

    return router


def start_after(value: str | None, name: str) -> int | None:
    """Where a subscriber starts: after a cursor; from the first item if the parameter is
    empty; None (only what comes next) if it is absent. 400 naming `name` if malformed."""
    if value is None:
        return None
    return cursor_param(value, name) or 0


def _kinds(value: str | None) -> list[FeedKind] | None:
    try:
        return parse_feed_kinds(value)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


# ---- WebSocket ---------------------------------------------------------------------------


def _offered_key(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(BEARER_SUBPROTOCOL) and len(offered) > len(BEARER_SUBPROTOCOL):
            return str(offered[len(BEARER_SUBPROTOCOL):])
    return None


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    """An HTTP answer instead of the upgrade (a plain close where the server has no way)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    try:
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status, headers))
    except RuntimeError:
        await websocket.close(code=1008, reason=detail[:120])


async def serve_websocket(websocket: WebSocket, live: LiveFeed, auth: Authenticator) -> None:
    key = _offered_key(websocket)
    try:
        principal = await auth.principal(key) if key is not None else None
    except HTTPException as exc:  # the store cannot check the key
        return await _deny(websocket, exc.status_code, str(exc.detail))
    if principal is None:
        auth._refuse("no key" if key is None else "unknown key")
        return await _deny(websocket, 401,
                           "a valid API key is required: `Authorization: Bearer <key>` or the "
                           f"subprotocol `{BEARER_SUBPROTOCOL}<key>` beside `{SUBPROTOCOL}`")
    if not principal.scope.allows(KeyScope.READ):
        auth._refuse(f"key {principal.name!r} lacks the read scope")
        return await _deny(websocket, 403, "this needs a key with the read scope")
    params = websocket.query_params
    try:
        kinds = parse_feed_kinds(params.get("kinds"))
    except ValueError as exc:
        return await _deny(websocket, 400, str(exc))
    try:
        after = start_after(params.get("after"), "after")
    except HTTPException as exc:
        return await _deny(websocket, 400, str(exc.detail))
    if len(params.get("meeting", "")) > MAX_MEETING_PARAM:
        return await _deny(websocket, 400, f"meeting: at most {MAX_MEETING_PARAM} characters")
    try:
        sub, begin, replay = await live.open(LiveFilter(params.get("meeting"), kinds), after)
    except HubFull:
        return await _deny(websocket, 503, "too many live subscribers; try again later")
    except StoreUnavailable:
        return await _deny(websocket, 503, "the store is unavailable; try again")
    try:
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await _send_items(websocket, live, sub, begin, replay)
    finally:
        sub.close()


async def _send_items(websocket: WebSocket, live: LiveFeed, sub: Subscription, begin: int,
                      replay: bool) -> None:
    """Items as text messages until the client leaves, the subscriber overflows or the
    gateway stops. What the client sends is read (to see it leave) and ignored."""

    async def until_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    media_url = media_url_of(websocket)

    async def send() -> int:
        async for got in live.follow(sub, begin, replay):
            if isinstance(got, FeedItem):
                await websocket.send_text(item_json(got, media_url).decode())
            elif isinstance(got, Overflow):
                await websocket.send_text(_encode(got).decode())
                return WS_TRY_AGAIN_LATER
        return WS_GOING_AWAY

    gone = asyncio.ensure_future(until_gone())
    sending = asyncio.ensure_future(send())
    try:
        await asyncio.wait({gone, sending}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, sending):
            task.cancel()
        await asyncio.gather(gone, sending, return_exceptions=True)
    if sending.done() and not sending.cancelled():
        try:
            code = sending.result()
        except (WebSocketDisconnect, OSError, RuntimeError):
            return
        except StoreUnavailable:
            log.warning("live feed ended: the store does not answer")
            code = WS_TRY_AGAIN_LATER
        try:
            await websocket.close(code=code)
        except (RuntimeError, OSError):
            pass
