// One meeting: transcript lines that seek the recording, the speaker timeline (SVG), the
// share strip, participants, and everything arriving live from the meeting's feed.
"use strict";
(() => {
  const { api, el, clock, feedItem } = rtms;
  const data = JSON.parse(document.getElementById("meeting-data").textContent);
  const apiBase = "/api/meetings/" + encodeURIComponent(data.meeting_uuid);
  const transcript = document.getElementById("transcript");
  const chat = document.getElementById("chat");
  const seen = new Set([...document.querySelectorAll("[id^='c-']")].map((n) => n.id.slice(2)));
  const segments = [...transcript.querySelectorAll("li.line")].map((li) => ({
    user_id: li.dataset.user, user_name: li.querySelector(".who").firstChild.textContent.trim(),
    start: Number(li.dataset.start) || 0,
  }));
  const SVG = "http://www.w3.org/2000/svg";

  // ---- seeking: a transcript line plays the recording from its time ----------------------
  function mainAudio() {
    return document.querySelector("audio[data-mixed='yes']") || document.querySelector("audio");
  }
  function seekTo(startMs) {
    const audio = mainAudio();
    if (!audio || !startMs) return;
    const origin = Number(audio.dataset.origin) || data.started_at_ms || startMs;
    const seconds = Math.max(0, (startMs - origin) / 1000);
    const wasPlaying = !audio.paused;
    const apply = () => { audio.currentTime = seconds; if (wasPlaying) audio.play().catch(() => {}); };
    if (audio.readyState >= 1) apply(); else audio.addEventListener("loadedmetadata", apply, { once: true });
  }
  transcript.addEventListener("click", (event) => {
    const line = event.target.closest("li.line");
    if (!line) return;
    for (const old of transcript.querySelectorAll("li.at")) old.classList.remove("at");
    line.classList.add("at");
    seekTo(Number(line.dataset.start));
  });

  // ---- the speaker timeline: one lane per participant who spoke ---------------------------
  function speakerSpans() {
    // Who spoke when, from the transcript (start to the next line's start, at most 15 s) and
    // the active-speaker changes (the lane exists even for someone with no line yet).
    const spans = [];
    const names = new Map();
    const sorted = segments.filter((s) => s.start && s.user_id && s.user_id !== "0").sort((a, b) => a.start - b.start);
    sorted.forEach((s, i) => {
      const next = sorted[i + 1];
      spans.push({ who: s.user_id, from: s.start, to: Math.min(next ? next.start : s.start + 4000, s.start + 15000) });
      if (!names.has(s.user_id)) names.set(s.user_id, s.user_name);
    });
    for (const e of data.events) {
      if (e.event === "active_speaker_change" && e.user_id && String(e.user_id) !== "0") {
        const id = String(e.user_id);
        if (!names.has(id) || !names.get(id)) names.set(id, e.user_name || "user " + id);
      }
    }
    return { spans, names };
  }
  function shareSpans() {
    const out = [];
    let open = null;
    for (const e of data.events) {
      if (e.event === "sharing_start") open = { from: e.timestamp, who: e.user_name || (e.user_id ? "user " + e.user_id : "someone") };
      else if (e.event === "sharing_stop" && open) { out.push({ ...open, to: e.timestamp }); open = null; }
    }
    if (open) out.push({ ...open, to: data.stopped_at_ms || Date.now() });
    return out;
  }
  function drawTimeline() {
    const box = document.getElementById("timeline");
    const { spans, names } = speakerSpans();
    const shares = shareSpans();
    const lanes = [...names.keys()];
    const times = spans.flatMap((s) => [s.from, s.to]).concat(shares.flatMap((s) => [s.from, s.to]));
    const t0 = data.started_at_ms || Math.min(...times);
    const t1 = Math.max(data.stopped_at_ms || 0, ...times, t0 + 1000);
    const labelW = 150, width = 1000, laneH = 26, rows = lanes.length + (shares.length ? 1 : 0);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(rows, 1) * laneH + 20}`);
    svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
    const x = (t) => labelW + (width - labelW - 10) * (t - t0) / (t1 - t0);
    const node = (tag, attrs, text) => {
      const n = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
      if (text !== undefined) n.textContent = text;
      svg.append(n);
      return n;
    };
    lanes.forEach((id, i) => {
      const g = node("g", { class: "lane", "data-user": id });
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("class", "lane-label"); label.setAttribute("x", 4); label.setAttribute("y", i * laneH + 17);
      label.textContent = (names.get(id) || "user " + id).slice(0, 22);
      g.append(label);
      for (const s of spans.filter((s) => s.who === id)) {
        const bar = document.createElementNS(SVG, "rect");
        bar.setAttribute("class", "bar"); bar.setAttribute("x", x(s.from)); bar.setAttribute("y", i * laneH + 5);
        bar.setAttribute("width", Math.max(2, x(s.to) - x(s.from))); bar.setAttribute("height", laneH - 10);
        const tip = document.createElementNS(SVG, "title");
        tip.textContent = (names.get(id) || id) + " " + clock(s.from, t0) + "–" + clock(s.to, t0);
        bar.append(tip);
        g.append(bar);
      }
    });
    if (shares.length) {
      const y = lanes.length * laneH;
      node("text", { class: "lane-label", x: 4, y: y + 17 }, "Screen share");
      for (const s of shares) node("rect", { class: "share", x: x(s.from), y: y + 5, width: Math.max(2, x(s.to) - x(s.from)), height: laneH - 10 });
    }
    node("text", { class: "lane-label", x: labelW, y: rows * laneH + 16 }, clock(t0, t0));
    node("text", { class: "lane-label", x: width - 60, y: rows * laneH + 16 }, clock(t1, t0));
    box.replaceChildren(svg);
    drawShareStrip(shares, t0);
  }

  // The share strip: when the screen was shared and by whom, then frames of what was shown.
  function drawShareStrip(shares, t0) {
    const strip = document.getElementById("shares");
    const periods = shares.map((s) => el("span", { class: "share-period" }, clock(s.from, t0) + "–" + clock(s.to, t0) + " " + s.who));
    const frames = (data.share_frames || []).map((f) => el("figure", { class: "share-frame" },
      el("a", { href: f.url }, el("img", { src: f.url, alt: "Shared screen at " + clock(f.at_ms, t0), loading: "lazy" })),
      el("figcaption", {}, clock(f.at_ms, t0))));
    strip.replaceChildren(...periods, ...frames);
    if (!periods.length && !frames.length) strip.replaceChildren(el("span", { class: "muted" }, "No screen shared."));
  }

  // ---- live items -------------------------------------------------------------------------
  function nearBottom(list) { return list.scrollHeight - list.scrollTop - list.clientHeight < 48; }

  function addSegment(cursor, seg) {
    const start = seg.start_time || seg.timestamp;
    const who = el("span", { class: "who" }, seg.user_name || "user " + seg.user_id);
    if (seg.speaker_inferred) who.append(" ", el("abbr", { class: "inferred", title: "speaker inferred from who was talking" }, "inferred"));
    const line = el("li", { class: "line", id: "c-" + cursor, dataset: { cursor, user: String(seg.user_id), start: String(start || "") } },
      el("button", { type: "button", class: "seek" }, el("span", { class: "t" }, clock(start, data.started_at_ms)), who, el("span", { class: "text" }, seg.text)));
    const follow = nearBottom(transcript);
    transcript.append(line);
    if (follow) transcript.scrollTop = transcript.scrollHeight;  // unless the reader scrolled up
    segments.push({ user_id: String(seg.user_id), user_name: seg.user_name, start });
    drawTimeline();
  }

  // An update or a deletion is a new item for a message already shown: it replaces it.
  function addChat(cursor, m) {
    const empty = chat.querySelector(".empty");
    if (empty) empty.remove();
    const classes = [m.parent_message_id ? "reply" : "", m.deleted ? "deleted" : ""].filter(Boolean).join(" ");
    const files = m.deleted ? [] : (m.files || []).map((f) => el("span", { class: "file" }, " 📎 " + (f.file_name || "file")));
    const replies = (m.replies || []).length;
    const line = el("li", { id: "c-" + cursor, class: classes || null, dataset: { message: m.message_id || "" } },
      m.parent_message_id ? el("span", { class: "muted", title: "a reply in a thread" }, "↳ ") : null,
      el("span", { class: "t" }, clock(m.timestamp, data.started_at_ms)), " ",
      el("span", { class: "who" }, m.sender_name || "?"),
      m.receiver_user_id != null ? el("span", { class: "to" }, " → " + (m.receiver_name || m.receiver_user_id)) : null, " ",
      m.deleted ? el("span", { class: "text muted" }, "message deleted") : el("span", { class: "text" }, m.text || ""),
      m.edited && !m.deleted ? el("span", { class: "muted" }, " (edited)") : null, ...files,
      replies ? el("span", { class: "muted" }, " " + replies + (replies === 1 ? " reply" : " replies")) : null);
    const shown = m.message_id ? [...chat.children].find((li) => li.dataset.message === m.message_id) : null;
    if (shown) { shown.replaceWith(line); return; }
    chat.append(line);
    if (nearBottom(chat)) chat.scrollTop = chat.scrollHeight;
  }

  function showBadge(state) {
    const badge = document.getElementById("meeting-state");
    badge.textContent = state === "live" ? "● live" : state;
    badge.className = "state state-" + state;
  }

  // What Zoom reports outside the events: the session paused, resumed..., the interpreter's metadata.
  const CHANGES = { audio_metadata: "AI interpreter audio metadata" };
  function showChange(d) {
    const name = String(d.event || "");
    document.getElementById("states").append(el("li", { dataset: { event: name } },
      el("span", { class: "t" }, clock(d.timestamp, data.started_at_ms)), " " + (CHANGES[name] || name.replace(/_/g, " "))));
    const badge = document.getElementById("meeting-state");
    if (name === "session_paused" && badge.textContent.includes("live")) showBadge("paused");
    else if (name === "session_resumed" && badge.textContent === "paused") showBadge("live");
  }

  function showState(item) {
    const d = item.data || {};
    if (item.type === "meeting.session_state" || item.type === "meeting.audio_metadata") return showChange(d);
    let state = d.state;
    if (item.type === "meeting.ended") state = "stopped";
    else if (item.type === "meeting.started") state = "live";
    else if (item.type === "meeting.interrupted") state = "reconnecting";
    if (!state) return;
    showBadge(state);
    document.getElementById("states").append(el("li", {}, el("span", { class: "t" }, clock(Date.now(), data.started_at_ms)), " " + (item.type || "state") + ": " + state));
    if (item.type === "meeting.ended") data.stopped_at_ms = d.stopped_at_ms || Date.now();
  }

  let peopleTimer = null;
  function refreshPeople() {
    clearTimeout(peopleTimer);
    peopleTimer = setTimeout(async () => {
      const { participants } = await api(apiBase + "/participants");
      document.querySelector("#people tbody").replaceChildren(...participants.map((p) => el("tr", {},
        el("td", {}, p.user_name || "user " + p.user_id), el("td", {}, clock(p.joined_at_ms, data.started_at_ms)),
        el("td", {}, p.left_at_ms ? clock(p.left_at_ms, data.started_at_ms) : "–"), el("td", {}, p.talk_time_s.toFixed(1) + " s"))));
    }, 500);
  }

  function onItem(event) {
    const item = feedItem(event);
    if (!item.cursor || seen.has(item.cursor)) return;  // a resume may repeat what the page has
    seen.add(item.cursor);
    if (item.kind === "transcript") addSegment(item.cursor, item.data);
    else if (item.kind === "chat" && !("event" in (item.data || {}))) addChat(item.cursor, item.data);
    else if (item.kind === "meeting") showState(item);
    else if (item.kind === "participant" || item.kind === "speaker" || item.kind === "sharing") {
      data.events.push(item.data);
      drawTimeline();
      refreshPeople();
    }
  }

  drawTimeline();
  const at = new URLSearchParams(location.search).get("at");
  if (at) {
    const target = document.getElementById("c-" + at);
    if (target) {
      target.classList.add("at");
      target.scrollIntoView({ block: "center" });
      const button = target.querySelector("button");
      if (button) button.focus({ preventScroll: true });
    }
  }
  if (data.live_feed && data.state !== "stopped" && data.state !== "failed") {
    const url = apiBase + "/live" + (data.after ? "?after=" + encodeURIComponent(data.after) : "");
    const source = new EventSource(url);
    for (const kind of rtms.KINDS) source.addEventListener(kind, onItem);
    source.addEventListener("message", onItem);
  }
})();
