// A small, polite notification at the bottom of the screen.

let region = null;

export function toast(message, { kind = "info", timeout = 5000 } = {}) {
  if (!region) {
    region = document.createElement("div");
    region.className = "toasts";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    document.body.append(region);
  }
  const item = document.createElement("div");
  item.className = `toast toast-${kind}`;
  item.textContent = message;
  region.append(item);
  setTimeout(() => item.remove(), timeout);
}
