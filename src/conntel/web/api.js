// The conntel (Cloudflare v4) API as the dashboard uses it: one account, one
// token sent only in the Authorization header, v4 envelopes unwrapped, a
// concurrency-capped pool, and the live stream read with fetch() (EventSource
// cannot send headers).

import { sleep } from "./util.js";

export const MAX_T = 9007199254740991; // 2^53 - 1: the largest t the API accepts

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function envelopeError(response) {
  let error = null;
  try {
    error = (await response.json()).errors?.[0];
  } catch {
    // not an envelope: fall back to the status
  }
  return new ApiError(response.status, error?.code ?? 0, error?.message ?? `HTTP ${response.status}`);
}

export class Api {
  constructor(account, token) {
    this.account = account;
    this.token = token;
    this.base = new URL("client/v4/", document.baseURI);
    this.skew = 0; // server clock minus ours, in seconds (from the Date header)
  }

  headers() {
    return { Authorization: `Bearer ${this.token}` };
  }

  /** Absolute URL of a path under the account's connectors, e.g. `/c1/telemetry/events/latest`. */
  url(rest = "", query = null) {
    const path = `accounts/${encodeURIComponent(this.account)}/magic/connectors${rest}`;
    const url = new URL(path, this.base);
    for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
    return url.href;
  }

  /** Seconds since the epoch by the server's clock. */
  now() {
    return Date.now() / 1000 + this.skew;
  }

  noteClock(response) {
    const date = Date.parse(response.headers.get("date") || "");
    if (Number.isNaN(date)) return;
    const skew = date / 1000 - Date.now() / 1000;
    this.skew = Math.abs(skew) > 2 ? skew : 0; // Date has 1 s resolution: ignore less
  }

  async fetch(url, options = {}) {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(url, { ...options, headers: this.headers(), cache: "no-store" });
      this.noteClock(response);
      if (response.status !== 429 || attempt >= 3) return response;
      const wait = Number(response.headers.get("retry-after")) || 2 ** attempt;
      await sleep(Math.min(wait, 60) * 1000);
    }
  }

  async get(rest, query, options) {
    const response = await this.fetch(this.url(rest, query), options);
    if (!response.ok) throw await envelopeError(response);
    const body = await response.json();
    if (!body.success) throw new ApiError(response.status, body.errors?.[0]?.code ?? 0, "Request failed");
    return body.result;
  }

  connectors() {
    return this.get("");
  }

  /** Fleet health: every connector's health, since when and why, in one request. */
  health() {
    return this.get("/telemetry/health");
  }

  connector(id) {
    return this.get(`/${encodeURIComponent(id)}`);
  }

  latest(id) {
    return this.get(`/${encodeURIComponent(id)}/telemetry/events/latest`);
  }

  /** List Events over [from, to] (optionally one kind), following cursors up to `maxPages`. */
  async listEvents(id, from, to, { kind = null, maxPages = 20, signal } = {}) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page++) {
      const query = { from, to, limit: 1000 };
      if (kind) query.k = kind;
      if (cursor) query.cursor = cursor;
      const result = await this.get(`/${encodeURIComponent(id)}/telemetry/events`, query, { signal });
      items.push(...result.items);
      cursor = result.cursor;
      if (!cursor) return { items, truncated: false };
    }
    return { items, truncated: true };
  }

  interrupts(id) {
    return this.get(`/${encodeURIComponent(id)}/interrupts`);
  }

  async post(rest, body) {
    const response = await fetch(this.url(rest), {
      method: "POST",
      headers: { ...this.headers(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    this.noteClock(response);
    if (!response.ok) throw await envelopeError(response);
    return (await response.json()).result;
  }

  /** Submit an interrupt: `action` is reboot, restart or shutdown. */
  createInterrupt(id, action, purge) {
    return this.post(`/${encodeURIComponent(id)}/interrupts`, { [action]: { purge } });
  }

  /** Whether this token may submit interrupts (Magic WAN Write), asked without making one: an empty
   * body is refused for its shape (400) only after the permission check passed (403 otherwise). */
  async maySubmitInterrupts(id) {
    try {
      await this.post(`/${encodeURIComponent(id)}/interrupts`, {});
    } catch (error) {
      return error instanceof ApiError && error.status === 400;
    }
    return false; // never: an empty body is never accepted
  }

  eventUrl(id, t, n) {
    return this.url(`/${encodeURIComponent(id)}/telemetry/events/${t}.${n}`);
  }

  /** Get Event, as served: the status and the body's exact text. */
  async getEventText(id, t, n) {
    const url = this.eventUrl(id, t, n);
    const response = await this.fetch(url);
    return { url, status: response.status, text: await response.text() };
  }

  /** List Snapshots over [from, to]: their `{a, t}` index, following cursors up to `maxPages`. */
  async listSnapshots(id, from, to, { maxPages = 20 } = {}) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page++) {
      const query = { from, to, limit: 1000 };
      if (cursor) query.cursor = cursor;
      const result = await this.get(`/${encodeURIComponent(id)}/telemetry/snapshots`, query);
      items.push(...result.items);
      cursor = result.cursor;
      if (!cursor) return { items, truncated: false };
    }
    return { items, truncated: true };
  }

  snapshotUrl(id, t) {
    return this.url(`/${encodeURIComponent(id)}/telemetry/snapshots/${t}`);
  }

  getSnapshot(id, t) {
    return this.get(`/${encodeURIComponent(id)}/telemetry/snapshots/${t}`);
  }

  /** Get Snapshot, as served: the status and the body's exact text. */
  async getSnapshotText(id, t) {
    const url = this.snapshotUrl(id, t);
    const response = await this.fetch(url);
    return { url, status: response.status, text: await response.text() };
  }
}

/** Run `worker` over `items`, at most `limit` at a time. */
export async function pool(items, limit, worker) {
  let next = 0;
  const run = async () => {
    while (next < items.length) await worker(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

/**
 * A Server-Sent Events stream read with fetch(): reconnects with backoff and
 * resumes from the last id it saw (Last-Event-ID), so no event is missed or
 * repeated. `onEvent(data)` gets each event message's parsed data,
 * `onHealth(data)` each health change's (these carry no id: a client that
 * reconnects reads the health again); `onStatus(s)` gets "connecting",
 * "live", "reconnecting" or "denied" (with the error).
 */
export class LiveStream {
  constructor(api, url, { onEvent, onHealth = () => {}, onStatus }) {
    this.api = api;
    this.url = url;
    this.onEvent = onEvent;
    this.onHealth = onHealth;
    this.onStatus = onStatus;
    this.lastId = null;
    this.stopped = false;
    this.controller = null;
    this.opened = new Promise((resolve) => (this.resolveOpened = resolve));
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    this.resolveOpened(false);
  }

  async run() {
    let delay = 1000;
    while (!this.stopped) {
      const controller = (this.controller = new AbortController());
      let watchdog = null;
      // Keep-alive comments come every 15 s: a quiet connection is a dead one.
      const kick = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), 45000);
      };
      try {
        this.onStatus("connecting");
        const headers = { ...this.api.headers(), Accept: "text/event-stream" };
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        kick();
        const response = await fetch(this.url, { headers, signal: controller.signal, cache: "no-store" });
        if (response.status === 401 || response.status === 403) {
          const error = await envelopeError(response);
          this.stopped = true;
          this.onStatus("denied", error);
          this.resolveOpened(false);
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        this.onStatus("live");
        this.resolveOpened(true);
        delay = 1000;
        await this.read(response.body, kick);
      } catch {
        // dropped, aborted or refused: reconnect below unless stopped
      } finally {
        clearTimeout(watchdog);
      }
      if (this.stopped) return;
      this.onStatus("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }

  async read(body, kick) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let data = [];
    let type = "";
    let pendingId = this.lastId;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      kick();
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (let line of lines) {
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          // End of a message: its id counts once the whole message is in.
          this.lastId = pendingId;
          if (data.length && type === "event") this.onEvent(JSON.parse(data.join("\n")));
          else if (data.length && type === "health") this.onHealth(JSON.parse(data.join("\n")));
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(text);
        else if (field === "event") type = text;
        else if (field === "id" && !text.includes("\0")) pendingId = text;
      }
    }
  }
}
