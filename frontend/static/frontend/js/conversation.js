// The open conversation: loading it, keeping its messages, header and composer live
// from websocket events (re-fetching server-rendered partials), the row actions
// (undo, edit, retry), and the viewing/replying signals the consumer accepts.

import { api, fragment, swap } from "./api.js";
import { tick } from "./clock.js";
import { initComposer } from "./composer.js";
import { toast } from "./toast.js";

const VIEWING_EVERY_MS = 20_000;
const VIEWING_TTL_MS = 45_000;
const TYPING_TTL_MS = 7_000;
const HEADER_FIELDS = [
  "status",
  "assignee_id",
  "tags",
  "channel_state",
  "awaiting_private",
  "sla_due_at",
  "snoozed_until",
  // The SLA badge (the breach sweep sends sla_state) and the "No reply needed" control.
  "sla_state",
  "sla_kind",
  "sla_lane",
  "sla_breached_at",
  "first_response_at",
  "no_reply_reason",
  "spreading_since",
];
const COMPOSER_FIELDS = ["public_reply_count", "channel_state", "awaiting_private", "status"];

export function createConversation({ slug, socket, userId, names, inbox, list }) {
  const threadPane = document.getElementById("thread-pane");
  const contactPane = document.getElementById("contact-pane");
  const activity = () => document.getElementById("activity");
  const base = `/t/${slug}`;
  let currentId = Number(inbox.dataset.conversationId) || null;
  let composer = null;
  let viewingTimer = null;
  // conversation id -> Map(user id -> {state, at})
  const watchers = new Map();

  const url = (path) => `${base}/conversations/${currentId}/${path}`;
  const filters = () => (inbox.dataset.filters ? `?${inbox.dataset.filters}` : "");

  function setupThread() {
    setupComposer();
    scrollToEnd(true);
    renderActivity();
    tick(threadPane);
  }

  function scrollToEnd(force = false) {
    const wrap = document.getElementById("timeline-wrap");
    if (!wrap) return;
    const near = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 160;
    if (force || near) wrap.scrollTop = wrap.scrollHeight;
    const last = document.querySelector("#timeline > :last-child");
    if (force && last && window.matchMedia("(max-width: 760px)").matches) {
      // Narrow layouts scroll the page, not the timeline.
      last.scrollIntoView({ block: "nearest" });
    }
  }

  async function open(id, { push = true } = {}) {
    if (id === currentId && threadPane.querySelector("#thread")) return;
    const previous = currentId;
    currentId = id;
    const [thread, contact] = await Promise.all([
      fragment(`${base}/conversations/${id}/${filters()}`),
      fragment(`${base}/conversations/${id}/contact/`),
    ]);
    if (currentId !== id) return;
    threadPane.replaceChildren(thread);
    contactPane.replaceChildren(contact);
    inbox.dataset.conversationId = String(id);
    inbox.classList.add("has-conversation");
    if (previous && previous !== id) socket.send({ type: "idle", conversation_id: previous });
    if (push) {
      history.pushState({ conversation: id }, "", `${inbox.dataset.inboxUrl}${id}/${filters()}`);
    }
    document.title = `${thread.querySelector("h2")?.textContent || "Conversation"} · Inbox · Earshot`;
    list.select(id);
    list.markSeen(id);
    setupThread();
    startViewing();
  }

  function close({ push = true } = {}) {
    if (currentId) socket.send({ type: "idle", conversation_id: currentId });
    currentId = null;
    clearInterval(viewingTimer);
    inbox.dataset.conversationId = "";
    inbox.classList.remove("has-conversation");
    threadPane.replaceChildren(emptyThread());
    contactPane.replaceChildren();
    list.select(null);
    if (push) history.pushState({}, "", `${inbox.dataset.inboxUrl}${filters()}`);
  }

  function emptyThread() {
    const div = document.createElement("div");
    div.className = "thread-empty";
    div.innerHTML = '<p class="empty-title">Pick a conversation</p><p>Use j and k to move through the queue.</p>';
    return div;
  }

  // --- Live updates -------------------------------------------------------------

  async function refreshMessage(messageId) {
    if (!currentId) return;
    const id = currentId;
    const row = await fragment(url(`messages/${messageId}/`)).catch(() => null);
    if (!row || id !== currentId) return;
    const existing = document.getElementById(`msg-${messageId}`);
    if (existing) {
      if (existing.querySelector(".edit-form:not([hidden])") && row.dataset.status === "scheduled") {
        return; // the agent is editing this reply; keep their draft
      }
      existing.replaceWith(row);
    } else {
      document.getElementById("timeline")?.append(row);
      scrollToEnd(row.dataset.mine === "1");
    }
    tick(row);
  }

  async function refreshTimeline() {
    if (!currentId) return;
    const fresh = await fragment(url("timeline/")).catch(() => null);
    if (fresh) {
      swap(document.getElementById("timeline"), fresh);
      tick(fresh);
      scrollToEnd(true);
    }
  }

  async function refreshHeader() {
    if (!currentId) return;
    const fresh = await fragment(url(`header/${filters()}`)).catch(() => null);
    if (fresh) {
      swap(document.getElementById("thread-head"), fresh);
      tick(fresh);
    }
  }

  async function refreshComposer() {
    if (!currentId) return;
    const id = currentId;
    const fresh = await fragment(url("composer/")).catch(() => null);
    if (!fresh || id !== currentId) return;
    if (document.getElementById("move-private-dialog")?.open) return;
    // Read the draft only now: a send may have cleared it while this was in flight.
    const saved = composer?.state();
    const hadFocus = Boolean(document.activeElement?.closest("#composer"));
    swap(document.getElementById("composer"), fresh);
    setupComposer();
    composer?.restore(saved);
    if (hadFocus) composer?.focus(saved?.mode);
    tick(fresh);
  }

  function setupComposer() {
    const root = document.getElementById("composer");
    composer = null;
    if (!root) return;
    composer = initComposer(root, {
      slug,
      conversationId: currentId,
      seenSeq: () => socket.lastSeq,
      typing: () => signal("typing"),
      grew: () => scrollToEnd(true),
      sent: async (message) => {
        await refreshMessage(message.id);
        await refreshComposer();
      },
      noted: () => refreshTimeline(),
      moved: async () => {
        await Promise.all([refreshTimeline(), refreshHeader(), refreshComposer()]);
      },
    });
  }

  async function refreshContact() {
    if (!currentId) return;
    const fresh = await fragment(url("contact/")).catch(() => null);
    if (fresh) contactPane.replaceChildren(fresh);
  }

  function handle(event) {
    if (!currentId || event.conversation_id !== currentId) return;
    const changed = event.changed || {};
    if (event.type === "message.created" || event.type === "message.updated") {
      refreshMessage(event.message_id);
      const othersReply =
        event.type === "message.created" && changed.direction === "out" && changed.author_agent_id !== userId;
      if (othersReply) stoppedTyping(changed.author_agent_id);
      if (othersReply || (event.type === "message.updated" && "delivery_status" in changed)) {
        refreshComposer();
      }
      return;
    }
    if (event.type === "conversation.updated" || event.type === "conversation.created") {
      if ("note_id" in changed) refreshTimeline();
      if (HEADER_FIELDS.some((field) => field in changed)) refreshHeader();
      if (COMPOSER_FIELDS.some((field) => field in changed)) refreshComposer();
    }
  }

  // --- Viewing and replying -----------------------------------------------------

  function signal(state) {
    if (currentId) socket.send({ type: state, conversation_id: currentId });
  }

  function startViewing() {
    clearInterval(viewingTimer);
    signal("viewing");
    viewingTimer = setInterval(() => {
      if (document.visibilityState === "visible") signal("viewing");
    }, VIEWING_EVERY_MS);
  }

  function watch(event) {
    if (event.user_id === userId || !event.conversation_id) return;
    const id = event.conversation_id;
    if (!watchers.has(id)) watchers.set(id, new Map());
    const people = watchers.get(id);
    if (event.state === "idle") people.delete(event.user_id);
    else people.set(event.user_id, { state: event.state, at: Date.now() });
    render(id);
  }

  function forget(userIdGone) {
    for (const [id, people] of watchers) {
      if (people.delete(userIdGone)) render(id);
    }
  }

  function stoppedTyping(user) {
    const entry = watchers.get(currentId)?.get(user);
    if (entry && entry.state === "typing") entry.state = "viewing";
    render(currentId);
  }

  function live(id) {
    const now = Date.now();
    const people = watchers.get(id) || new Map();
    const typing = [];
    const viewing = [];
    for (const [user, entry] of people) {
      const age = now - entry.at;
      if (entry.state === "typing" && age < TYPING_TTL_MS) typing.push(names[user] || "Someone");
      else if (age < VIEWING_TTL_MS) viewing.push(names[user] || "Someone");
    }
    return { typing, viewing };
  }

  function sentence(people, verb) {
    if (people.length === 1) return `${people[0]} is ${verb}`;
    return `${people.slice(0, -1).join(", ")} and ${people.at(-1)} are ${verb}`;
  }

  function render(id) {
    const { typing, viewing } = live(id);
    list.watchers(id, typing, viewing);
    if (id !== currentId) return;
    renderActivity();
  }

  function renderActivity() {
    const line = activity();
    if (!line || !currentId) return;
    const { typing, viewing } = live(currentId);
    line.replaceChildren();
    if (typing.length) {
      const dots = document.createElement("span");
      dots.className = "typing-dots";
      dots.setAttribute("aria-hidden", "true");
      dots.append(document.createElement("span"), document.createElement("span"), document.createElement("span"));
      line.append(dots, `${sentence(typing, "replying")}…`);
    }
    const onlyViewing = viewing.filter((name) => !typing.includes(name));
    if (onlyViewing.length) {
      line.append(`${typing.length ? " · " : ""}${sentence(onlyViewing, "viewing")}`);
    }
  }

  setInterval(() => {
    for (const id of watchers.keys()) render(id);
  }, 2000);

  // --- Actions in the pane (delegated: the pane's content is replaced often) ------

  async function act(promise, after) {
    try {
      await promise;
      await after?.();
    } catch (error) {
      toast(error.describe ? error.describe() : error.message, { kind: "error" });
    }
  }

  function patch(body) {
    const id = currentId;
    return act(api(slug, "PATCH", `conversations/${id}/`, body), () =>
      Promise.all([refreshHeader(), refreshComposer(), list.refresh(id)]),
    );
  }

  function currentTags() {
    const data = document.getElementById("tags")?.dataset.tags || "";
    return data.split(",").filter(Boolean);
  }

  threadPane.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const action = target.dataset.action;
    const messageId = target.dataset.messageId;
    if (action === "back") {
      if (event.metaKey || event.ctrlKey) return;
      event.preventDefault();
      close();
    } else if (action === "status") {
      patch({ status: target.dataset.status });
    } else if (action === "untag") {
      patch({ tags: currentTags().filter((tag) => tag !== target.dataset.tag) });
    } else if (action === "undo") {
      target.disabled = true;
      act(api(slug, "POST", `messages/${messageId}/cancel/`, {}), () =>
        Promise.all([refreshMessage(messageId), refreshComposer()]),
      );
    } else if (action === "retry") {
      target.disabled = true;
      act(api(slug, "POST", `messages/${messageId}/retry/`, {}), () => refreshMessage(messageId));
    } else if (action === "edit") {
      const row = target.closest(".msg");
      row.querySelector(".edit-form").hidden = false;
      row.querySelector(".msg-body").hidden = true;
      row.querySelector(".edit-form textarea").focus();
    } else if (action === "edit-cancel") {
      const row = target.closest(".msg");
      row.querySelector(".edit-form").hidden = true;
      row.querySelector(".msg-body").hidden = false;
    }
  });

  threadPane.addEventListener("change", (event) => {
    if (event.target.id === "assignee-select") {
      const value = event.target.value;
      patch({ assignee_id: value ? Number(value) : null });
    }
  });

  threadPane.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.matches(".no-reply-form")) {
      event.preventDefault();
      const id = currentId;
      const reason = form.querySelector("select").value;
      form.querySelector("button").disabled = true;
      act(api(slug, "POST", `conversations/${id}/no-reply/`, { reason }), async () => {
        toast("Marked: no reply needed.");
        await Promise.all([refreshHeader(), list.refresh(id)]);
      }).finally(() => {
        const button = document.querySelector(".no-reply-form button");
        if (button) button.disabled = false;
      });
    } else if (form.matches(".tag-form")) {
      event.preventDefault();
      const tag = form.querySelector("input").value.trim();
      if (tag) patch({ tags: [...currentTags(), tag] });
    } else if (form.matches(".edit-form")) {
      event.preventDefault();
      const id = form.dataset.messageId;
      const error = form.querySelector(".form-error");
      try {
        await api(slug, "PATCH", `messages/${id}/`, { text: form.querySelector("textarea").value });
        form.hidden = true;
        const row = form.closest(".msg");
        row.querySelector(".msg-body").hidden = false;
        await refreshMessage(id);
      } catch (failure) {
        error.textContent = failure.describe ? failure.describe() : failure.message;
      }
    }
  });

  // The contact panel: past conversations open here; merge candidates.
  let searchTimer = null;
  contactPane.addEventListener("input", (event) => {
    const form = event.target.closest(".merge-search");
    if (!form) return;
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const query = encodeURIComponent(event.target.value.trim());
      const found = await fragment(`${form.dataset.url}?q=${query}`).catch(() => null);
      const holder = document.getElementById("merge-candidates");
      if (found && holder) holder.replaceChildren(found);
    }, 250);
  });
  contactPane.addEventListener("submit", async (event) => {
    if (event.target.closest(".merge-search")) event.preventDefault();
    const form = event.target.closest(".contact-details");
    if (!form) return;
    event.preventDefault();
    const status = form.querySelector(".form-status");
    for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
    status.textContent = "";
    const data = new FormData(form);
    try {
      await api(slug, "PATCH", `contacts/${form.dataset.contactId}/`, {
        email: data.get("email"),
        external_crm_id: data.get("external_crm_id"),
        notes: data.get("notes"),
      });
      status.textContent = "Saved";
    } catch (error) {
      let shown = false;
      for (const [field, messages] of Object.entries(error.fields || {})) {
        const slot = form.querySelector(`.field-error[data-field="${field}"]`);
        if (slot) {
          slot.textContent = [].concat(messages).join(" ");
          shown = true;
        }
      }
      if (!shown) toast(error.describe ? error.describe() : error.message, { kind: "error" });
    }
  });
  contactPane.addEventListener("click", (event) => {
    const merge = event.target.closest('[data-action="merge"]');
    if (merge) {
      merge.disabled = true;
      act(
        api(slug, "POST", `contacts/${merge.dataset.contactId}/merge/`, { other_id: Number(merge.dataset.otherId) }),
        async () => {
          toast("Contacts merged.");
          await refreshContact();
        },
      );
      return;
    }
    const link = event.target.closest("[data-conversation-link]");
    if (link && !(event.metaKey || event.ctrlKey || event.shiftKey)) {
      event.preventDefault();
      open(Number(link.dataset.conversationLink));
    }
  });

  window.addEventListener("beforeunload", () => {
    if (currentId) socket.send({ type: "idle", conversation_id: currentId });
  });

  if (currentId) {
    setupThread();
  }

  return {
    open,
    close,
    handle,
    watch,
    forget,
    get currentId() {
      return currentId;
    },
    focusComposer: () => composer?.focus(),
    resumeViewing: () => {
      if (currentId) startViewing();
    },
  };
}
