// Linking conversations to an incident: from a thread (the contact panel's "Link to
// an incident") and by selecting several rows of the inbox list (a bulk action).
// Rows are the inbox's own server-rendered partials; this module only adds a
// checkbox to each while selection is on. Writes go through the REST API.

import { api } from "./api.js";

async function fillChoices(select, slug) {
  if (select.dataset.loaded) return;
  try {
    const incidents = await api(slug, "GET", "incidents/?status=open");
    const options = incidents.map((incident) => new Option(incident.title, incident.id));
    if (!options.length) options.push(new Option("No open incident", ""));
    select.replaceChildren(...options);
    select.dataset.loaded = "1";
  } catch {
    select.replaceChildren(new Option("Could not load incidents", ""));
  }
}

async function linkTo(slug, incidentId, ids, via, note) {
  try {
    const result = await api(slug, "POST", `incidents/${incidentId}/links/`, { conversation_ids: ids, via });
    const count = result.linked.length;
    note.textContent = count
      ? `Linked ${count} conversation${count === 1 ? "" : "s"}.`
      : "Already linked.";
    return true;
  } catch (error) {
    note.textContent = error.describe ? error.describe() : "Could not link.";
    return false;
  }
}

// From a thread: delegated, since the contact panel is re-rendered live.
document.addEventListener("toggle", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLDetailsElement) || !box.matches("[data-incident-link]") || !box.open) return;
  fillChoices(box.querySelector("[data-incident-choices]"), box.dataset.slug);
}, true);
document.addEventListener("submit", async (event) => {
  const form = event.target.closest(".incident-link-form");
  if (!form) return;
  event.preventDefault();
  const box = form.closest("[data-incident-link]");
  const incident = form.elements.incident.value;
  if (!incident) return;
  await linkTo(box.dataset.slug, incident, [Number(box.dataset.conversationId)], "hand", form.querySelector(".form-note"));
});

// In the list: a selection mode.
const bulk = document.getElementById("bulk-link");
if (bulk) startBulk(bulk);

function startBulk(root) {
  const slug = root.dataset.slug;
  const toggle = root.querySelector("#bulk-toggle");
  const form = root.querySelector("#bulk-form");
  const count = root.querySelector("#bulk-count");
  const list = document.getElementById("conversation-list");
  let on = false;

  const selected = () => [...list.querySelectorAll(".bulk-check:checked")].map((box) => Number(box.value));
  const recount = () => {
    const n = selected().length;
    count.textContent = `${n} selected`;
  };
  const decorate = (row) => {
    if (!on || row.querySelector(".bulk-check")) return;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "bulk-check";
    box.value = row.dataset.id;
    box.setAttribute("aria-label", `Select conversation ${row.dataset.id}`);
    box.addEventListener("change", recount);
    row.prepend(box);
    row.classList.add("selectable");
  };
  new MutationObserver(() => list.querySelectorAll(".conv-row").forEach(decorate)).observe(list, { childList: true });

  toggle.addEventListener("click", () => {
    on = !on;
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Done" : "Select";
    form.hidden = !on;
    if (on) {
      list.querySelectorAll(".conv-row").forEach(decorate);
      fillChoices(form.querySelector("[data-incident-choices]"), slug);
    } else {
      list.querySelectorAll(".bulk-check").forEach((box) => box.remove());
      list.querySelectorAll(".selectable").forEach((row) => row.classList.remove("selectable"));
    }
    recount();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = selected();
    const incident = form.elements.incident.value;
    const note = form.querySelector(".form-note");
    if (!ids.length || !incident) {
      note.textContent = !ids.length ? "Select conversations first." : "Choose an incident.";
      return;
    }
    if (await linkTo(slug, incident, ids, "bulk", note)) {
      list.querySelectorAll(".bulk-check:checked").forEach((box) => {
        box.checked = false;
      });
      recount();
    }
  });
}
