// Shared by the dashboard's pages: API calls with the session cookie and its CSRF token,
// DOM building that only ever sets text (never HTML), and clock formatting.
"use strict";
const rtms = (() => {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  async function api(path, options = {}) {
    const method = (options.method || "GET").toUpperCase();
    const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
    });
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.status === 204 ? null : response.json();
  }

  // el("li", {class: "x", dataset: {cursor: c}}, "text", child, ...): text children become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clock(ms, originMs) {
    if (!ms || !originMs) return "--:--";
    const s = Math.max(0, Math.floor((ms - originMs) / 1000));
    return String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  }

  function duration(startMs, stopMs) {
    if (!startMs) return "–";
    const s = Math.max(0, Math.floor(((stopMs || Date.now()) - startMs) / 1000));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return (h ? h + "h " : "") + m + "m " + String(s % 60).padStart(2, "0") + "s";
  }

  // The live feed's items: the SSE `data` is the record's JSON, alone or inside the feed's
  // envelope ({cursor, kind, type, meeting_uuid, data}); both are read the same way here.
  function feedItem(event) {
    const parsed = JSON.parse(event.data);
    if (parsed && typeof parsed === "object" && "data" in parsed && "kind" in parsed && "cursor" in parsed) {
      return { cursor: parsed.cursor, kind: parsed.kind, type: parsed.type, meeting: parsed.meeting_uuid, data: parsed.data };
    }
    return { cursor: event.lastEventId || (parsed && parsed.cursor), kind: event.type, type: parsed && parsed.type, meeting: parsed && parsed.meeting_uuid, data: parsed };
  }

  const KINDS = ["transcript", "chat", "participant", "speaker", "sharing", "meeting", "media"];
  return { api, el, clock, duration, feedItem, KINDS, csrf };
})();
