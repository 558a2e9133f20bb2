// The composer: replies and notes through the REST API, with the care rules'
// answers shown where the agent is looking (limits, confirmations, refusals).

import { api, ApiError } from "./api.js";
import "./goodwill.js";

const TYPING_EVERY_MS = 2500;

export function initComposer(root, ctx) {
  const form = root.querySelector("#reply-form");
  if (!form) return null;
  const textarea = form.querySelector("#reply-text");
  const counter = form.querySelector("#char-count");
  const signature = form.querySelector("#signature-preview");
  const confirmBox = form.querySelector("#reply-confirm");
  const errorBox = form.querySelector("#reply-error");
  const sendButton = form.querySelector("#send-button");
  const noteForm = root.querySelector("#note-form");
  const dialog = root.querySelector("#move-private-dialog");
  const max = Number(root.dataset.max) || 0;
  const suffix = root.dataset.signature || "";
  let confirmed = [];
  let lastTyping = 0;
  // The event sequence when this draft was started: a reply written while the
  // customer (or another agent) wrote again needs confirming (stale view, R7).
  let draftSeq = null;

  const visibility = () => form.querySelector('input[name="visibility"]:checked')?.value || "";

  function update() {
    const isPublic = visibility() === "public";
    const length = textarea.value.length + (isPublic && textarea.value.trim() ? suffix.length : 0);
    counter.textContent = `${length} / ${max}`;
    counter.classList.toggle("near", length > max * 0.9 && length <= max);
    counter.classList.toggle("over", length > max);
    if (signature) signature.hidden = !isPublic || !suffix;
    sendButton.disabled = length > max || !visibility();
  }

  function hideMessages() {
    confirmBox.hidden = true;
    errorBox.hidden = true;
    errorBox.replaceChildren();
  }

  function showError(error) {
    errorBox.replaceChildren(document.createTextNode(error.describe ? error.describe() : error.message));
    if (error.code === "public_reply_limit" || error.details?.suggestion === "move_to_private") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small secondary";
      button.dataset.action = "move-private";
      button.textContent = "Move to private";
      errorBox.append(button);
    }
    errorBox.hidden = false;
    ctx.grew?.();
  }

  function showConfirm(warnings) {
    const list = confirmBox.querySelector(".confirm-list");
    list.replaceChildren(
      ...Object.values(warnings).map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      }),
    );
    confirmBox.dataset.codes = Object.keys(warnings).join(",");
    confirmBox.hidden = false;
    ctx.grew?.();
    confirmBox.querySelector('[data-action="confirm"]').focus();
  }

  async function send() {
    const text = textarea.value;
    if (!text.trim()) {
      showError(new Error("Write a reply first."));
      textarea.focus();
      return;
    }
    hideMessages();
    sendButton.disabled = true;
    try {
      const message = await api(ctx.slug, "POST", `conversations/${ctx.conversationId}/messages/`, {
        text,
        visibility: visibility(),
        seen_seq: draftSeq ?? ctx.seenSeq(),
        confirm: confirmed,
      });
      textarea.value = "";
      confirmed = [];
      draftSeq = null;
      await ctx.sent(message);
    } catch (error) {
      if (error instanceof ApiError && error.code === "needs_confirmation") {
        showConfirm(error.details.warnings || {});
      } else {
        showError(error);
      }
    } finally {
      update();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    confirmed = [];
    send();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
    if (event.key === "Escape") textarea.blur();
  });
  textarea.addEventListener("input", () => {
    if (!textarea.value.trim()) draftSeq = null;
    else if (draftSeq === null) draftSeq = ctx.seenSeq();
    update();
    const now = Date.now();
    if (textarea.value.trim() && now - lastTyping > TYPING_EVERY_MS) {
      lastTyping = now;
      ctx.typing();
    }
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "visibility") update();
    if (event.target.id === "saved-reply" && event.target.value) {
      const option = event.target.selectedOptions[0];
      const text = option.dataset.text || "";
      if (draftSeq === null) draftSeq = ctx.seenSeq();
      textarea.value = textarea.value.trim() ? `${textarea.value.trimEnd()}\n${text}` : text;
      event.target.value = "";
      textarea.focus();
      update();
    }
  });
  root.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "confirm") {
      confirmed = [...new Set([...confirmed, ...(confirmBox.dataset.codes || "").split(",").filter(Boolean)])];
      send();
    } else if (action === "confirm-cancel") {
      hideMessages();
      textarea.focus();
    } else if (action === "move-private") {
      openMovePrivate();
    } else if (action === "dialog-close") {
      dialog.close();
    }
  });

  // Reply / internal note tabs.
  for (const tab of root.querySelectorAll(".composer-modes .mode")) {
    tab.addEventListener("click", () => setMode(tab.dataset.mode));
  }
  function setMode(mode) {
    for (const tab of root.querySelectorAll(".composer-modes .mode")) {
      const active = tab.dataset.mode === mode;
      tab.classList.toggle("active", active);
      tab.setAttribute("aria-selected", String(active));
    }
    form.hidden = mode !== "reply";
    noteForm.hidden = mode !== "note";
    (mode === "reply" ? textarea : noteForm.querySelector("textarea")).focus();
  }

  noteForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const area = noteForm.querySelector("textarea");
    const box = noteForm.querySelector(".composer-error");
    box.hidden = true;
    try {
      await api(ctx.slug, "POST", `conversations/${ctx.conversationId}/notes/`, { text: area.value });
      area.value = "";
      await ctx.noted();
    } catch (error) {
      box.textContent = error.describe ? error.describe() : error.message;
      box.hidden = false;
    }
  });

  function openMovePrivate() {
    if (!dialog) return;
    const box = dialog.querySelector(".composer-error");
    box.hidden = true;
    dialog.showModal();
    dialog.querySelector("textarea")?.focus();
  }

  dialog?.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const box = dialog.querySelector(".composer-error");
    const submit = event.target.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      await api(ctx.slug, "POST", `conversations/${ctx.conversationId}/move-private/`, {
        public_text: data.get("public_text") || "",
        private_text: data.get("private_text") || "",
        confirm: (dialog.dataset.confirm || "").split(",").filter(Boolean),
      });
      dialog.close();
      await ctx.moved();
    } catch (error) {
      const warnings = error.details?.warnings;
      if (error.code === "needs_confirmation" && warnings) {
        dialog.dataset.confirm = Object.keys(warnings).join(",");
        box.textContent = `${Object.values(warnings).join(" ")} Press Move to private again to send it anyway.`;
      } else {
        box.textContent = error.describe ? error.describe() : error.message;
      }
      box.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });

  update();
  return {
    focus: (mode = "reply") => setMode(mode),
    state: () => ({ draftSeq, text: textarea.value, visibility: visibility(), mode: noteForm && !noteForm.hidden ? "note" : "reply", note: noteForm?.querySelector("textarea").value || "" }),
    restore(saved) {
      if (!saved) return;
      textarea.value = saved.text;
      draftSeq = saved.draftSeq;
      const radio = form.querySelector(`input[name="visibility"][value="${saved.visibility}"]`);
      if (radio && !radio.disabled) radio.checked = true;
      if (noteForm) noteForm.querySelector("textarea").value = saved.note;
      if (saved.mode === "note") {
        form.hidden = true;
        noteForm.hidden = false;
        for (const tab of root.querySelectorAll(".composer-modes .mode")) {
          tab.classList.toggle("active", tab.dataset.mode === "note");
          tab.setAttribute("aria-selected", String(tab.dataset.mode === "note"));
        }
      }
      update();
    },
  };
}
