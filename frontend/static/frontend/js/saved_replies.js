// Saved replies: add, change and delete them through the REST API, re-fetch the
// server-rendered list after each write, and preview the placeholders as filled in.

import { api } from "./api.js";
import { clearErrors, flash, refresh, showErrors } from "./forms.js";
import { toast } from "./toast.js";

const root = document.getElementById("saved-replies");
const { slug, listUrl, agentName, customer, workspace } = root.dataset;
const form = document.getElementById("reply-form");
const preview = document.getElementById("reply-preview");
const warning = document.getElementById("preview-warning");

// As render_saved_reply fills them; unknown placeholders stay as typed.
function render(body) {
  const brand = form.elements.brand_id;
  const values = {
    first_name: customer,
    agent_name: agentName,
    brand_name: brand.value ? brand.selectedOptions[0].textContent : workspace,
  };
  const unknown = new Set();
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of body.matchAll(/\{(\w+)\}/g)) {
    fragment.append(body.slice(last, match.index));
    if (Object.hasOwn(values, match[1])) {
      const filled = document.createElement("mark");
      filled.textContent = values[match[1]];
      fragment.append(filled);
    } else {
      unknown.add(match[0]);
      fragment.append(match[0]);
    }
    last = match.index + match[0].length;
  }
  fragment.append(body.slice(last));
  return { fragment, unknown };
}

function updatePreview() {
  const body = form.elements.body.value;
  if (!body.trim()) {
    const hint = document.createElement("span");
    hint.className = "muted";
    hint.textContent = "Start writing to see the reply.";
    preview.replaceChildren(hint);
    warning.hidden = true;
    return;
  }
  const { fragment, unknown } = render(body);
  preview.replaceChildren(fragment);
  warning.textContent = unknown.size
    ? `${[...unknown].join(", ")} ${unknown.size > 1 ? "are not placeholders and stay" : "is not a placeholder and stays"} as typed.`
    : "";
  warning.hidden = !unknown.size;
}

function editing(reply) {
  clearErrors(form);
  form.elements.id.value = reply ? reply.id : "";
  form.elements.title.value = reply ? reply.title : "";
  form.elements.body.value = reply ? reply.body : "";
  form.elements.brand_id.value = reply?.brand ? String(reply.brand.id) : "";
  document.getElementById("reply-editor-title").textContent = reply ? `Edit “${reply.title}”` : "Add a saved reply";
  document.getElementById("reply-submit").textContent = reply ? "Save reply" : "Add saved reply";
  form.querySelector('[data-action="cancel"]').hidden = !reply;
  updatePreview();
}

form.addEventListener("input", updatePreview);
form.addEventListener("change", updatePreview);

form.addEventListener("click", (event) => {
  const insert = event.target.closest("[data-insert]");
  if (insert) {
    const body = form.elements.body;
    const at = body.selectionStart ?? body.value.length;
    body.setRangeText(insert.dataset.insert, at, body.selectionEnd ?? at, "end");
    body.focus();
    updatePreview();
  }
  if (event.target.closest('[data-action="cancel"]')) editing(null);
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = form.querySelector(".form-status");
  const submit = document.getElementById("reply-submit");
  const id = form.elements.id.value;
  clearErrors(form);
  submit.disabled = true;
  const payload = {
    title: form.elements.title.value,
    body: form.elements.body.value,
    brand_id: form.elements.brand_id.value ? Number(form.elements.brand_id.value) : null,
  };
  try {
    const reply = id
      ? await api(slug, "PATCH", `saved-replies/${id}/`, payload)
      : await api(slug, "POST", "saved-replies/", payload);
    await refresh("reply-list", listUrl);
    editing(null);
    flash(status, id ? "Reply saved" : "Reply added");
    document.getElementById(`reply-${reply.id}`)?.classList.add("just-saved");
  } catch (error) {
    showErrors(form, error)?.focus?.();
  } finally {
    submit.disabled = false;
  }
});

root.addEventListener("click", async (event) => {
  const button = event.target.closest("#reply-list [data-action]");
  if (!button) return;
  const id = button.closest("[data-reply-id]").dataset.replyId;
  try {
    if (button.dataset.action === "delete") {
      if (!window.confirm("Delete this saved reply?")) return;
      button.disabled = true;
      await api(slug, "DELETE", `saved-replies/${id}/`);
      if (form.elements.id.value === id) editing(null);
      await refresh("reply-list", listUrl);
      toast("Saved reply deleted.");
    } else {
      editing(await api(slug, "GET", `saved-replies/${id}/`));
      document.getElementById("reply-editor").scrollIntoView({ behavior: "smooth", block: "start" });
      form.elements.title.focus({ preventScroll: true });
    }
  } catch (error) {
    button.disabled = false;
    toast(error.describe ? error.describe() : error.message, { kind: "error" });
  }
});
