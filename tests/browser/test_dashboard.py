"""The dashboard, looked at in Chromium: login, the list, a meeting, search, escaping,
sessions and CSRF. The gateway is `serve` in its own process; Zoom is the simulator."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from rtms_gateway.simulator.scenario import CHAT_KINDS, MeetingScript, build_meeting

from ..serve_process import eventually
from .conftest import Dashboard

HOSTILE = "<script>alert(1)</script>"
WIDTHS = (1440, 360)


def scripted(seed: int, duration_s: float, hostile_at: int | None = None) -> MeetingScript:
    """A simulator meeting; with `hostile_at`, that utterance says `HOSTILE`."""
    script = build_meeting(seed, 0, duration_s=duration_s)
    if hostile_at is not None:
        said = list(script.utterances)
        said[hostile_at] = dataclasses.replace(said[hostile_at], text=HOSTILE)
        script = dataclasses.replace(script, utterances=said)
    return script


async def meeting_state(d: Dashboard, uuid: str) -> str | None:
    async with d.api() as http:
        answer = await http.get(f"/api/meetings/{quote(uuid, safe='')}")
        return answer.json()["state"] if answer.status_code == 200 else None


async def stored(d: Dashboard, uuid: str, path: str) -> Any:
    async with d.api() as http:
        answer = await http.get(f"/api/meetings/{quote(uuid, safe='')}{path}")
        answer.raise_for_status()
        return answer.json()


async def all_stored(d: Dashboard, script: MeetingScript) -> bool:
    """The meeting has ended and every line and the mixed audio are in."""
    if await meeting_state(d, script.owner_id) != "stopped":
        return False
    segments = (await stored(d, script.owner_id, "/transcript"))["segments"]
    files = (await stored(d, script.owner_id, "/media"))["files"]
    return len(segments) == len(script.utterances) and any(
        f["format"] == "wav" and f["complete"] for f in files)


async def log_in(page: Any, d: Dashboard, key: str, target: str = "/") -> None:
    await page.goto(d.base + target)
    assert "/login" in page.url
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


async def shoot(page: Any, where: Any, name: str) -> None:
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        path = where / f"{name}-{width}.png"
        await page.screenshot(path=str(path), full_page=width == 1440)
        assert path.stat().st_size > 1000
    await page.set_viewport_size({"width": 1440, "height": 900})


async def test_a_wrong_key_is_refused_and_a_live_meeting_is_listed_then_shown(
        dashboard: Dashboard, browser: Any, screenshots: Any) -> None:
    d = dashboard
    script = scripted(seed=7, duration_s=12, hostile_at=1)  # live while the list is looked at
    dialogs: list[str] = []
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))

    # A wrong key: refused, and no session cookie.
    await page.goto(d.base + "/")
    assert "/login" in page.url
    await page.get_by_label("API key").fill("not-a-key")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("alert").wait_for()
    assert "not valid" in await page.get_by_role("alert").inner_text()
    assert not [c for c in await context.cookies() if c["name"] == "rtms_session"]
    assert (await page.request.get(d.base + "/api/meetings")).status == 401

    handle = d.sim.start_meeting(script)
    assert await eventually(lambda: _is(meeting_state(d, script.owner_id), "live"), 30)
    await page.get_by_label("API key").fill(d.read_key)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(d.base + "/")
    cookie = next(c for c in await context.cookies() if c["name"] == "rtms_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    row = page.locator(f'tr[data-uuid="{script.owner_id}"]')
    await row.wait_for()
    assert await row.get_attribute("data-state") == "live"
    assert "live" in await row.locator(".state").inner_text()
    assert await page.locator("tbody tr").first.get_attribute("data-uuid") == script.owner_id
    await shoot(page, screenshots, "meetings")
    await handle.wait()
    assert await eventually(lambda: all_stored(d, script), 60)

    await row.get_by_role("link").click()
    await page.wait_for_url(re.compile(r"/meetings/"))
    lines = page.locator("#transcript li.line")
    assert await lines.count() == len(script.utterances)
    texts = await lines.locator(".text").all_inner_texts()
    assert texts == [u.text for u in script.utterances]  # in order, the hostile line as text
    who = [w.strip().removesuffix("inferred").strip() for w in await lines.locator(".who").all_inner_texts()]
    assert who == [u.speaker.user_name for u in script.utterances]
    inferred = [await line.locator("abbr.inferred").count() == 1 for line in await lines.all()]
    assert inferred == [u.anonymous for u in script.utterances] and any(inferred)
    assert await page.locator("#transcript script").count() == 0 and not dialogs

    lanes = page.locator("#timeline svg g.lane")
    assert await lanes.count() == len({u.speaker.user_id for u in script.utterances})

    # The share strip: when the screen was shared and by whom (the sharing events), and
    # frames of what was shown, each an image the gateway serves to a signed-in reader only.
    (share,) = script.shares
    periods = page.locator("#shares .share-period")
    assert await periods.count() == 1 and share.speaker.user_name in await periods.inner_text()
    frames = page.locator("#shares figure.share-frame img")
    assert await frames.count() >= 1
    assert await eventually(lambda: frames.first.evaluate("i => i.complete && i.naturalWidth > 0"), 10)
    frame_url = await frames.first.get_attribute("src")
    async with httpx.AsyncClient(base_url=d.base) as anonymous:
        refused = await anonymous.get(frame_url)
    assert refused.status_code == 303 and "/login" in refused.headers["location"]

    # A click on a line seeks the mixed audio to that line's time.
    segments = (await stored(d, script.owner_id, "/transcript"))["segments"]
    files = (await stored(d, script.owner_id, "/media"))["files"]
    wav = next(f for f in files if f["format"] == "wav" and not f["user_id"])
    chosen = len(segments) // 2
    expected = (segments[chosen]["start_time"] - wav["origin_ms"]) / 1000
    await lines.nth(chosen).get_by_role("button").click()
    audio = page.locator("audio[data-mixed='yes']")
    assert await eventually(lambda: _near(audio.evaluate("a => a.currentTime"), expected), 20)
    await shoot(page, screenshots, "meeting")
    await context.close()


async def _is(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def _near(value: Any, wanted: float) -> bool:
    return bool(abs(await value - wanted) < 0.05)


async def ended_meeting(d: Dashboard, seed: int, duration_s: float = 4) -> MeetingScript:
    script = scripted(seed=seed, duration_s=duration_s)
    await d.sim.start_meeting(script).wait()
    assert await eventually(lambda: all_stored(d, script), 60)
    return script


async def test_search_finds_a_phrase_and_opens_the_meeting_at_it(
        dashboard: Dashboard, browser: Any, screenshots: Any) -> None:
    d = dashboard
    script = await ended_meeting(d, seed=11, duration_s=6)
    said = next(u for u in script.utterances if u.text.startswith(("Good morning", "The release",
                                                                  "Can you share", "Let me walk")))
    phrase = " ".join(said.text.split()[1:4])
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await log_in(page, d, d.read_key, "/search")
    await page.get_by_label("Words or").fill(f'"{phrase}"')
    await page.get_by_role("button", name="Search").click()
    result = page.locator("#results a.result").first
    await result.wait_for()
    assert phrase.split()[0].strip(",.").lower() in (await result.locator("mark").first.inner_text()).lower()
    assert said.speaker.user_name in await result.inner_text()
    await shoot(page, screenshots, "search")

    await result.click()
    await page.wait_for_url(re.compile(r"/meetings/.*\?at="))
    opened = page.locator("#transcript li.at")
    assert await opened.locator(".text").inner_text() == said.text
    assert await opened.is_visible() and await opened.evaluate(
        "li => { const r = li.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }")
    await context.close()


async def test_logout_ends_the_session_and_admin_changes_need_the_csrf_token(
        dashboard: Dashboard, browser: Any) -> None:
    d = dashboard
    hook = "http://127.0.0.1:9/hook-of-the-admin-page"  # nothing listens: deliveries fail
    if "/api/webhooks" in await served_paths(d):
        async with d.api() as http:
            added = await http.post("/api/webhooks", json={"url": hook, "events": ["meeting.started"]})
            assert added.status_code == 201, added.text
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, d, d.admin_key, "/webhooks")
    assert page.url.endswith("/webhooks")
    await page.get_by_role("heading", name="Outbound webhooks").wait_for()
    if "/api/webhooks" in await served_paths(d):
        await page.locator("#webhooks h3", has_text=hook).wait_for()
    else:
        await page.locator("#webhooks-absent").wait_for()
    await page.goto(d.base + "/health")
    assert "reachable" in await page.locator("main").inner_text()
    assert await page.locator("#health th", has_text="streams live").count() == 1
    await page.goto(d.base + "/webhooks")

    # The session alone (no token) cannot change anything; the page's token can.
    make = """async ([withToken]) => {
        const headers = {"Content-Type": "application/json"};
        if (withToken) headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
        const body = JSON.stringify({name: withToken ? "made" : "forged", scope: "read"});
        const r = await fetch("/api/keys", {method: "POST", headers, body});
        return r.status;
    }"""
    assert await page.evaluate(make, [False]) == 403
    assert await page.evaluate(make, [True]) == 201
    await page.get_by_label("Name").fill("from-the-form")
    await page.get_by_role("button", name="Create key").click()
    await page.locator("#key-made").filter(has_text="shown this once").wait_for()
    async with d.api() as http:
        names = {k["name"] for k in (await http.get("/api/keys")).json()["keys"]}
    assert {"made", "from-the-form"} <= names and "forged" not in names

    # Logging out: the cookie is gone, and a copy of it kept aside no longer works either.
    kept = next(c for c in await context.cookies() if c["name"] == "rtms_session")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r"/login$"))
    assert not [c for c in await context.cookies() if c["name"] == "rtms_session"]
    await context.add_cookies([kept])
    assert (await page.request.get(d.base + "/api/meetings")).status == 401
    await page.goto(d.base + "/")
    assert "/login" in page.url

    # The logout form itself needs the token: a bare POST leaves the session standing. And a
    # read key's session is not let into the admin page.
    await log_in(page, d, d.read_key)
    assert (await page.request.post(d.base + "/logout")).status == 403
    assert (await page.request.get(d.base + "/api/meetings")).status == 200
    assert (await page.request.get(d.base + "/webhooks")).status == 403
    await context.close()

    # A login form is small: a huge one is refused before it is read to the end.
    async with d.api() as http:
        huge = await http.post("/login", content=b"key=" + b"k" * 100_000,
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413


async def served_paths(d: Dashboard) -> set[str]:
    """The paths the running gateway's app routes (its OpenAPI document lists them)."""
    async with d.api() as http:
        return set((await http.get("/openapi.json")).json()["paths"])


async def test_transcript_lines_arrive_live_in_order_with_their_speakers(
        dashboard: Dashboard, browser: Any) -> None:
    d = dashboard
    if "/api/live" not in await served_paths(d):
        pytest.skip("needs the live feed routes")
    script = scripted(seed=23, duration_s=15)  # long enough that the page is open before it ends
    context = await browser.new_context()
    page = await context.new_page()
    await log_in(page, d, d.read_key)
    handle = d.sim.start_meeting(script)
    # The list, loaded before the meeting began, shows it from the live feed.
    row = page.locator(f'tr[data-uuid="{script.owner_id}"][data-state="live"]')
    await row.wait_for(timeout=30_000)
    await row.get_by_role("link").click()
    await page.wait_for_url(re.compile(r"/meetings/"))
    lines = page.locator("#transcript li.line")
    assert await lines.count() < len(script.utterances)  # the page came before the end
    await page.locator("#meeting-state").filter(has_text="stopped").wait_for(timeout=60_000)
    await handle.wait()
    assert await eventually(lambda: _count_is(lines, len(script.utterances)), 30)
    assert await lines.locator(".text").all_inner_texts() == [u.text for u in script.utterances]
    who = [w.strip().removesuffix("inferred").strip() for w in await lines.locator(".who").all_inner_texts()]
    assert who == [u.speaker.user_name for u in script.utterances]
    inferred = [await line.locator("abbr.inferred").count() == 1 for line in await lines.all()]
    assert inferred == [u.anonymous for u in script.utterances]
    await context.close()


async def _count_is(locator: Any, wanted: int) -> bool:
    return bool(await locator.count() == wanted)


async def test_the_chat_panel_follows_edits_deletions_and_threads_live(dashboard: Dashboard, browser: Any) -> None:
    """Opened while the meeting is live: the simulator's edit and deletion replace the
    messages shown; the reply, the direct message and the file are marked."""
    d = dashboard
    script = build_meeting(11, 0, duration_s=20, chat_lines=len(CHAT_KINDS))
    first, _, reply, direct, shared, update, delete = script.chat
    handle = d.sim.start_meeting(script)
    assert await eventually(lambda: _is(meeting_state(d, script.owner_id), "live"), 30)
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await log_in(page, d, d.read_key, f"/meetings/{quote(script.owner_id, safe='')}")
    assert await page.locator("#chat li.deleted").count() == 0  # what follows comes live
    await page.locator("#chat li.deleted").wait_for(timeout=60_000)
    await handle.wait()
    rows = page.locator("#chat li")
    assert await rows.count() == 5  # the edit and the deletion replaced what they changed
    edited = await page.locator(f'#chat li[data-message="{update.message_id}"]').inner_text()
    assert update.text in edited and "(edited)" in edited
    gone = page.locator(f'#chat li[data-message="{delete.message_id}"]')
    assert "message deleted" in await gone.inner_text() and first.text not in await gone.inner_text()
    assert "reply" in (await page.locator(f'#chat li[data-message="{reply.message_id}"]')
                       .get_attribute("class") or "")
    assert "📎 report.pdf" in await page.locator(f'#chat li[data-message="{shared.message_id}"]').inner_text()
    if direct.receiver is not None:
        shown = await page.locator(f'#chat li[data-message="{direct.message_id}"]').inner_text()
        assert "→ " + direct.receiver.user_name in shown
    await context.close()
