// The spike banner on every workspace page: the open spike alerts, as a
// server-rendered fragment, refreshed live when an alert opens, ends or is
// acknowledged. The inbox's socket already runs on the inbox pages and its events
// reach us as "earshot:live" DOM events; other pages open a socket of their own,
// resuming after the sequence the fragment reports (so it replays nothing old),
// which only listens: it does not count the agent as present in the inbox.
// On the alerts page the same events also fetch its brands and alerts again
// (spikes/alerts.html#panels), so a spike that opens shows in the list too.
import { fragment, swap } from "../../frontend/js/api.js";
import { LiveSocket } from "../../frontend/js/socket.js";

const ALERT_EVENTS = new Set(["alert.spike", "alert.updated"]);
const root = document.getElementById("spike-banner");
if (root) start(root);

function start(root) {
  const { slug, url } = root.dataset;
  // The inbox page (inbox.js) runs the page's socket; elsewhere we open one.
  const pageSocket = document.getElementById("inbox") !== null;
  let pending = null;

  async function refresh() {
    const fresh = await fragment(url).catch(() => null);
    if (!fresh) return null;
    const old = root.firstElementChild;
    if (old) old.replaceWith(fresh);
    else root.append(fresh);
    return fresh;
  }

  // The alerts page's own panels, when this is that page.
  async function refreshPanels() {
    const panels = document.getElementById("spike-panels");
    if (!panels) return;
    const fresh = await fragment(panels.dataset.url).catch(() => null);
    // A failed fetch keeps what the page shows; the next event tries again.
    if (fresh) swap(document.getElementById("spike-panels"), fresh);
  }

  // Several events in a burst (a catch-up) refresh once.
  function soon() {
    clearTimeout(pending);
    pending = setTimeout(() => {
      refresh();
      refreshPanels();
    }, 150);
  }

  if (pageSocket) {
    document.addEventListener("earshot:live", (event) => {
      if (ALERT_EVENTS.has(event.detail?.type)) soon();
    });
    refresh();
    return;
  }
  refresh().then((body) => {
    // Without the fragment's sequence a socket would replay old events: wait
    // for the next page instead.
    if (!body) return;
    const socket = new LiveSocket({
      path: `/ws/t/${slug}/`,
      seq: body.dataset.seq,
      probe: url,
      presence: false,
    });
    for (const type of ALERT_EVENTS) socket.on(type, soon);
    socket.on("state", (state) => {
      if (state === "open") soon();
    });
    socket.connect();
  });
}
