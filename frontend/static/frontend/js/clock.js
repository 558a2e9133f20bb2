// Keeps relative times ("5m") and hold countdowns current (SLA badges: sla.js).
// The server renders the first value; this only refreshes it.

function span(seconds) {
  const s = Math.abs(Math.trunc(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.trunc(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.trunc(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.trunc(h / 24)}d`;
}

export function ago(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return seconds < 45 ? "now" : span(seconds);
}

export function secondsLeft(iso) {
  return Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
}

export function tick(root = document) {
  for (const el of root.querySelectorAll("[data-ago]")) {
    el.textContent = ago(el.dataset.ago);
  }
  for (const el of root.querySelectorAll("[data-countdown]")) {
    const left = secondsLeft(el.dataset.countdown);
    el.textContent = String(left);
    const row = el.closest(".msg");
    if (left === 0 && row && row.dataset.status === "scheduled") {
      // The hold is over: the worker is sending it; the delivery event follows.
      row.classList.add("hold-over");
      const hold = el.closest(".hold");
      if (hold) hold.textContent = "Sending…";
      for (const button of row.querySelectorAll('[data-action="undo"], [data-action="edit"]')) {
        button.disabled = true;
      }
    }
  }
}

export function startClock() {
  tick();
  setInterval(() => tick(), 1000);
}
