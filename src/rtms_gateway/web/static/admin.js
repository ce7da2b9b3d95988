// The admin page: outbound webhooks (when the gateway has them) and API keys. Every change
// is a request with the session's CSRF token (rtms.api adds it).
"use strict";
(() => {
  const { api, el } = rtms;

  async function showWebhooks() {
    const box = document.getElementById("webhooks");
    if (!box || box.dataset.enabled !== "yes") return;
    const status = document.getElementById("webhooks-status");
    try {
      const answer = await api("/api/webhooks");
      const list = Array.isArray(answer) ? answer : (answer.webhooks || answer.subscriptions || []);
      status.textContent = list.length + " subscriptions";
      box.replaceChildren(...list.map((hook) => {
        const deliveries = el("ol", { class: "states" });
        const section = el("div", { class: "card" },
          el("h3", {}, String(hook.url || hook.id)),
          el("p", { class: "muted" }, "id " + String(hook.id) + " · events " + String((hook.events || []).join(", ") || "all")),
          deliveries);
        api("/api/webhooks/" + encodeURIComponent(hook.id) + "/deliveries").then((d) => {
          const rows = Array.isArray(d) ? d : (d.deliveries || []);
          deliveries.replaceChildren(...rows.slice(0, 50).map((x) => {
            const failure = x.last_error || (x.last_status_code && x.last_status_code >= 300 ? "HTTP " + x.last_status_code : "");
            const li = el("li", {}, String(x.type || "") + " · " + String(x.status || x.state || "") + " · attempts " + String(x.attempts ?? "")
              + (failure ? " · last failure: " + String(failure) : ""));
            if (String(x.status || x.state || "").startsWith("dead")) {
              const button = el("button", { type: "button" }, "Replay");
              button.addEventListener("click", async () => {
                await api("/api/webhooks/" + encodeURIComponent(hook.id) + "/deliveries/" + encodeURIComponent(x.id) + "/replay", { method: "POST" });
                button.replaceWith(document.createTextNode(" · replay queued"));
              });
              li.append(" ", button);
            }
            return li;
          }));
        }).catch(() => deliveries.replaceChildren(el("li", { class: "muted" }, "No deliveries to show.")));
        return section;
      }));
    } catch (err) { status.textContent = "Could not read the webhooks (" + err.message + ")"; }
  }

  async function showKeys() {
    const body = document.getElementById("keys");
    if (!body) return;
    const { keys } = await api("/api/keys");
    body.replaceChildren(...keys.map((k) => {
      const revoke = el("button", { type: "button", "aria-label": "Revoke key " + k.name }, "Revoke");
      revoke.addEventListener("click", async () => {
        if (!confirm("Revoke the key " + k.name + "? Everything using it stops working at once.")) return;
        await api("/api/keys/" + encodeURIComponent(k.name), { method: "DELETE" });
        showKeys();
      });
      return el("tr", {}, el("td", {}, k.name), el("td", {}, k.scope), el("td", { class: "uuid" }, k.shown || ""),
        el("td", {}, k.last_used_at_iso || "never"), el("td", {}, revoke));
    }));
  }

  const form = document.getElementById("new-key");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const made = document.getElementById("key-made");
      try {
        const key = await api("/api/keys", { method: "POST", json: { name: form.elements.name.value, scope: form.elements.scope.value } });
        made.textContent = "Key " + key.name + " (" + key.scope + "), shown this once: " + key.key;
        form.reset();
        showKeys();
      } catch (err) { made.textContent = "Not created (" + err.message + ")"; }
      made.hidden = false;
    });
  }
  showWebhooks();
  showKeys();
})();
