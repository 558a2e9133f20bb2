// The inbox page: the live conversation list, presence, unread markers, keyboard
// shortcuts, and the one socket that feeds the open conversation too.

import { fragment, swap } from "./api.js";
import { startClock, tick } from "./clock.js";
import { createConversation } from "./conversation.js";
import { startSlaClock } from "./sla.js";
import { LiveSocket } from "./socket.js";

const inbox = document.getElementById("inbox");
if (inbox) start(inbox);

function start(root) {
  const slug = root.dataset.slug;
  const userId = Number(root.dataset.userId);
  const names = JSON.parse(document.getElementById("member-names")?.textContent || "{}");
  const listEl = document.getElementById("conversation-list");
  const banner = document.getElementById("connection-banner");
  const accessBanner = document.getElementById("access-banner");
  const socket = new LiveSocket({
    path: `/ws/t/${slug}/`,
    seq: root.dataset.seq,
    probe: `/t/${slug}/inbox/presence/`,
  });
  const filters = () => (root.dataset.filters ? `?${root.dataset.filters}` : "");
  const list = createList({ slug, root, listEl, filters });
  const conversation = createConversation({ slug, socket, userId, names, inbox: root, list });
  list.conversation = conversation;

  socket.on("state", (state) => {
    // Denied is final: the socket has stopped, and only signing in again helps.
    banner.hidden = state !== "lost";
    accessBanner.hidden = state !== "denied";
    if (state === "open") {
      conversation.resumeViewing();
      refreshPresence();
    }
  });
  for (const type of ["conversation.created", "conversation.updated"]) {
    socket.on(type, (event) => {
      list.refresh(event.conversation_id, { created: type === "conversation.created" });
      conversation.handle(event);
    });
  }
  for (const type of ["message.created", "message.updated"]) {
    socket.on(type, (event) => conversation.handle(event));
  }
  socket.on("viewing", (event) => conversation.watch(event));
  socket.on("typing", (event) => conversation.watch(event));
  socket.on("presence", (event) => {
    if (event.state === "offline") conversation.forget(event.user_id);
    refreshPresence();
  });

  let presenceTimer = null;
  function refreshPresence() {
    clearTimeout(presenceTimer);
    presenceTimer = setTimeout(async () => {
      const fresh = await fragment(`/t/${slug}/inbox/presence/`).catch(() => null);
      if (fresh) swap(document.getElementById("presence"), fresh);
    }, 150);
  }

  listEl.addEventListener("click", (event) => {
    const link = event.target.closest(".conv-link");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    conversation.open(Number(link.closest(".conv-row").dataset.id));
  });

  window.addEventListener("popstate", () => {
    const match = location.pathname.match(/\/inbox\/(\d+)\/$/);
    if (match) conversation.open(Number(match[1]), { push: false });
    else conversation.close({ push: false });
  });

  const form = document.getElementById("filters");
  form?.addEventListener("change", (event) => {
    if (event.target.matches("select")) form.requestSubmit();
  });

  document.addEventListener("keydown", (event) => shortcut(event, { list, conversation }));

  list.paintUnread();
  startClock();
  startSlaClock();
  socket.connect();
}

function createList({ slug, root, listEl, filters }) {
  const seenKey = `earshot.seen.${slug}.${root.dataset.userId}`;
  let seen = {};
  try {
    seen = JSON.parse(localStorage.getItem(seenKey) || "{}");
  } catch {
    seen = {};
  }
  const pending = new Map();
  const empty = document.getElementById("list-empty");
  const unreadCount = document.getElementById("unread-count");
  let countsTimer = null;

  const rows = () => [...listEl.querySelectorAll(":scope > .conv-row")];
  const rowOf = (id) => document.getElementById(`conv-${id}`);

  function sortKey(row) {
    const queue = row.dataset.queue ? Date.parse(row.dataset.queue) : Number.POSITIVE_INFINITY;
    return [queue, -Date.parse(row.dataset.activity || 0), Number(row.dataset.id)];
  }

  function before(a, b) {
    const [x, y] = [sortKey(a), sortKey(b)];
    for (let i = 0; i < x.length; i += 1) {
      if (x[i] !== y[i]) return x[i] < y[i];
    }
    return false;
  }

  function place(row) {
    const next = rows().find((other) => other !== row && before(row, other));
    if (next) listEl.insertBefore(row, next);
    else listEl.append(row);
  }

  function isUnread(row) {
    if (!row.classList.contains("awaiting") || !row.dataset.customerAt) return false;
    if (Number(row.dataset.id) === api.conversation?.currentId) return false;
    const when = seen[row.dataset.id];
    return !when || Date.parse(row.dataset.customerAt) > Date.parse(when);
  }

  function paintUnread() {
    let count = 0;
    for (const row of rows()) {
      const unread = isUnread(row);
      row.classList.toggle("unread", unread);
      if (unread) count += 1;
    }
    unreadCount.textContent = count ? `${count} unread` : "";
    empty.hidden = rows().length > 0;
  }

  async function load(id, { created }) {
    const fresh = await fragment(`/t/${slug}/inbox/rows/${id}/${filters()}`).catch(() => undefined);
    if (fresh === undefined) return;
    const existing = rowOf(id);
    if (fresh === null) {
      existing?.remove();
    } else {
      const current = api.conversation?.currentId;
      fresh.classList.toggle("selected", Number(id) === current);
      if (existing?.classList.contains("cursor")) fresh.classList.add("cursor");
      if (existing) existing.replaceWith(fresh);
      place(fresh);
      if (created || !existing) fresh.classList.add("flash");
      if (Number(id) === current) markSeen(id);
      tick(fresh);
    }
    paintUnread();
    refreshCounts();
  }

  function refreshCounts() {
    clearTimeout(countsTimer);
    countsTimer = setTimeout(async () => {
      const fresh = await fragment(`/t/${slug}/inbox/counts/${filters()}`).catch(() => null);
      if (fresh) swap(document.getElementById("status-tabs"), fresh);
    }, 300);
  }

  function markSeen(id) {
    seen[id] = new Date().toISOString();
    const entries = Object.entries(seen);
    if (entries.length > 500) seen = Object.fromEntries(entries.slice(-400));
    try {
      localStorage.setItem(seenKey, JSON.stringify(seen));
    } catch {
      // Private browsing: unread markers last for this page only.
    }
    paintUnread();
  }

  const api = {
    conversation: null,
    // Several events for one conversation arrive together: fetch its row once.
    refresh(id, { created = false } = {}) {
      if (pending.has(id)) {
        pending.get(id).created ||= created;
        return pending.get(id).promise;
      }
      const entry = { created };
      entry.promise = new Promise((resolve) => {
        setTimeout(() => {
          pending.delete(id);
          load(id, { created: entry.created }).then(resolve, resolve);
        }, 60);
      });
      pending.set(id, entry);
      return entry.promise;
    },
    select(id) {
      for (const row of rows()) {
        const chosen = Number(row.dataset.id) === id;
        row.classList.toggle("selected", chosen);
        const link = row.querySelector(".conv-link");
        if (chosen) link.setAttribute("aria-current", "true");
        else link.removeAttribute("aria-current");
      }
      paintUnread();
    },
    markSeen,
    paintUnread,
    rows,
    watchers(id, typing, viewing) {
      const slot = rowOf(id)?.querySelector("[data-watchers]");
      if (!slot) return;
      slot.classList.toggle("typing", typing.length > 0);
      const first = (name) => name.split(" ")[0];
      if (typing.length) slot.textContent = `${first(typing[0])} replying…`;
      else if (viewing.length) slot.textContent = `${first(viewing[0])}${viewing.length > 1 ? ` +${viewing.length - 1}` : ""} viewing`;
      else slot.textContent = "";
    },
  };
  return api;
}

function shortcut(event, { list, conversation }) {
  if (event.defaultPrevented || event.metaKey || event.ctrlKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, [contenteditable], dialog")) return;
  const key = event.key;
  if (key === "j" || key === "k") {
    event.preventDefault();
    const rows = list.rows();
    if (!rows.length) return;
    const index = rows.findIndex((row) => Number(row.dataset.id) === conversation.currentId);
    const next = rows[Math.min(rows.length - 1, Math.max(0, index + (key === "j" ? 1 : -1)))];
    if (index === -1 && key === "k") return;
    const target = index === -1 ? rows[0] : next;
    conversation.open(Number(target.dataset.id));
    target.scrollIntoView({ block: "nearest" });
    target.querySelector(".conv-link").focus({ preventScroll: true });
  } else if (key === "r") {
    event.preventDefault();
    conversation.focusComposer();
  } else if (key === "e") {
    const resolve = document.querySelector('#thread-head [data-action="status"][data-status="resolved"]');
    if (resolve) {
      event.preventDefault();
      resolve.click();
    }
  } else if (key === "a") {
    const select = document.getElementById("assignee-select");
    if (select) {
      event.preventDefault();
      select.focus();
      try {
        select.showPicker();
      } catch {
        // Not every browser opens a select from script; focus is enough.
      }
    }
  }
}
