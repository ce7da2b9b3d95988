// The meetings list: live first, filtered as you type, re-read when the live feed says a
// meeting started, ended or changed state.
"use strict";
(() => {
  const { api, el, duration, feedItem } = rtms;
  const table = document.getElementById("meetings");
  const body = table.tBodies[0];
  const stateFilter = document.getElementById("filter-state");
  const textFilter = document.getElementById("filter-text");
  const status = document.getElementById("list-status");

  function applyFilters() {
    const state = stateFilter.value, text = textFilter.value.trim().toLowerCase();
    let shown = 0;
    for (const row of body.rows) {
      const visible = (!state || row.dataset.state === state) && (!text || row.textContent.toLowerCase().includes(text));
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    status.textContent = shown + " of " + body.rows.length + " meetings" + (table.dataset.liveFeed === "yes" ? "; updates live" : "");
  }

  function tickDurations() {
    for (const cell of body.querySelectorAll("td.duration")) {
      cell.textContent = duration(Number(cell.dataset.start) || 0, Number(cell.dataset.stop) || 0);
    }
  }

  function row(m) {
    const href = "/meetings/" + encodeURIComponent(m.meeting_uuid);
    const first = el("td", {}, el("a", { class: "uuid", href }, m.meeting_uuid));
    if (m.meeting_id) first.append(el("div", { class: "muted" }, String(m.meeting_id)));
    return el("tr", { dataset: { uuid: m.meeting_uuid, state: m.state } },
      first,
      el("td", { "data-label": "Product" }, m.product || ""),
      el("td", { "data-label": "State" }, el("span", { class: "state state-" + m.state }, m.state === "live" ? "● live" : m.state)),
      el("td", { "data-label": "Start" }, el("time", { datetime: m.started_at_iso || "" }, m.started_at_iso || "–")),
      el("td", { "data-label": "Duration", class: "duration", dataset: { start: m.started_at_ms || "", stop: m.stopped_at_ms || "" } }, "–"),
      el("td", { "data-label": "People" }, String(m.participant_count)),
      el("td", { "data-label": "Segments" }, String(m.segment_count)));
  }

  let pending = null;
  function reload() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        const { meetings } = await api("/api/meetings?limit=500");
        meetings.sort((a, b) => (a.state !== "live") - (b.state !== "live"));
        body.replaceChildren(...meetings.map(row));
        const empty = document.getElementById("empty");
        if (empty && meetings.length) empty.remove();
        tickDurations();
        applyFilters();
      } catch (err) { status.textContent = "Could not refresh the list (" + err.message + ")"; }
    }, 300);
  }

  stateFilter.addEventListener("change", applyFilters);
  textFilter.addEventListener("input", applyFilters);
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  tickDurations();
  applyFilters();
  setInterval(tickDurations, 1000);

  if (table.dataset.liveFeed === "yes") {
    const source = new EventSource("/api/live?kinds=meeting,transcript,participant");
    for (const kind of ["meeting", "transcript", "participant"]) {
      source.addEventListener(kind, (event) => {
        const item = feedItem(event);
        // A new transcript line of a meeting not listed yet, or any meeting change: re-read.
        if (item.kind === "meeting" || !body.querySelector('tr[data-uuid="' + CSS.escape(item.meeting || "") + '"]')) reload();
      });
    }
  }
})();
