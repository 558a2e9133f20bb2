// Brand settings, second half: the SLA targets (PUT brands/<id>/sla-policy/, or
// DELETE to inherit the workspace's again) and the holidays (POST and DELETE
// brands/<id>/holidays/). Field errors from the API are shown beside the fields;
// after a change the server-rendered sections are re-read from this page.

import { api } from "./api.js";
import { clearErrors, flash, showErrors } from "./forms.js";

const slaForm = document.getElementById("sla-form");
const { slug, brandId } = slaForm.dataset;
const TARGETS = [
  "first_response_minutes",
  "next_response_minutes",
  "resolution_minutes",
  "urgent_first_response_minutes",
  "urgent_next_response_minutes",
];

// A whole number as a number; empty as null; anything else as typed, for the API
// to name it.
function minutes(name) {
  const raw = slaForm.elements[name].value.trim();
  if (raw === "") return null;
  return /^-?\d+$/.test(raw) ? Number(raw) : raw;
}

function tags() {
  return slaForm.elements.urgent_tags.value
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

// Replace the elements with these ids by their copies in a fresh render of this page.
async function reread(...ids) {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of ids) {
    const fresh = page.getElementById(id);
    const old = document.getElementById(id);
    if (fresh && old) old.replaceWith(document.importNode(fresh, true));
  }
}

function showPolicy(policy) {
  for (const name of TARGETS) slaForm.elements[name].value = policy[name] ?? "";
  slaForm.elements.urgent_tags.value = policy.urgent_tags.join(", ");
  slaForm.elements.urgent_on_negative.checked = policy.urgent_on_negative;
  document.getElementById("reset-sla").hidden = policy.inherited;
}

async function sendPolicy(method, body) {
  const status = document.getElementById("sla-status");
  const buttons = slaForm.querySelectorAll("button");
  clearErrors(slaForm);
  status.textContent = "";
  for (const button of buttons) button.disabled = true;
  try {
    const policy = await api(slug, method, `brands/${brandId}/sla-policy/`, body);
    showPolicy(policy);
    flash(status, "Saved");
    await reread("sla-source").catch(() => null);
  } catch (error) {
    showErrors(slaForm, error)?.focus?.();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

slaForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = Object.fromEntries(TARGETS.map((name) => [name, minutes(name)]));
  body.urgent_tags = tags();
  body.urgent_on_negative = slaForm.elements.urgent_on_negative.checked;
  sendPolicy("PUT", body);
});

document.getElementById("reset-sla").addEventListener("click", () => sendPolicy("DELETE"));

// --- Holidays (the section is re-rendered after each change: delegate) -------------------

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("#holiday-form");
  if (!form) return;
  event.preventDefault();
  clearErrors(form);
  const start = form.elements.start_date.value;
  const body = {
    name: form.elements.name.value,
    start_date: start || null,
    end_date: form.elements.end_date.value || start || null,
  };
  form.querySelector("button").disabled = true;
  try {
    await api(slug, "POST", `brands/${brandId}/holidays/`, body);
    await reread("holidays");
    flash(document.getElementById("holiday-status"), "Added");
    document.getElementById("f-holiday-name").focus();
  } catch (error) {
    showErrors(form, error)?.focus?.();
    form.querySelector("button").disabled = false;
  }
});

document.addEventListener("click", async (event) => {
  const remove = event.target.closest(".remove-holiday");
  if (!remove) return;
  remove.disabled = true;
  try {
    await api(slug, "DELETE", `brands/${brandId}/holidays/${remove.dataset.holidayId}/`);
    await reread("holidays");
    flash(document.getElementById("holiday-status"), "Removed");
  } catch (error) {
    remove.disabled = false;
    const form = document.getElementById("holiday-form");
    showErrors(form, error);
  }
});
