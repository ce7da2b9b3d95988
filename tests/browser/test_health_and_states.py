"""The health page's frames per second and a meeting's session states, looked at in
Chromium while the simulator plays a meeting (the gateway is `serve` in its own process)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rtms_gateway.simulator.faults import Fault, FaultKind

from ..serve_process import eventually
from .conftest import Dashboard
from .test_dashboard import _is, log_in, meeting_state, scripted

AUDIO_RATE = '#frames tr[data-kind="audio"] .rate'


async def test_the_health_page_shows_frames_per_second_while_a_meeting_plays(
        dashboard: Dashboard, browser: Any) -> None:
    d = dashboard
    handle = d.sim.start_meeting(scripted(seed=11, duration_s=30))
    assert await handle.wait_streaming(30)
    page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
    await log_in(page, d, d.read_key, "/health")
    assert await page.locator("#health").is_visible()  # streams live, reconnects, journal, store
    # Audio comes at 50 frames a second: once two readings are in, the rate is above zero.
    await page.wait_for_function(
        "(sel) => { const c = document.querySelector(sel); return c && parseFloat(c.textContent) > 0; }",
        arg=AUDIO_RATE, timeout=60_000)
    assert float(await page.locator(AUDIO_RATE).inner_text()) > 0
    kinds = await page.locator("#frames tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["audio", "video", "share", "transcript", "chat"]
    assert int(await page.locator('#frames tr[data-kind="audio"] .count').inner_text()) > 0
    # The readings need a session, as every data call of the dashboard does.
    assert (await page.request.get(d.base + "/health/frames")).status == 200
    stranger = await browser.new_context()
    assert (await stranger.request.get(d.base + "/health/frames")).status == 401
    handle.request_stop()


async def test_a_pause_shows_in_the_meeting_pages_state_changes(
        dashboard: Dashboard, browser: Any) -> None:
    d = dashboard
    script = scripted(seed=12, duration_s=14)
    handle = d.sim.start_meeting(script, faults=[Fault(FaultKind.PAUSE, 4.0, 3.0)])
    assert await eventually(lambda: _is(meeting_state(d, script.owner_id), "live"), 30)
    page = await (await browser.new_context(viewport={"width": 1440, "height": 900})).new_page()
    await log_in(page, d, d.read_key, "/meetings/" + quote(script.owner_id, safe=""))
    states = page.locator("#states")
    # Whether the page rendered them or saw them arrive live, each is listed once, in order.
    await states.locator('li[data-event="session_resumed"]').wait_for(timeout=60_000)
    session_events = "items => items.map(i => i.dataset.event).filter(e => e.startsWith('session_'))"
    shown = await states.locator("li[data-event]").evaluate_all(session_events)
    assert shown == ["session_started", "session_paused", "session_resumed"]
    assert "session paused" in await states.locator('li[data-event="session_paused"]').inner_text()
    await handle.wait()

    async def stopped_shown() -> bool:
        await page.reload()
        return "session_stopped" in await states.locator("li[data-event]").evaluate_all(session_events)

    assert await eventually(stopped_shown, 30)
    assert await states.locator("li[data-event]").evaluate_all(session_events) == [
        "session_started", "session_paused", "session_resumed", "session_stopped"]
