// SLA badges ("Due in 12 min", "Due soon · 4 min", "Breached 8 min ago") stay
// honest between live events: every second the badge's state and text are worked
// out again from its data-sla-due / data-sla-soon times, with the same wording as
// frontend/presenters.py sla_badge. The sweep's conversation.updated event then
// re-fetches the server-rendered row and header (inbox.js, conversation.js).

const STATES = ["on_track", "due_soon", "breached"];

// Minutes as "12 min", "1 h 5 min", "3 d"; `up` rounds up (time left).
export function span(seconds, { up }) {
  const whole = Math.floor(seconds / 60) + (up && seconds % 60 ? 1 : 0);
  if (whole < 60) return `${whole} min`;
  const hours = Math.floor(whole / 60);
  const rest = whole % 60;
  if (hours >= 48) return `${Math.floor(hours / 24)} d`;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

export function describe(due, soon, now, { breached = false } = {}) {
  const seconds = (due - now) / 1000;
  if (breached || seconds <= 0) {
    const ago = -seconds;
    return { state: "breached", label: ago < 60 ? "Breached just now" : `Breached ${span(ago, { up: false })} ago` };
  }
  if (soon !== null && now >= soon) return { state: "due_soon", label: `Due soon · ${span(seconds, { up: true })}` };
  return { state: "on_track", label: `Due in ${span(seconds, { up: true })}` };
}

export function tickSla(root = document) {
  const now = Date.now();
  for (const badge of root.querySelectorAll(".sla-badge[data-sla-due]")) {
    const due = Date.parse(badge.dataset.slaDue);
    const soon = badge.dataset.slaSoon ? Date.parse(badge.dataset.slaSoon) : null;
    const { state, label } = describe(due, soon, now, { breached: badge.dataset.slaState === "breached" });
    const text = badge.querySelector(".sla-text");
    if (text && text.textContent !== label) text.textContent = label;
    if (badge.dataset.slaState !== state) {
      badge.dataset.slaState = state;
      for (const name of STATES) badge.classList.toggle(`sla-${name}`, name === state);
    }
  }
}

export function startSlaClock() {
  tickSla();
  setInterval(() => tickSla(), 1000);
}
