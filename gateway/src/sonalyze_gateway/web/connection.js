// The phone's one WebSocket to the gateway (protocol v1, docs/asyncapi.json): hello with the
// kept token, commands answered once by id, lobby events in seq order, heartbeat, clock sync,
// and reconnection with backoff that resumes after the last seq seen and sends again the
// commands still unanswered (the gateway answers a repeated id from memory, never twice).

const SUBPROTOCOL = "sonalyze.v1";
const TOKEN_KEY = "sonalyze.token";
const MAX_BACKOFF_MS = 15_000;

// What each documented close code means to a person, and whether to try again.
export const CLOSES = {
  4000: ["The server is restarting", true],
  4001: ["The connection fell behind", true],
  4002: ["The connection went quiet", true],
  4003: ["The server had a problem", true],
  4004: ["The server is full", true],
  4101: ["This phone's identity expired", false],
  4102: ["The server did not hear from this phone in time", false],
  4103: ["A message was too large", false],
  4104: ["This page may not connect to that server (another site)", false],
  4105: ["The server needs the sonalyze.v1 protocol", false],
};

export class CommandError extends Error {
  constructor(code, message, retryAfterMs) {
    super(message);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

let counter = 0;
function newId() {
  // Unique across reloads too: the gateway remembers a device's replies by id for minutes.
  counter += 1;
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}${counter}`;
}

export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.token = localStorage.getItem(TOKEN_KEY);
    this.deviceId = null;
    this.lobbyId = null;
    this.lastSeq = 0;
    this.pending = new Map();
    this.ws = null;
    this.welcomed = false;
    this.attempt = 0;
    this.offset = 0; // server clock minus this phone's clock, ms
    this.syncRtt = null;
    this.heartbeat = null;
    this.closed = null; // {code, reason, retry} once closed for good
  }

  // This phone's clock in ms since the epoch, monotonic within the page.
  now() {
    return performance.timeOrigin + performance.now();
  }

  serverNow() {
    return this.now() + this.offset;
  }

  get connected() {
    return this.ws !== null && this.welcomed;
  }

  open() {
    const ws = new WebSocket(this.url, SUBPROTOCOL);
    this.ws = ws;
    this.welcomed = false;
    ws.onopen = () => {
      this.helloId = newId();
      ws.send(JSON.stringify({ v: 1, type: "hello", id: this.helloId, payload: this.token ? { token: this.token } : {} }));
    };
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (event) => this.onClose(event);
  }

  // Send a command; resolves with the ack's payload, rejects with a CommandError.
  command(type, payload = {}, { transient = false } = {}) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new CommandError("unavailable", this.closed.reason));
        return;
      }
      const id = newId();
      this.pending.set(id, { type, payload, resolve, reject, transient });
      if (this.connected) this.sendCommand(id);
    });
  }

  sendCommand(id) {
    const entry = this.pending.get(id);
    this.ws.send(JSON.stringify({ v: 1, type: entry.type, id, payload: entry.payload }));
  }

  sendBinary(frame) {
    if (!this.connected) return false;
    this.ws.send(frame);
    return true;
  }

  // Follow this lobby from now on: after a reconnect, resume it after the last seq seen.
  follow(lobbyId, seq) {
    this.lobbyId = lobbyId;
    this.lastSeq = seq;
  }

  unfollow() {
    this.lobbyId = null;
    this.lastSeq = 0;
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "welcome" && message.corr === this.helloId) return this.welcome(message.payload);
    if (message.type === "error" && message.corr === this.helloId) {
      this.emit("notice", { text: message.payload.message });
      // unauthorized: the gateway closes with 4101; anything else (a restart): try again.
      if (message.payload.code !== "unauthorized") this.ws?.close(1000, "hello refused; retrying");
      return;
    }
    if (message.corr && this.pending.has(message.corr)) {
      const entry = this.pending.get(message.corr);
      this.pending.delete(message.corr);
      if (message.type === "ack") entry.resolve(message.payload);
      else entry.reject(new CommandError(message.payload.code, message.payload.message, message.payload.retry_after_ms));
      return;
    }
    if (message.type === "upload.ack" || message.type === "upload.refused") {
      this.emit("upload", { type: message.type, ...message.payload });
      return;
    }
    if (message.lobby && message.seq !== undefined) {
      if (message.lobby !== this.lobbyId) return;
      if (message.type === "lobby.state") {
        this.lastSeq = message.seq;
        this.emit("snapshot", message);
        return;
      }
      const live = message.seq > this.lastSeq;
      if (live) this.lastSeq = message.seq;
      this.emit("event", { message, live });
    }
  }

  welcome(payload) {
    this.welcomed = true;
    this.attempt = 0;
    this.deviceId = payload.device_id;
    this.token = payload.token;
    localStorage.setItem(TOKEN_KEY, payload.token);
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      this.command("ping", {}, { transient: true }).catch(() => {});
    }, payload.heartbeat_s * 1000);
    const resend = [...this.pending.keys()];
    if (this.lobbyId) {
      this.command("resume", { lobby_id: this.lobbyId, after_seq: this.lastSeq }).catch((error) => {
        if (error.code === "not_found" || error.code === "forbidden") this.emit("lost", { error });
        else this.ws?.close(1000, "resume failed; retrying"); // a restart, a limit: again later
      });
    }
    for (const id of resend) this.sendCommand(id);
    this.emit("status", { connected: true });
  }

  onClose(event) {
    clearInterval(this.heartbeat);
    this.ws = null;
    this.welcomed = false;
    for (const [id, entry] of this.pending) {
      if (entry.transient) {
        this.pending.delete(id);
        entry.reject(new CommandError("unavailable", "the connection closed"));
      }
    }
    const [text, retry] = CLOSES[event.code] || ["The connection was lost", true];
    if (event.code === 4101) {
      // A new identity: this phone's lobby membership is gone with the old one.
      localStorage.removeItem(TOKEN_KEY);
      this.token = null;
      this.unfollow();
      this.emit("identity", {});
    }
    this.emit("status", { connected: false, code: event.code, reason: event.reason || text, retry });
    if (!retry && event.code !== 4101) {
      this.closed = { code: event.code, reason: event.reason || text };
      for (const entry of this.pending.values()) entry.reject(new CommandError("unavailable", text));
      this.pending.clear();
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    setTimeout(() => this.open(), event.code === 4101 ? 0 : delay);
  }

  // Clock sync (NTP-style): the round trip with the shortest network time wins.
  async syncClock(rounds = 8) {
    let best = null;
    for (let i = 0; i < rounds; i += 1) {
      const t0 = this.now();
      const { t1, t2 } = await this.command("time.sync", { t0 }, { transient: true });
      const t3 = this.now();
      const rtt = t3 - t0 - (t2 - t1);
      if (best === null || rtt < best.rtt) best = { rtt, offset: (t1 - t0 + (t2 - t3)) / 2 };
    }
    this.offset = best.offset;
    this.syncRtt = best.rtt;
    return best;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
