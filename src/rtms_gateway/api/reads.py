"""Reading records a page at a time (`after`, `limit`, `next`), and searching them.

A page request names the cursor to start after and how many rows to return; the answer
holds the rows (each with its `cursor`) and `next`, the cursor to pass for the following
page (null at the end). Without `after` and `limit`, a listing answers whole, as it always
has. A cursor the gateway never gave out is a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Protocol, TypeVar

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query

from ..sinks.cursors import Cursored, MalformedCursor, format_cursor, parse_cursor
from ..sinks.exports import hit_json
from ..sinks.feed import FeedKind
from ..sinks.search import MAX_QUERY_CHARS, SEARCHABLE, BadSearch, SearchHit

R = TypeVar("R")
MAX_PAGE = 1000
DEFAULT_PAGE = 100  # when only `after` is given

AFTER_DOC = ("A cursor (from a row, a search result or `next`): rows after it, in the order "
             "they were stored (empty: from the first). Opaque: pass it back as it came.")
LIMIT_DOC = (f"At most this many rows (1 to {MAX_PAGE}; {DEFAULT_PAGE} when only `after` "
             "is given). Without `after` and `limit` the listing is whole, by time.")
SNIPPET_DOC = ("Each result's `snippet` is safe to put in HTML as it is: the text HTML-escaped, "
               "the words that matched wrapped in `<mark>...</mark>`, a long text cut to the "
               "words around the first match (`…` where it was cut). `text` is the record's "
               "text as stored, not escaped.")


class PageRequest(msgspec.Struct, frozen=True):
    after: int | None  # a sequence number (the cursor decoded)
    limit: int | None

    @property
    def whole(self) -> bool:
        return self.after is None and self.limit is None


def cursor_param(value: str | None, name: str) -> int | None:
    """The sequence number behind a cursor parameter (None if absent or empty: from the
    start); 400 naming `name` if it is not a cursor."""
    if not value:
        return None
    try:
        return parse_cursor(value)
    except MalformedCursor as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def page_request(
    after: Annotated[str | None, Query(max_length=64, description=AFTER_DOC)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description=LIMIT_DOC)] = None,
) -> PageRequest:
    """A FastAPI dependency: the `after` and `limit` of a listing."""
    return PageRequest(cursor_param(after, "after"), limit)


PageParam = Annotated[PageRequest, Depends(page_request)]


class PagedRead(Protocol[R]):
    def __call__(self, meeting_uuid: str, *, after: int | None = None,
                 limit: int | None = None) -> Awaitable[list[Cursored[R]]]: ...


async def read_page(read: PagedRead[R], meeting_uuid: str, page: PageRequest
                    ) -> tuple[list[Cursored[R]], str | None]:
    """The rows `page` asks for and the cursor of the page after them (None at the end)."""
    if page.whole:
        return await read(meeting_uuid), None
    limit = page.limit or DEFAULT_PAGE
    rows = await read(meeting_uuid, after=page.after, limit=limit + 1)  # one more: is there a next?
    if len(rows) > limit:
        return rows[:limit], format_cursor(rows[limit - 1].seq)
    return rows, None


def parse_kinds(value: str | None) -> list[FeedKind]:
    """`transcript,chat` as kinds of search; 400 naming `kinds` for anything else."""
    if value is None:
        return list(SEARCHABLE)
    names = [name.strip() for name in value.split(",") if name.strip()]
    wrong = [name for name in names if name not in {k.value for k in SEARCHABLE}]
    if wrong or not names:
        known = ", ".join(k.value for k in SEARCHABLE)
        raise HTTPException(400, f"kinds: {', '.join(wrong) or 'none given'}: use any of {known}")
    return [FeedKind(name) for name in names]


class Searcher(Protocol):
    async def search(self, q: str, *, meeting_uuid: str | None = None,
                     kinds: Any = SEARCHABLE, limit: int = 20) -> list[SearchHit]: ...


def search_routes(store: Searcher, responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(responses=responses)

    @router.get(
        "/api/search", summary="Search transcripts and chat: meeting, speaker, time, snippet",
        description="Words must all match, in any order; `\"a phrase\"` matches as written, "
                    "`word*` any word it begins; case does not matter. Other characters "
                    "(operators, parentheses, stray quotes) are read as text. Results come "
                    "best first, each with the `cursor` of the record and `after`, the cursor "
                    "that opens the meeting's transcript (or chat) at it. " + SNIPPET_DOC,
        response_description="`{\"query\": q, \"results\": [{meeting_uuid, kind, cursor, after, "
                             "user_id, user_name, speaker_inferred, time_ms, time_iso, text, "
                             "snippet}]}`",
        responses={400: {"description": "`q` has nothing to search for, is too long, or "
                                         "`kinds` names something unsearchable"}})
    async def search(
        q: Annotated[str, Query(description=f"What to look for (at most {MAX_QUERY_CHARS} "
                                            "characters)")],
        meeting: Annotated[str | None, Query(description="Only this meeting (its UUID)")] = None,
        kinds: Annotated[str | None, Query(description="`transcript`, `chat` or both "
                                                       "(comma-separated); both if absent")] = None,
        limit: Annotated[int, Query(ge=1, le=100, description="At most this many results")] = 20,
    ) -> dict[str, Any]:
        chosen = parse_kinds(kinds)
        try:
            hits = await store.search(q, meeting_uuid=meeting, kinds=chosen, limit=limit)
        except BadSearch as exc:
            raise HTTPException(400, str(exc)) from None
        return {"query": q, "results": [hit_json(hit) for hit in hits]}

    return router

