// Brand settings: one PATCH to the REST API with every setting on the page; the
// API's field errors shown beside the fields; live signature previews.

import { api } from "./api.js";
import { clearErrors, flash, refresh, showErrors } from "./forms.js";
// The SLA targets and holidays, which save through their own endpoints.
import "./brand_sla.js";
// The deflection phrases (R15), which save through their own endpoint.
import "./deflection_settings.js";

const form = document.getElementById("brand-form");
const { slug, brandId, statusUrl, agentName } = form.dataset;

// --- Business hours ----------------------------------------------------------------

const intervalTemplate = document.getElementById("interval-template");

function addInterval(row, start = "09:00", end = "17:00") {
  const interval = intervalTemplate.content.firstElementChild.cloneNode(true);
  const label = row.dataset.label;
  interval.querySelector(".start").value = start;
  interval.querySelector(".start").setAttribute("aria-label", `${label} opens at`);
  interval.querySelector(".end").value = end;
  interval.querySelector(".end").setAttribute("aria-label", `${label} closes at`);
  interval.querySelector(".remove-interval").setAttribute("aria-label", `Remove these ${label} hours`);
  row.querySelector(".closed-label").before(interval);
  return interval;
}

function syncDay(row) {
  const open = row.querySelector(".day-open").checked;
  if (open && !row.querySelector(".interval")) addInterval(row);
  row.classList.toggle("is-closed", !open);
}

form.addEventListener("change", (event) => {
  const row = event.target.closest(".day-row");
  if (row && event.target.classList.contains("day-open")) syncDay(row);
});

form.addEventListener("click", (event) => {
  const add = event.target.closest(".add-interval");
  if (add) {
    const row = add.closest(".day-row");
    const last = [...row.querySelectorAll(".interval .end")].pop()?.value;
    row.querySelector(".day-open").checked = true;
    row.classList.remove("is-closed");
    const interval = last && last !== "00:00" && last < "23:00" ? addInterval(row, last, "00:00") : addInterval(row);
    interval.querySelector(".start").focus();
    return;
  }
  const remove = event.target.closest(".remove-interval");
  if (remove) {
    const row = remove.closest(".day-row");
    remove.closest(".interval").remove();
    if (!row.querySelector(".interval")) {
      row.querySelector(".day-open").checked = false;
      row.classList.add("is-closed");
    }
  }
});

// A time input cannot say 24:00: a closing time of 00:00 means midnight.
function businessHours() {
  const hours = {};
  for (const row of form.querySelectorAll(".day-row")) {
    const open = row.querySelector(".day-open").checked;
    hours[row.dataset.day] = open
      ? [...row.querySelectorAll(".interval")].map((interval) => {
          const start = interval.querySelector(".start").value;
          const end = interval.querySelector(".end").value;
          return [start, end === "00:00" ? "24:00" : end];
        })
      : [];
  }
  return hours;
}

// --- Signatures ----------------------------------------------------------------------

const firstName = agentName.trim().split(/\s+/)[0] || "";
const values = {
  initials: agentName
    .split(/\s+/)
    .filter(Boolean)
    .map((part) => part[0])
    .join("")
    .toUpperCase()
    .slice(0, 3),
  first_name: firstName,
  agent_name: agentName,
};

// Python's str.format for the three placeholders, {{ and }} included.
function formatSignature(template) {
  let out = "";
  for (let i = 0; i < template.length; i++) {
    const ch = template[i];
    if ((ch === "{" || ch === "}") && template[i + 1] === ch) {
      out += ch;
      i++;
    } else if (ch === "{") {
      const end = template.indexOf("}", i);
      if (end < 0) throw new Error("Unbalanced braces: write {{ and }} for literal ones.");
      const name = template.slice(i + 1, end);
      if (!Object.hasOwn(values, name)) throw new Error(`{${name}} is not a placeholder.`);
      out += values[name];
      i = end;
    } else if (ch === "}") {
      throw new Error("Unbalanced braces: write {{ and }} for literal ones.");
    } else {
      out += ch;
    }
  }
  return out;
}

function previewSignatures() {
  const fallback = form.querySelector('.sig-input[name="sig-default"]').value;
  for (const row of form.querySelectorAll(".sig-row")) {
    const own = row.querySelector(".sig-input").value;
    const mark = row.querySelector(".sig-mark");
    const preview = row.querySelector(".sig-preview");
    try {
      const signature = formatSignature(own || fallback);
      mark.textContent = signature && !/^\s/.test(signature) ? ` ${signature}` : signature;
      preview.classList.remove("invalid");
    } catch (error) {
      mark.textContent = ` ${error.message}`;
      preview.classList.add("invalid");
    }
  }
}

form.addEventListener("input", (event) => {
  if (event.target.classList.contains("sig-input")) previewSignatures();
});

function signatureRules() {
  const rules = {};
  for (const input of form.querySelectorAll(".sig-input")) {
    if (input.value !== "") rules[input.name.slice(4)] = input.value;
  }
  return rules;
}

// --- Saving --------------------------------------------------------------------------

// A whole number as a number; anything else as typed, for the API to name it.
function number(name) {
  const raw = form.elements[name].value.trim();
  return /^-?\d+$/.test(raw) ? Number(raw) : raw;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("form-status");
  const button = document.getElementById("save-brand");
  clearErrors(form);
  status.textContent = "";
  button.disabled = true;
  try {
    const brand = await api(slug, "PATCH", `brands/${brandId}/`, {
      name: form.elements.name.value,
      timezone: form.elements.timezone.value,
      business_hours: businessHours(),
      public_reply_limit: number("public_reply_limit"),
      send_hold_seconds: number("send_hold_seconds"),
      queue_window_minutes: number("queue_window_minutes"),
      spreading_threshold: number("spreading_threshold"),
      private_first_allowed: form.elements.private_first_allowed.checked,
      auto_assign: form.elements.auto_assign.checked,
      pause_while_pending: form.elements.pause_while_pending.checked,
      publish_badge: form.elements.publish_badge.checked,
      sla_digest: form.elements.sla_digest.checked,
      spike_alerts: form.elements.spike_alerts.checked,
      spike_threshold: number("spike_threshold"),
      spike_min_count: number("spike_min_count"),
      signature_rules: signatureRules(),
    });
    document.getElementById("brand-title").textContent = brand.name;
    document.getElementById("crumb-name").textContent = brand.name;
    document.title = `${brand.name} · Brand settings · Earshot`;
    flash(status, "Saved");
    await refresh("brand-status", statusUrl).catch(() => null);
  } catch (error) {
    const first = showErrors(form, error);
    first?.focus?.();
  } finally {
    button.disabled = false;
  }
});

previewSignatures();
