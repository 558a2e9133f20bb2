// The page's two ways to talk to the server: the REST API for every write (the same
// path integrations use) and server-rendered fragments for what the page shows.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}.`);
    this.status = status;
    this.code = body?.code || "error";
    this.fields = body?.fields || {};
    this.details = body?.details || {};
  }

  // Field messages and the main message, as one readable sentence list.
  describe() {
    const parts = [];
    for (const [field, messages] of Object.entries(this.fields)) {
      for (const text of [].concat(messages)) {
        parts.push(field === "non_field_errors" || field === "detail" ? text : `${text}`);
      }
    }
    if (this.message && !parts.includes(this.message)) parts.unshift(this.message);
    return parts.join(" ");
  }
}

// `api("POST", "conversations/12/messages/", {...})` against /api/v1/t/<slug>/.
export async function api(slug, method, path, body) {
  const response = await fetch(`/api/v1/t/${slug}/${path}`, {
    method,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      "X-CSRFToken": csrfToken(),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    data = await response.json().catch(() => null);
  }
  if (!response.ok) {
    throw new ApiError(response.status, data || { message: networkMessage(response.status) });
  }
  return data;
}

function networkMessage(status) {
  if (status === 403) return "You do not have permission to do that.";
  if (status === 404) return "That no longer exists.";
  if (status >= 500) return "Something went wrong on our side. Try again in a moment.";
  return `The server answered ${status}.`;
}

// A server-rendered fragment as a DOM element, or null (204: nothing to show).
export async function fragment(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { "X-Requested-With": "fetch" },
  });
  if (response.status === 204) return null;
  if (!response.ok) {
    const error = new Error(`Fragment ${url} answered ${response.status}`);
    error.status = response.status;
    throw error;
  }
  const template = document.createElement("template");
  template.innerHTML = (await response.text()).trim();
  return template.content.firstElementChild;
}

// Replace `old` by `fresh` (or remove it when fresh is null), keeping focus sane.
export function swap(old, fresh) {
  if (!old) return fresh;
  if (fresh) old.replaceWith(fresh);
  else old.remove();
  return fresh;
}
