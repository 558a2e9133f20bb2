// The page's one WebSocket to /ws/t/<slug>/: push only (writes go through the REST
// API). It reconnects with exponential backoff and resumes after the last event
// sequence it saw, so the server replays what happened while it was away.
//
// A refusal is final: the server closes a refused handshake with 4401 (signed out),
// 4403 (no access, or a foreign Origin) or 4404 (no such workspace), and the socket
// then stops and reports "denied" instead of reconnecting. A proxy that refuses the
// handshake itself shows only 1006, like a dropped network: after a few failures in
// a row the socket asks the `probe` URL (a page of the workspace) whether the
// session still has access, and stops when it is redirected to sign in or refused.
//
// Presence is for agents working the inbox: a page that only listens (the spike
// banner, an incident's page) passes `presence: false`, and its socket never marks
// the agent online (helpdesk/consumers.py, `?presence=off`).

const DENIED = new Set([4401, 4403, 4404]);
const PROBE_AFTER = 3; // failed attempts in a row before asking the probe URL
const HEARTBEAT_MS = 25_000;
const MAX_BACKOFF_MS = 15_000;
const CATCH_UP_LIMIT = 500; // the server replays at most this many; beyond, reload

export class LiveSocket {
  constructor({ path, seq, probe = null, presence = true }) {
    this.path = path;
    this.query = presence ? "" : "&presence=off";
    this.probe = probe;
    this.lastSeq = Number(seq) || 0;
    this.handlers = new Map();
    this.attempts = 0;
    this.ws = null;
    this.timer = null;
    this.heartbeat = null;
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  emit(type, payload, detail) {
    for (const handler of this.handlers.get(type) || []) {
      try {
        handler(payload, detail);
      } catch (error) {
        console.error(error);
      }
    }
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}?after=${this.lastSeq}${this.query}`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempts = 0;
      this.heartbeat = setInterval(() => this.send({ type: "heartbeat" }), HEARTBEAT_MS);
      this.emit("state", "open");
    });
    ws.addEventListener("message", (message) => this.receive(message.data));
    ws.addEventListener("close", (event) => this.closed(ws, event.code));
  }

  receive(raw) {
    let event;
    try {
      event = JSON.parse(raw);
    } catch {
      return;
    }
    if (typeof event.seq === "number") {
      // Catch-up and the live stream can overlap: each sequence is handled once.
      if (event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
    }
    if (event.type === "caught_up") {
      if (event.count >= CATCH_UP_LIMIT) location.reload();
      this.emit("caught_up", event);
      return;
    }
    this.emit(event.type, event);
    this.emit("*", event);
    // Page-wide listeners (e.g. the spike banner) hear the page's one socket.
    document.dispatchEvent(new CustomEvent("earshot:live", { detail: event }));
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    this.ws = null;
    if (DENIED.has(code)) {
      this.deny(code);
      return;
    }
    this.emit("state", "lost");
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    this.attempts += 1;
    const retry = () => this.connect();
    if (this.probe && this.attempts >= PROBE_AFTER) {
      this.stillAllowed().then((allowed) => {
        if (allowed) this.timer = setTimeout(retry, backoff * (0.8 + Math.random() * 0.4));
        else this.deny(code);
      });
      return;
    }
    this.timer = setTimeout(retry, backoff * (0.8 + Math.random() * 0.4));
  }

  deny(code) {
    this.stopped = true;
    clearTimeout(this.timer);
    this.emit("state", "denied", code);
  }

  // False only when the server answers that this session has no access (a redirect
  // to sign in, 401, 403 or 404); a network error or a 5xx keeps the retries going.
  async stillAllowed() {
    try {
      const reply = await fetch(this.probe, { redirect: "manual", credentials: "same-origin" });
      return !(reply.type === "opaqueredirect" || [401, 403, 404].includes(reply.status));
    } catch {
      return true;
    }
  }

  reconnectNow() {
    if (this.stopped || this.ws !== null) return;
    this.attempts = 0;
    this.connect();
  }

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}
