// Settings forms: the API's 400 answer ({code, message, fields}) shown next to each
// field, and what no field claims shown once above the save button.

import { fragment } from "./api.js";

export function clearErrors(root) {
  for (const slot of root.querySelectorAll(".field-error")) slot.textContent = "";
  for (const input of root.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const alert = root.querySelector(".form-alert");
  if (alert) {
    alert.hidden = true;
    alert.textContent = "";
  }
}

// Returns the first field element that got a message (to focus), or null.
export function showErrors(root, error) {
  let first = null;
  const unclaimed = [];
  for (const [field, messages] of Object.entries(error.fields || {})) {
    const text = [].concat(messages).join(" ");
    const slot = root.querySelector(`.field-error[data-field="${CSS.escape(field)}"]`);
    if (!slot) {
      unclaimed.push(text);
      continue;
    }
    slot.textContent = text;
    const input = root.querySelector(`[name="${CSS.escape(field)}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
    first ??= input || slot;
  }
  const alert = root.querySelector(".form-alert");
  const general = unclaimed.length ? unclaimed.join(" ") : error.message;
  if (alert && general) {
    alert.textContent = general;
    alert.hidden = false;
  }
  return first;
}

// "Saved" for a moment next to the button.
export function flash(status, text) {
  status.textContent = text;
  status.classList.add("shown");
  clearTimeout(status._timer);
  status._timer = setTimeout(() => status.classList.remove("shown"), 4000);
}

// Replace the element with `id` by a freshly rendered one (a template partial).
export async function refresh(id, url) {
  const fresh = await fragment(url);
  const old = document.getElementById(id);
  if (fresh && old) old.replaceWith(fresh);
  return fresh;
}
