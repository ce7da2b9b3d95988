"""Pages (`after`, `limit`, `next`) and search over HTTP, on a real store on SQLite and on
PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from rtms_gateway.api.app import create_app
from rtms_gateway.protocol.constants import EventType
from rtms_gateway.sinks.exports import iso_utc
from rtms_gateway.sinks.records import TimelineEvent

from .gateway_harness import AUTH, make_settings
from .store_cases import UUID, chat_msg, seed, seg
from .stores import DATABASES, a_store

pytestmark = pytest.mark.timeout(120)
MEETING = quote(UUID, safe="")
COUNTS = {"transcript": 20, "chat": 14, "events": 15}  # 14: the last page of 7 is full


class IdleManager:
    async def handle(self, event: object) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"streams_live": 0}


@pytest.fixture(params=DATABASES)
async def api(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        store = opened.store
        await seed(store)
        for i in range(20):  # interleaved, as a meeting writes them
            at = 1_700_000_000_000 + 1000 * i
            joined = TimelineEvent(meeting_uuid=UUID, rtms_stream_id="stream-a", timestamp=at,
                                   event_type=EventType.PARTICIPANT_JOIN, user_id=i,
                                   user_name=f"P{i}")
            await store.write_batch(
                segments=[seg(i)],
                chats=[chat_msg(message_id=f"c{i}", timestamp=at)] if i < COUNTS["chat"] else [],
                events=[joined] if i < COUNTS["events"] else [])
        app = create_app(make_settings(tmp_path), store=store, manager=IdleManager(),
                         keys=store.keys)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                     headers=AUTH) as http:
            yield http, store


ROWS = {"transcript": "segments", "chat": "messages", "events": "events"}


async def _walk(http: httpx.AsyncClient, route: str, limit: int) -> tuple[list[dict], int]:
    rows, after, pages = [], None, 0
    while True:
        query = f"limit={limit}" + (f"&after={after}" if after else "")
        body = (await http.get(f"/api/meetings/{MEETING}/{route}?{query}")).json()
        page = body[ROWS[route]]
        assert 0 < len(page) <= limit
        rows += page
        pages += 1
        if body["next"] is None:
            return rows, pages
        assert body["next"] == page[-1]["cursor"]
        after = body["next"]


@pytest.mark.parametrize("route", ROWS)
async def test_pages_of_seven_walk_a_listing_to_exactly_the_whole_of_it(api, route):
    http, _ = api
    whole = (await http.get(f"/api/meetings/{MEETING}/{route}")).json()
    assert whole["next"] is None and len(whole[ROWS[route]]) == COUNTS[route]
    rows, pages = await _walk(http, route, 7)
    assert rows == whole[ROWS[route]]
    assert pages == -(-COUNTS[route] // 7)  # a full last page says so: `next` is null
    cursors = [r["cursor"] for r in rows]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    last = await http.get(f"/api/meetings/{MEETING}/{route}?after={cursors[-1]}")
    assert last.json()[ROWS[route]] == [] and last.json()["next"] is None


async def test_a_page_starts_right_after_its_cursor(api):
    http, _ = api
    whole = (await http.get(f"/api/meetings/{MEETING}/transcript")).json()["segments"]
    transcript = f"/api/meetings/{MEETING}/transcript"
    page = (await http.get(transcript, params={"after": whole[4]["cursor"], "limit": 3})).json()
    assert page["segments"] == whole[5:8] and page["next"] == whole[7]["cursor"]
    only_after = (await http.get(transcript, params={"after": whole[4]["cursor"]})).json()
    assert only_after["segments"] == whole[5:] and only_after["next"] is None
    from_start = (await http.get(transcript, params={"after": "", "limit": 2})).json()
    assert from_start["segments"] == whole[:2] and from_start["next"] == whole[1]["cursor"]


@pytest.mark.parametrize("query, status, says", [
    ("after=12", 400, "after: not a cursor"),
    ("after=c0000000000001%0A", 400, "after: not a cursor"),
    ("after=" + "c" * 65, 422, "after"), ("limit=0", 422, "limit"), ("limit=1001", 422, "limit"),
    ("format=vtt&limit=5", 400, "after, limit: pages are JSON only"),
])
async def test_a_bad_page_request_is_refused_naming_the_parameter(api, query, status, says):
    http, _ = api
    response = await http.get(f"/api/meetings/{MEETING}/transcript?{query}")
    assert response.status_code == status
    assert says in str(response.json()["detail"])
    for route in ("chat", "events"):
        if "format" not in query:
            listing = await http.get(f"/api/meetings/{MEETING}/{route}?{query}")
            assert listing.status_code == status


async def test_search_answers_with_speaker_time_snippet_and_the_cursor_to_open_the_meeting(api):
    http, store = api
    await store.write_batch(segments=[seg(30, text="Ship the <script>budget</script> on Friday")])
    response = await http.get("/api/search", params={"q": '"budget" friday'})
    assert response.status_code == 200
    (hit,) = response.json()["results"]
    said = seg(30)
    shown = ("meeting_uuid", "kind", "user_id", "user_name", "speaker_inferred", "time_ms")
    assert {k: hit[k] for k in shown} == {
        "meeting_uuid": UUID, "kind": "transcript", "user_id": said.user_id,
        "user_name": said.user_name, "speaker_inferred": False, "time_ms": said.start_time}
    assert hit["time_iso"] == iso_utc(said.start_time)
    assert hit["text"] == "Ship the <script>budget</script> on Friday"
    assert hit["snippet"] == \
        "Ship the &lt;script&gt;<mark>budget</mark>&lt;/script&gt; on <mark>Friday</mark>"
    transcript = f"/api/meetings/{MEETING}/transcript"
    whole = (await http.get(transcript)).json()["segments"]
    assert whole[-1]["cursor"] == hit["cursor"]
    for after in (hit["after"], whole[-2]["cursor"]):  # either opens the transcript at the line
        opened = (await http.get(transcript, params={"after": after, "limit": 1})).json()
        assert [s["cursor"] for s in opened["segments"]] == [hit["cursor"]]
    chat = await http.get("/api/search",
                          params={"q": "hi", "kinds": "chat", "meeting": UUID, "limit": 3})
    assert [r["kind"] for r in chat.json()["results"]] == ["chat"] * 3


@pytest.mark.parametrize("params, says", [
    ({"q": ""}, "q is empty"), ({"q": "()*"}, "q has no words"),
    ({"q": "x", "kinds": "transcript,video"}, "kinds: video"),
    ({"q": "x", "kinds": ","}, "kinds: none given"), ({"q": "x" * 1001}, "longer than 1000"),
])
async def test_a_search_that_cannot_run_is_a_400_saying_why(api, params, says):
    http, _ = api
    response = await http.get("/api/search", params=params)
    assert response.status_code == 400 and says in response.json()["detail"]


async def test_the_api_documents_that_snippets_are_safe_html(api):
    http, _ = api
    operation = (await http.get("/openapi.json")).json()["paths"]["/api/search"]["get"]
    assert "HTML-escaped" in operation["description"] and "<mark>" in operation["description"]
    assert {p["name"] for p in operation["parameters"]} == {"q", "meeting", "kinds", "limit"}
