// The page's one WebSocket to /ws/t/<slug>/: push only (writes go through the REST
// API). It reconnects with exponential backoff and resumes after the last event
// sequence it saw, so the server replays what happened while it was away.

const DENIED = new Set([4401, 4403, 4404]);
const HEARTBEAT_MS = 25_000;
const MAX_BACKOFF_MS = 15_000;
const CATCH_UP_LIMIT = 500; // the server replays at most this many; beyond, reload

export class LiveSocket {
  constructor({ path, seq }) {
    this.path = path;
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

  emit(type, payload) {
    for (const handler of this.handlers.get(type) || []) {
      try {
        handler(payload);
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
    const ws = new WebSocket(`${scheme}//${location.host}${this.path}?after=${this.lastSeq}`);
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
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    this.ws = null;
    if (DENIED.has(code)) {
      this.stopped = true;
      this.emit("state", "denied");
      return;
    }
    this.emit("state", "lost");
    const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
    this.attempts += 1;
    this.timer = setTimeout(() => this.connect(), backoff * (0.8 + Math.random() * 0.4));
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
