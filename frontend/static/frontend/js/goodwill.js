// Goodwill gestures: fills the composer's goodwill row and the reports section
// (server-rendered fragments), sends a private reply with a code in one click,
// and imports codes or adds pools on the settings page. Loaded on every page.
// The pools' counts are live: when a code is used or codes are imported, the
// server pushes "goodwill.pool" (goodwill/services.py) and every open composer
// showing that pool with another count fetches its row again.

import { api, ApiError } from "./api.js";

async function fill(slot) {
  slot.dataset.loaded = "1";
  const response = await fetch(slot.dataset.url, { credentials: "same-origin" });
  if (!response.ok) return;
  // A notice of a code just sent stays when the row is fetched again.
  const sent = slot.querySelector(".goodwill-sent");
  slot.innerHTML = await response.text();
  if (sent) slot.querySelector("#goodwill-row")?.prepend(sent);
  syncVisibility(slot);
}

function poolChanged(event) {
  const { pool_id: poolId, available } = event;
  document.querySelectorAll("[data-goodwill-slot][data-loaded]").forEach((slot) => {
    const button = slot.querySelector(`[data-goodwill-pool="${Number(poolId)}"]`);
    if (button && button.dataset.available !== String(available)) fill(slot);
  });
}

function fillAll(root = document) {
  root.querySelectorAll("[data-goodwill-slot]:not([data-loaded])").forEach((slot) => fill(slot));
}

function composerOf(slot) {
  return slot.closest("#reply-form");
}

function syncVisibility(slot) {
  const form = composerOf(slot);
  if (!form) return;
  const isPublic = form.querySelector('input[name="visibility"]:checked')?.value === "public";
  const hint = slot.querySelector("[data-goodwill-public]");
  if (hint) hint.hidden = !isPublic;
  slot.querySelectorAll("[data-goodwill-pool]").forEach((button) => {
    button.classList.toggle("is-public", isPublic);
  });
}

async function sendWithCode(button) {
  const slot = button.closest("[data-goodwill-slot]");
  const form = composerOf(slot);
  const textarea = form.querySelector("#reply-text");
  const errorBox = slot.querySelector("[data-goodwill-error]");
  errorBox.hidden = true;
  button.disabled = true;
  const confirm = (button.dataset.confirm || "").split(",").filter(Boolean);
  try {
    const result = await api(slot.dataset.slug, "POST", `conversations/${slot.dataset.conversationId}/goodwill/`, {
      pool_id: Number(button.dataset.goodwillPool),
      text: textarea.value,
      visibility: form.querySelector('input[name="visibility"]:checked')?.value || undefined,
      confirm,
    });
    textarea.value = "";
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    await fill(slot);
    slot.querySelectorAll(".goodwill-sent").forEach((notice) => notice.remove());
    const done = document.createElement("p");
    done.className = "notice goodwill-sent";
    done.textContent = `Code ${result.code} attached to your private reply.`;
    slot.querySelector("#goodwill-row")?.prepend(done);
  } catch (error) {
    if (error instanceof ApiError && error.code === "needs_confirmation") {
      button.dataset.confirm = Object.keys(error.details.warnings || {}).join(",");
      errorBox.textContent = `${Object.values(error.details.warnings || {}).join(" ")} Click again to send anyway.`;
    } else {
      errorBox.textContent = error.describe ? error.describe() : error.message;
    }
    errorBox.hidden = false;
    button.disabled = false;
  }
}

function showImportErrors(box, error) {
  box.replaceChildren(document.createTextNode(error.describe ? error.describe() : error.message));
  const lines = error.details?.lines || [];
  if (lines.length) {
    const list = document.createElement("ul");
    for (const bad of lines) {
      const item = document.createElement("li");
      item.textContent = `Line ${bad.line}: ${bad.text || "(empty)"}: ${bad.reason}`;
      list.append(item);
    }
    box.append(list);
  }
  box.hidden = false;
}

async function importCodes(form) {
  const slug = document.getElementById("goodwill-pools").dataset.slug;
  const poolId = form.closest("[data-pool-id]").dataset.poolId;
  const box = form.querySelector(".import-errors");
  box.hidden = true;
  const file = form.elements.file.files[0];
  const codes = file ? await file.text() : form.elements.codes.value;
  try {
    await api(slug, "POST", `goodwill/pools/${poolId}/import/`, { codes });
    window.location.reload();
  } catch (error) {
    showImportErrors(box, error);
  }
}

async function addPool(form) {
  form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
  try {
    await api(form.dataset.slug, "POST", "goodwill/pools/", {
      brand_id: Number(form.elements.brand_id.value),
      name: form.elements.name.value,
      description: form.elements.description.value,
      low_water_mark: Number(form.elements.low_water_mark.value),
    });
    window.location.reload();
  } catch (error) {
    for (const [field, messages] of Object.entries(error.fields || {})) {
      const target = form.querySelector(`[data-field="${field}"]`);
      if (target) target.textContent = [].concat(messages).join(" ");
    }
    if (!Object.keys(error.fields || {}).length) form.querySelector(".field-error").textContent = error.message;
  }
}

// The page's socket (the inbox's) reaches every listener as "earshot:live". An
// undone reply gives its code back (its message turns "cancelled").
document.addEventListener("earshot:live", (event) => {
  const live = event.detail || {};
  if (live.type === "goodwill.pool") poolChanged(live);
  else if (live.type === "message.updated" && live.changed?.delivery_status === "cancelled") {
    document.querySelectorAll("[data-goodwill-slot][data-loaded]").forEach((slot) => fill(slot));
  }
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-goodwill-pool]");
  if (button) sendWithCode(button);
});
document.addEventListener("change", (event) => {
  if (event.target.name !== "visibility") return;
  const slot = event.target.closest("#reply-form")?.querySelector("[data-goodwill-slot]");
  if (slot) syncVisibility(slot);
});
document.addEventListener("submit", (event) => {
  if (event.target.matches(".goodwill-import")) {
    event.preventDefault();
    importCodes(event.target);
  } else if (event.target.id === "goodwill-new-pool") {
    event.preventDefault();
    addPool(event.target);
  }
});
new MutationObserver(() => fillAll()).observe(document.body, { childList: true, subtree: true });
fillAll();
