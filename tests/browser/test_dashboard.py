"""The dashboard, looked at in Chromium: login, the list, a meeting, search, escaping,
sessions and CSRF. The gateway is `serve` in its own process; Zoom is the simulator."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import quote

import pytest

from rtms_gateway.simulator.scenario import MeetingScript, build_meeting

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
    script = scripted(seed=7, duration_s=8, hostile_at=1)
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
    who = [w.strip().removesuffix("ⓘ").strip() for w in await lines.locator(".who").all_inner_texts()]
    assert who == [u.speaker.user_name for u in script.utterances]
    inferred = [await line.locator("abbr.inferred").count() == 1 for line in await lines.all()]
    assert inferred == [u.anonymous for u in script.utterances] and any(inferred)
    assert await page.locator("#transcript script").count() == 0 and not dialogs

    lanes = page.locator("#timeline svg g.lane")
    assert await lanes.count() == len({u.speaker.user_id for u in script.utterances})

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
