// The health page's frames per second: the frame counters read now and then, each rate the
// difference between two readings over the time between them (the server's clock).
"use strict";
(() => {
  const table = document.getElementById("frames");
  if (!table) return;
  const EVERY_MS = 2000;
  let last = { at: Number(table.dataset.at), frames: {} };
  for (const row of table.querySelectorAll("tbody tr")) last.frames[row.dataset.kind] = Number(row.dataset.count);

  function show(now) {
    const seconds = (now.at_ms - last.at) / 1000;
    for (const [kind, count] of Object.entries(now.frames)) {
      const row = table.querySelector('tr[data-kind="' + CSS.escape(kind) + '"]');
      if (!row) continue;
      const before = last.frames[kind];
      if (seconds > 0 && before !== undefined) {
        row.querySelector(".rate").textContent = (Math.max(0, count - before) / seconds).toFixed(1);
      }
      row.dataset.count = String(count);
      row.querySelector(".count").textContent = String(count);
    }
    last = { at: now.at_ms, frames: now.frames };
  }

  async function read() {
    try {
      show(await rtms.api("/health/frames"));
    } catch (error) {
      // The gateway is away or restarting: the next reading tries again.
    }
    setTimeout(read, EVERY_MS);
  }
  setTimeout(read, EVERY_MS);
})();
