// Conveyor dashboard: live job progress over the job's SSE stream, a gentle refresh of
// summary pages while visible, confirmations. Every page reads fine without it.
"use strict";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function setText(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

function followJob(section) {
  const source = new EventSource(section.dataset.stream);
  const fill = section.querySelector("#progress-bar .fill");
  const badge = section.querySelector("#status .badge");
  const timeline = document.getElementById("timeline");
  const apply = (event) => {
    const data = JSON.parse(event.data);
    const state = data.type === "state" ? data.state : data;
    if (!state) return;
    const status = data.type === "state" ? state.status : data.type === "progress" ? "started" : data.type;
    if (state.progress !== undefined && state.progress !== null) {
      if (fill) fill.style.width = Math.min(100, Math.max(0, state.progress)) + "%";
      setText("progress-text", Math.round(state.progress) + "%");
    }
    if (state.stage) setText("stage", state.stage);
    if (state.message) setText("message", state.message);
    if (badge && status) {
      badge.textContent = status;
      badge.className = "badge st-" + status;
    }
    if (timeline && data.type !== "state") {
      const item = document.createElement("li");
      const when = document.createElement("time");
      when.textContent = new Date((data.ts || Date.now() / 1000) * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
      const kind = document.createElement("span");
      kind.className = "badge st-" + data.type;
      kind.textContent = data.type;
      const detail = document.createElement("span");
      detail.textContent = " " + [data.stage, data.message, data.error_message].filter(Boolean).join(" · ");
      item.append(when, " ", kind, detail);
      item.dataset.type = data.type;
      const last = timeline.lastElementChild;
      const lastIsProgress = last && (last.dataset.type === "progress" || last.querySelector(".st-progress"));
      // A run of progress updates shows as its latest one, as on the server.
      if (data.type === "progress" && lastIsProgress) last.replaceWith(item);
      else timeline.append(item);
    }
    if (TERMINAL.has(status)) {
      source.close();
      // The page shows the result or the error: load it once the store has it.
      setTimeout(() => window.location.reload(), 800);
    }
  };
  for (const kind of ["state", "queued", "scheduled", "started", "progress", "retrying", "succeeded", "failed", "cancelled"]) {
    source.addEventListener(kind, apply);
  }
}

function refresh(main) {
  const every = Number(main.dataset.refresh) * 1000;
  const tick = async () => {
    if (document.visibilityState === "visible" && !main.contains(document.activeElement)) {
      try {
        const reply = await fetch(window.location.href, { credentials: "same-origin" });
        if (reply.ok && reply.url === window.location.href) {
          const doc = new DOMParser().parseFromString(await reply.text(), "text/html");
          const fresh = doc.getElementById("main");
          if (fresh) main.innerHTML = fresh.innerHTML;
        }
      } catch (err) { /* offline for a moment: try again next tick */ }
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-stream]");
  if (live) followJob(live);
  const main = document.querySelector("main[data-refresh]");
  if (main) refresh(main);
  document.addEventListener("submit", (event) => {
    const message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("select[data-autosubmit]")) target.form.submit();
    if (target.matches("input[data-select-all]")) {
      for (const box of document.querySelectorAll(`input[name="${target.dataset.selectAll}"]`)) box.checked = target.checked;
    }
  });
});
