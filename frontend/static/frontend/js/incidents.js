// Incident pages: open an incident, save the holding statement and notes, preview
// and send the personalised update, follow its progress live, retry failures,
// unlink, and close with a checklist. Every write goes through the REST API
// (/api/v1/t/<slug>/incidents/...); live progress arrives as `incident.progress`
// events on the workspace socket, and the page re-fetches its server-rendered
// progress panel (frontend/incidents/detail.html#progress).

import { api, ApiError, fragment, swap } from "./api.js";
import { LiveSocket } from "./socket.js";

const list = document.getElementById("incidents");
if (list) startList(list);
const page = document.getElementById("incident");
if (page) startPage(page);

function showErrors(form, error) {
  for (const slot of form.querySelectorAll("[data-field]")) slot.textContent = "";
  const general = form.querySelector(".form-error");
  if (general) general.textContent = "";
  if (error === null) return;
  if (!(error instanceof ApiError)) {
    if (general) general.textContent = "Could not reach the server. Try again.";
    return;
  }
  let placed = false;
  for (const [field, messages] of Object.entries(error.fields)) {
    const slot = form.querySelector(`[data-field="${field}"]`);
    if (slot) {
      slot.textContent = [].concat(messages).join(" ");
      placed = true;
    }
  }
  if (!placed && general) general.textContent = error.describe();
}

function values(form) {
  const data = {};
  for (const [key, value] of new FormData(form).entries()) data[key] = value;
  return data;
}

function startList(root) {
  const slug = root.dataset.slug;
  const form = document.getElementById("incident-create");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = values(form);
    const body = { title: data.title, rule_terms: data.rule_terms, holding_statement: data.holding_statement };
    for (const key of ["brand_id", "rule_tag_id", "rule_listening_rule_id"]) {
      body[key] = data[key] ? Number(data[key]) : null;
    }
    try {
      const incident = await api(slug, "POST", "incidents/", body);
      location.assign(`/t/${slug}/incidents/${incident.id}/`);
    } catch (error) {
      showErrors(form, error);
    }
  });
}

function startPage(root) {
  const slug = root.dataset.slug;
  const id = root.dataset.incidentId;
  const base = `incidents/${id}/`;

  const submit = (formId, handler) => {
    const form = document.getElementById(formId);
    form?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        await handler(form, values(form));
      } catch (error) {
        showErrors(form, error);
        if (button) button.disabled = false;
      }
    });
  };

  submit("holding-form", async (form, data) => {
    await api(slug, "PUT", `${base}holding-statement/`, { text: data.text });
    location.reload();
  });
  submit("note-form", async (form, data) => {
    await api(slug, "POST", `${base}notes/`, { text: data.text });
    location.reload();
  });
  submit("close-form", async (form) => {
    const ids = [...form.querySelectorAll("input[name=resolve]:checked:not(:disabled)")].map((box) => Number(box.value));
    await api(slug, "POST", `${base}close/`, { resolve_ids: ids });
    location.reload();
  });

  // The update: preview first; one idempotency key per written text, so a
  // double click (or a resend after a network error) makes one update.
  const updateForm = document.getElementById("update-form");
  if (updateForm) {
    const text = updateForm.querySelector("#update-text");
    const send = updateForm.querySelector("#send-button");
    const previews = updateForm.querySelector("#previews");
    let key = crypto.randomUUID();
    let previewed = "";
    text.addEventListener("input", () => {
      if (text.value !== previewed) send.disabled = true;
    });
    updateForm.querySelector("#preview-button").addEventListener("click", async () => {
      try {
        const samples = await api(slug, "POST", `${base}preview/`, { text: text.value });
        showErrors(updateForm, null);
        previews.replaceChildren(
          ...samples.map((sample) => {
            const item = document.createElement("li");
            const who = document.createElement("span");
            who.className = "preview-who";
            who.textContent = sample.skip_reason
              ? `${sample.customer}: skipped`
              : `${sample.customer} (${sample.visibility})`;
            const body = document.createElement("p");
            body.className = "preview-text";
            body.textContent = sample.skip_reason || sample.text;
            item.append(who, body);
            return item;
          }),
        );
        previewed = text.value;
        if (previewed !== updateForm.dataset.sentText) key = crypto.randomUUID();
        send.disabled = false;
      } catch (error) {
        previews.replaceChildren();
        showErrors(updateForm, error);
      }
    });
    updateForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (send.disabled) return;
      send.disabled = true;
      try {
        await api(slug, "POST", `${base}updates/`, { text: previewed, idempotency_key: key });
        updateForm.dataset.sentText = previewed;
        send.textContent = "Sending…";
        await refreshProgress();
      } catch (error) {
        showErrors(updateForm, error);
        send.disabled = false;
      }
    });
  }

  let refreshing = null;
  let again = false;
  async function refreshProgress() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    const panel = document.getElementById("incident-progress");
    refreshing = fragment(panel.dataset.url)
      .then((fresh) => {
        swap(document.getElementById("incident-progress"), fresh);
        const send = document.getElementById("send-button");
        if (send && fresh?.dataset.status === "done" && send.textContent === "Sending…") {
          send.textContent = "Sent";
        }
      })
      .catch(() => null)
      .finally(() => {
        refreshing = null;
        if (again) {
          again = false;
          refreshProgress();
        }
      });
    return refreshing;
  }

  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    try {
      if (button.dataset.action === "retry") {
        await api(slug, "POST", `${base}updates/${button.dataset.updateId}/retry/`, {
          recipient_ids: [Number(button.dataset.recipientId)],
          confirm_duplicate: button.dataset.confirmDuplicate === "1",
        });
        await refreshProgress();
      } else if (button.dataset.action === "unlink") {
        await api(slug, "DELETE", `${base}links/${button.dataset.conversationId}/`);
        location.reload();
      }
    } catch (error) {
      button.disabled = false;
      button.title = error.message;
    }
  });

  // It only listens: an incident's page does not count as presence in the inbox.
  const socket = new LiveSocket({
    path: `/ws/t/${slug}/`,
    seq: root.dataset.seq,
    probe: `/t/${slug}/incidents/`,
    presence: false,
  });
  socket.on("incident.progress", (event) => {
    if (String(event.incident_id) !== String(id)) return;
    refreshProgress();
  });
  socket.on("caught_up", () => refreshProgress());
  socket.connect();
}
