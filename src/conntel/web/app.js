// The dashboard: sign-in, the fleet table, a connector's timeline, an event's
// Get Event response. State lives in `app`; the account's live stream keeps it
// current. Input (sorting, filtering, scrolling) redraws at the next animation
// frame; the stream's changes at most every STREAM_REDRAW_MS.

import { Api, ApiError, LiveStream, MAX_T } from "./api.js";
import { FAILURE_COLOR, FAMILIES, anticipate, buildSpans, compareTN, eventKey, familyOf, isFailure } from "./kinds.js";
import { SnapshotPanel } from "./snapshots.js";
import { renderTimeline } from "./timeline.js";
import { el, formatAgo, formatDuration, formatTime, prettyJson, shellQuote } from "./util.js";

const PAGE_ROWS = 300; // event rows shown at first, and per "Show more"
const STREAM_REDRAW_MS = 250; // the stream's changes are drawn together, at most this often
const HEALTH_REFRESH_MS = 60_000; // the fleet's health read again (a safety net under the stream's messages)
const OVERSCAN = 10; // fleet rows drawn above and below the visible ones
const EARLY_EVENTS = 50; // events kept per connector whose health is not known yet
const HEALTHS = ["failing", "silent", "healthy"];
const HEALTH_ORDER = { failing: 0, silent: 1, healthy: 2 };
const collator = new Intl.Collator(undefined, { numeric: true });
const $ = (selector) => document.querySelector(selector);

const app = {
  api: null,
  stream: null,
  connectors: new Map(), // id -> connector state (see newState)
  revision: 0, // counts changes to the fleet's data
  listed: false, // the fleet (connectors and their health) has loaded
  wasLive: false, // the stream has been open before: after a reconnect, health is read again
  progress: "",
  sort: { key: "health", dir: 1 },
  healthFilter: "all",
  text: "",
  shown: [], // the fleet's states as filtered and sorted, for `shownFor`
  shownFor: "",
  rankedSize: 0, // connectors when their ranks by id were last worked out
  rows: new Map(), // id -> <tr>, for the rows drawn
  rowHeight: 50, // px, measured from a drawn row
  view: null, // the open ConnectorView
  frame: false, // a redraw is requested for the next animation frame
  streamTimer: null, // a redraw of the stream's changes is due
  refreshTimer: null, // a read of the fleet's health is due
  detail: null, // {text} of the shown Get Event response
};

// --- Connector state ---------------------------------------------------------

function newState(id) {
  return {
    id,
    record: null, // as List Connectors returned it
    health: null, // {health, since, reason, event?, snapshot?}: the server's, or anticipated from an event
    heartbeat: null, // seconds: last_heartbeat, then `a` of live events
    version: null,
    last: null, // newest event seen since the page opened {t, n, k}
    touched: 0, // app.revision when the stream last changed its health: an older health answer leaves it be
    early: null, // events that came before its health was known, to anticipate from once it is
    search: id.toLowerCase(), // what the text filter looks in
  };
}

function stateFor(id) {
  let state = app.connectors.get(id);
  if (!state) app.connectors.set(id, (state = newState(id)));
  return state;
}

function updateSearch(state) {
  const device = state.record?.device || {};
  state.search = [state.id, device.serial_number, device.id, state.record?.notes, state.version]
    .filter(Boolean)
    .join("\n")
    .toLowerCase();
}

function noteHeartbeat(state, seconds) {
  if (seconds != null && !(seconds <= state.heartbeat)) state.heartbeat = seconds;
}

function applyRecord(record) {
  const state = stateFor(record.id);
  state.record = record;
  noteHeartbeat(state, record.last_heartbeat ? Date.parse(record.last_heartbeat) / 1000 : null);
  if (!state.version && record.last_seen_version) state.version = record.last_seen_version;
  updateSearch(state);
  return state;
}

function applyEvent(state, event) {
  if (!state.last || compareTN(event, state.last) > 0) {
    state.last = { t: event.t, n: event.n, k: event.k };
    if (event.v && event.v !== state.version) {
      state.version = event.v;
      updateSearch(state);
    }
  }
  noteHeartbeat(state, event.a);
}

const fromItem = (item) => ({ t: item.t, n: item.n, k: item.k ?? item.e.k, a: item.a, v: item.v });

/** A health, from a Fleet health item or a stream message: {health, since, reason, event?, snapshot?, ...}. */
function healthOfItem(item) {
  const { connector_id: _id, last_heartbeat: _heartbeat, previous: _previous, ...health } = item;
  return health;
}

// --- Loading and following ---------------------------------------------------

/**
 * The fleet's health in one request. A connector the stream changed while it was asked keeps
 * what the stream said (it is newer); one missing from the answer is gone (deleted).
 */
async function loadHealth() {
  const asked = app.revision;
  const { items } = await app.api.health();
  const present = new Set();
  for (const item of items) {
    present.add(item.connector_id);
    const state = stateFor(item.connector_id);
    noteHeartbeat(state, item.last_heartbeat);
    if (state.touched <= asked) state.health = healthOfItem(item);
    for (const event of state.early ?? []) state.health = anticipate(state.health, event, app.api.now()) ?? state.health;
    state.early = null;
  }
  for (const [id, state] of app.connectors) {
    if (!present.has(id) && state.touched <= asked) app.connectors.delete(id);
  }
  app.revision++;
}

/** refreshHealth within a second, once for however many callers. */
function refreshHealthSoon() {
  app.refreshTimer ??= setTimeout(() => {
    app.refreshTimer = null;
    refreshHealth();
  }, 1000);
}

async function refreshHealth() {
  try {
    await loadHealth();
    app.progress = "";
  } catch (error) {
    app.progress = `Health not refreshed: ${error.message}`;
  }
  markDirty();
}

function onLive(message) {
  const known = app.connectors.has(message.connector_id);
  const state = stateFor(message.connector_id);
  const event = fromItem(message);
  applyEvent(state, event);
  app.revision++;
  if (!state.health) {
    // Not known yet (the fleet is loading, or the connector is new): the server's answer decides.
    (state.early ??= []).push(event);
    if (state.early.length > EARLY_EVENTS) state.early.shift();
  } else {
    const anticipated = anticipate(state.health, event, app.api.now());
    if (anticipated) {
      state.health = anticipated;
      state.touched = app.revision;
    }
  }
  if (!known && app.listed) {
    // A connector made after the fleet loaded: its record, and the fleet's health again (it is in it now).
    app.api.connector(state.id).then(applyRecord, () => {}).then(() => {
      app.revision++;
      markDirty();
    });
    refreshHealthSoon();
  }
  if (app.view && app.view.id === message.connector_id) app.view.add(event);
  markStreamed();
}

function onHealth(message) {
  const state = stateFor(message.connector_id);
  state.health = healthOfItem(message);
  state.touched = ++app.revision;
  markStreamed();
}

function setLive(status, error) {
  const label = {
    connecting: "connecting…",
    live: "live",
    reconnecting: "reconnecting…",
    denied: `stream refused: ${error?.message ?? ""}`,
  }[status];
  const node = $("#live");
  node.textContent = label;
  node.dataset.state = status;
  if (status !== "live") return;
  // Health changes carry no id: the ones made while the stream was down are read again.
  if (app.wasLive && app.listed) refreshHealth();
  app.wasLive = true;
}

// --- Session -----------------------------------------------------------------

/** `#token=...&account=...[&connector=...]`: keep them in this tab, then drop them from the address bar. */
function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("token") && !params.has("account")) return;
  for (const name of ["token", "account"]) {
    if (params.get(name)) sessionStorage.setItem(`conntel.${name}`, params.get(name));
  }
  const connector = params.get("connector");
  const hash = connector ? `#/connectors/${encodeURIComponent(connector)}` : "#/";
  history.replaceState(null, "", location.pathname + location.search + hash);
}

function showSignin(message = "") {
  for (const id of ["fleet", "connector"]) $(`#${id}`).hidden = true;
  $("#signin").hidden = false;
  $("#signin-account").value = sessionStorage.getItem("conntel.account") || "";
  $("#signin-token").value = sessionStorage.getItem("conntel.token") || ""; // from a #token= without an account
  $("#signin button[type=submit]").disabled = false;
  $("#signin-error").textContent = message;
  ($("#signin-account").value ? $("#signin-token") : $("#signin-account")).focus();
}

async function open(account, token) {
  const api = new Api(account, token);
  app.api = api;
  const stream = new LiveStream(api, api.url("/telemetry/events/stream"), {
    onEvent: onLive,
    onHealth,
    onStatus: setLive,
  });
  // The stream first: it carries every change after it opened, the two requests below the
  // fleet as it was; merging keeps the newer of both.
  stream.start();
  await Promise.race([stream.opened, new Promise((resolve) => setTimeout(resolve, 5000))]);
  let records;
  try {
    [records] = await Promise.all([api.connectors(), loadHealth()]);
  } catch (error) {
    stream.stop();
    app.api = null;
    app.connectors.clear();
    sessionStorage.removeItem("conntel.token");
    showSignin(error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error));
    return;
  }
  sessionStorage.setItem("conntel.account", account);
  sessionStorage.setItem("conntel.token", token);
  app.stream = stream;
  $("#signin").hidden = true;
  $("#sign-out").hidden = false;
  $("#account-label").textContent = `account ${account}`;
  records.forEach(applyRecord);
  app.revision++;
  app.listed = true;
  // A connector made between the two answers has no health yet: read it again at once.
  if ([...app.connectors.values()].some((state) => !state.health)) refreshHealthSoon();
  setInterval(refreshHealth, HEALTH_REFRESH_MS);
  route();
  loadKindNames();
}

function signOut() {
  app.stream?.stop();
  sessionStorage.removeItem("conntel.token");
  location.replace(location.pathname + location.search);
}

// --- Rendering ---------------------------------------------------------------

/** Redraw at the next animation frame (input, and the clock). */
function markDirty() {
  if (app.frame) return;
  app.frame = true;
  requestAnimationFrame(() => {
    app.frame = false;
    if (!app.listed) return;
    if (!$("#fleet").hidden) renderFleet();
    if (app.view && !$("#connector").hidden) app.view.render();
  });
}

/** Redraw what the stream changed, together with whatever else it changes within STREAM_REDRAW_MS. */
function markStreamed() {
  if (app.streamTimer) return;
  app.streamTimer = setTimeout(() => {
    app.streamTimer = null;
    markDirty();
  }, STREAM_REDRAW_MS);
}

function kindChip(kind, tag = "span", attrs = {}) {
  const chip = el(tag, { class: `kind${isFailure(kind) ? " failure" : ""}`, text: kind, ...attrs });
  chip.style.setProperty("--c", isFailure(kind) ? FAILURE_COLOR : familyOf(kind).color);
  return chip;
}

const REASONS = {
  never_reported: () => "never pushed anything",
  no_heartbeat: () => "nothing pushed lately",
  reporting: () => "pushing again",
  tunnel_down: (health) => (health.tunnel_id ? `tunnel ${health.tunnel_id} down` : "a tunnel down"),
  tunnels_up: () => "tunnels up again",
  operation_pending: () => "an operation is pending",
};

/** Why a connector's health is what it is, in a few words: the reason, or the outcome kind itself. */
const reasonText = (health) => REASONS[health.reason]?.(health) ?? health.reason;

function healthBadge(state) {
  const health = state.health;
  if (!health) return el("span", { class: "badge health-unknown", title: "not known yet", text: "…" });
  const cause = health.event ? ` (event ${eventKey(health.event)})` : health.snapshot ? ` (snapshot ${health.snapshot.t})` : "";
  const title = `${reasonText(health)} since ${formatTime(health.since)}${cause}`;
  return el("span", { class: `badge health-${health.health}`, title, text: health.health });
}

// Sorting compares numbers only: each state's `rank` among the ids and its version's among the
// versions are worked out by the collator beforehand (see ranked), which keeps a sort of thousands
// of rows to a few milliseconds.
const byId = (a, b) => a.rank - b.rank;
const SORTS = {
  id: byId,
  health: (a, b) => (HEALTH_ORDER[a.health?.health] ?? 3) - (HEALTH_ORDER[b.health?.health] ?? 3) || byId(a, b),
  last: (a, b) => (b.last ? b.last.t : -1) - (a.last ? a.last.t : -1) || byId(a, b),
  version: (a, b) => a.versionRank - b.versionRank || byId(a, b),
  heartbeat: (a, b) => (b.heartbeat ?? -1) - (a.heartbeat ?? -1) || byId(a, b),
};

/** Give every state its `rank` by id (when connectors came or went) and its version's `versionRank`. */
function ranked(states) {
  if (app.rankedSize !== states.length || states.some((state) => state.rank === undefined)) {
    [...states].sort((a, b) => collator.compare(a.id, b.id)).forEach((state, index) => (state.rank = index));
    app.rankedSize = states.length;
  }
  const versions = [...new Set(states.map((state) => state.version || ""))].sort(collator.compare);
  const ranks = new Map(versions.map((version, index) => [version, index]));
  for (const state of states) state.versionRank = ranks.get(state.version || "");
  return states;
}

/** The fleet as filtered and sorted, and the count by health: computed again only when one of them changed. */
function shownStates() {
  const key = JSON.stringify([app.revision, app.sort, app.healthFilter, app.text]);
  if (key === app.shownFor) return app.shown;
  app.shownFor = key;
  const counts = { all: 0, failing: 0, silent: 0, healthy: 0 };
  const shown = [];
  for (const state of ranked([...app.connectors.values()])) {
    counts.all++;
    const health = state.health?.health;
    if (health in counts) counts[health]++;
    if ((app.healthFilter === "all" || health === app.healthFilter) && state.search.includes(app.text)) {
      shown.push(state);
    }
  }
  const compare = SORTS[app.sort.key];
  shown.sort(app.sort.dir > 0 ? compare : (a, b) => compare(b, a));
  for (const button of $("#health-filter").children) {
    const name = button.dataset.health;
    button.textContent = `${name === "all" ? "All" : name} ${counts[name]}`;
    button.dataset.count = counts[name];
    button.setAttribute("aria-pressed", String(app.healthFilter === name));
  }
  for (const th of $("#fleet-table thead tr").children) {
    const sortKey = th.firstElementChild.dataset.sort;
    th.setAttribute("aria-sort", sortKey !== app.sort.key ? "none" : app.sort.dir > 0 ? "ascending" : "descending");
  }
  $("#fleet-table").setAttribute("aria-rowcount", String(shown.length + 1));
  return (app.shown = shown);
}

/**
 * The fleet table draws only the rows in view (and OVERSCAN more each side): two spacer rows
 * stand for the others, so the page scrolls over the whole fleet as if every row were there.
 */
function renderFleet() {
  const now = app.api.now();
  const shown = shownStates();
  const tbody = $("#fleet-table tbody");
  const [above, below] = tbody.querySelectorAll(":scope > tr.spacer");
  const height = app.rowHeight;
  const top = tbody.getBoundingClientRect().top; // of the spacer above: where row 0 would be
  const first = Math.max(0, Math.min(shown.length, Math.floor(-top / height) - OVERSCAN));
  const end = Math.max(first, Math.min(shown.length, Math.ceil((innerHeight - top) / height) + OVERSCAN));
  let cursor = above.nextSibling;
  for (let index = first; index < end; index++) {
    const row = fleetRow(shown[index], now);
    row.setAttribute("aria-rowindex", String(index + 2));
    if (row === cursor) cursor = cursor.nextSibling;
    else tbody.insertBefore(row, cursor);
  }
  while (cursor !== below) {
    const next = cursor.nextSibling;
    app.rows.delete(cursor.dataset.id); // drawn again from its state when it comes back into view
    cursor.remove();
    cursor = next;
  }
  above.firstChild.style.height = `${first * height}px`;
  below.firstChild.style.height = `${(shown.length - end) * height}px`;
  const drawn = above.nextSibling;
  if (drawn !== below) app.rowHeight = drawn.getBoundingClientRect().height || height;
  $("#fleet-empty").hidden = shown.length > 0 || !app.listed;
  $("#fleet-progress").textContent = app.progress;
}

function fleetRow(state, now) {
  let row = app.rows.get(state.id);
  const heartbeat = state.heartbeat ? formatAgo(state.heartbeat, now) : "never";
  const lastAgo = state.last ? formatAgo(state.last.t, now) : "";
  const sinceAgo = state.health ? formatAgo(state.health.since, now) : "";
  const signature = JSON.stringify([state.health, state.last, state.version, heartbeat, lastAgo, sinceAgo,
    state.record?.notes]); // fmt: skip
  if (row && row.signature === signature) return row;
  if (!row) app.rows.set(state.id, (row = el("tr", { "data-id": state.id })));
  row.signature = signature;
  row.dataset.health = state.health?.health ?? "unknown";
  const device = state.record?.device;
  const sub = [device?.serial_number, device?.type, state.record?.notes].filter(Boolean).join(" · ");
  row.replaceChildren(
    el(
      "td",
      { class: "connector-cell" },
      el("a", { href: `#/connectors/${encodeURIComponent(state.id)}`, text: state.id }),
      el("div", { class: "sub", title: sub || null, text: sub || "\u00a0" }),
    ),
    el(
      "td",
      { class: "health-cell" },
      healthBadge(state),
      el("div", { class: "sub", text: state.health ? `${reasonText(state.health)} · ${sinceAgo}` : "\u00a0" }),
    ),
    el(
      "td",
      { class: "last-cell", title: state.last ? `${formatTime(state.last.t)} (${eventKey(state.last)})` : null },
      state.last ? [kindChip(state.last.k), " ", el("span", { class: "muted", text: lastAgo })] : "—",
    ),
    el("td", { class: "version-cell", text: state.version || "—" }),
    el("td", { title: state.heartbeat ? formatTime(state.heartbeat) : null, text: heartbeat }),
  );
  return row;
}

// --- A connector -------------------------------------------------------------

const OPERATIONS = ["reboot", "restart", "shutdown"];
const OPERATION_LABELS = { reboot: "Reboot", restart: "Restart", shutdown: "Shut down" };
const QUESTIONS = {
  reboot: (id) => `Reboot ${id}: the whole appliance restarts at its next check-in, its tunnels down meanwhile`,
  restart: (id) => `Restart the connector software on ${id} at its next check-in`,
  shutdown: (id) => `Shut down ${id} at its next check-in: it stays off until someone powers it on on site`,
};

class ConnectorView {
  constructor(id) {
    this.id = id;
    this.events = new Map(); // "t.n" -> {t, n, k, a?}
    this.sorted = [];
    this.stale = false;
    this.revision = 0;
    this.loading = true;
    this.error = "";
    this.truncated = false;
    this.range = Number($("#timeline-range").value);
    this.shownRows = PAGE_ROWS;
    this.selected = null;
    this.selectedSnapshot = null; // t of the snapshot shown in the detail panel
    this.metrics = new SnapshotPanel(app.api, id, { onChange: markDirty });
  }

  /** The fleet's state for this connector (a detached one for an id the list does not have). */
  state() {
    return app.connectors.get(this.id) || (this.detached ??= newState(this.id));
  }

  add(event) {
    const key = eventKey(event);
    this.events.set(key, { ...this.events.get(key), ...event });
    this.stale = true;
    this.revision++;
  }

  /** The window: as zoomed, or ending now, or at the newest event when that is later (simulated fleets run ahead). */
  window() {
    const now = app.api.now();
    if (this.zoom) return { ...this.zoom, now };
    const newest = this.sorted.length ? this.sorted[this.sorted.length - 1].t : this.state().last?.t;
    let to = Math.max(now, newest ?? now);
    if (newest != null && now - newest > this.range) to = newest + this.range * 0.05; // quiet: show its last activity
    return { from: Math.floor(to - this.range), to: Math.ceil(to), now };
  }

  async load() {
    this.loadOperations();
    this.checkMayOperate();
    const generation = (this.generation = (this.generation || 0) + 1);
    this.loading = true;
    this.error = "";
    markDirty();
    try {
      const state = this.state();
      if (!state.last) {
        const newest = (await app.api.latest(this.id)).items[0];
        if (newest) applyEvent(state, fromItem(newest));
      }
      const { from } = this.window();
      const { items, truncated } = await app.api.listEvents(this.id, from, MAX_T);
      if (generation !== this.generation) return;
      items.forEach((item) => this.add(fromItem(item)));
      this.truncated = truncated;
    } catch (error) {
      this.error = error.status === 404 ? "No such connector in this account." : error.message;
    }
    this.loading = false;
    markDirty();
  }

  render() {
    const state = this.state();
    const now = app.api.now();
    $("#connector-title").textContent = this.id;
    $("#connector-health").replaceChildren(healthBadge(state));
    this.renderMeta(state, now);
    this.renderOperations(now);

    // The timeline and the table only when something they show changed: the
    // account's stream wakes this up for every connector's events.
    const width = $("#timeline").clientWidth;
    if (!this.loading) this.metrics.sync(this.window().from, this.window().to);
    const signature = JSON.stringify([this.revision, this.selected, this.zoom, this.loading, this.error,
      this.shownRows, width, Math.floor(now / 15), this.metrics.revision, this.selectedSnapshot]); // fmt: skip
    if (signature === this.signature) return;
    this.signature = signature;
    if (this.stale) {
      this.sorted = [...this.events.values()].sort(compareTN);
      this.stale = false;
    }
    const { from, to } = this.window();
    const spans = buildSpans(this.sorted, to);
    const inWindow = this.sorted.filter((e) => e.t >= from && e.t <= to);
    const spanCount = spans.filter((s) => s.to >= from && s.from <= to).length;
    const status = this.loading
      ? "Loading events…"
      : this.error ||
        `${inWindow.length} events, ${spanCount} spans from ${formatTime(from)} to ${formatTime(to)}` +
          (this.zoom ? " (zoomed)" : " · drag across the timeline to zoom") +
          (this.truncated ? " · the first 20,000 only: pick a shorter window" : "");
    $("#timeline-status").textContent = status;
    renderTimeline($("#timeline"), {
      events: this.sorted,
      spans,
      from,
      to,
      now,
      selected: this.selected,
      onSelect: (event) => this.select(event),
      onZoom: (zoomFrom, zoomTo) => this.zoomTo(zoomFrom, zoomTo),
    });
    $("#timeline-reset").hidden = !this.zoom;
    $("#charts-status").textContent = this.metrics.status;
    this.metrics.render($("#charts"), {
      from,
      to,
      selected: this.selectedSnapshot,
      onSelect: (t) => this.selectSnapshot(t),
    });
    this.renderTable(inWindow, spans);
  }

  renderMeta(state, now) {
    const record = state.record || {};
    const device = record.device || {};
    const facts = [
      ["Version", state.version || "—"],
      ["Last heartbeat", state.heartbeat ? `${formatAgo(state.heartbeat, now)} (${formatTime(state.heartbeat)})` : "never"],
      ["Last event", state.last ? `${state.last.k} at ${formatTime(state.last.t)}` : "—"],
      ["Device", [device.type, device.serial_number, device.id].filter(Boolean).join(" · ") || "—"],
      ["Activated", record.activated == null ? "—" : record.activated ? "yes" : "no"],
      ["Time zone", record.timezone || "—"],
      ["Notes", record.notes || "—"],
    ];
    $("#connector-meta").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]));
  }

  // Operations (interrupts): the pending or most recent one, and reboot/restart/shutdown behind a
  // confirmation when the token may submit them (Magic WAN Write).
  async loadOperations() {
    try {
      this.interrupts = await app.api.interrupts(this.id);
      this.operationsError = "";
    } catch (error) {
      this.interrupts ??= [];
      this.operationsError = error.status === 404 ? "" : `Cannot list operations: ${error.message}`;
    }
    markDirty();
  }

  async checkMayOperate() {
    this.mayOperate = await app.api.maySubmitInterrupts(this.id);
    markDirty();
  }

  renderOperations(now) {
    const list = this.interrupts;
    const last = list?.[0];
    const pending = Boolean(last && !last.triggered_at);
    let status = "Looking up operations…";
    if (list && !last) status = "No operations yet.";
    if (last) {
      const action = OPERATIONS.find((name) => name in last);
      const what = `${action}${last[action]?.purge ? " with purge" : ""}`;
      const submitted = Date.parse(last.submitted_at) / 1000;
      const triggered = last.triggered_at ? Date.parse(last.triggered_at) / 1000 : null;
      status = pending
        ? `Pending: ${what}, submitted ${formatAgo(submitted, now)}; the connector executes it at its next check-in.`
        : `Last: ${what}, executed ${formatAgo(triggered, now)} (${formatTime(triggered)}).`;
    }
    const shown = $("#operation-status");
    shown.textContent = status;
    shown.dataset.state = pending ? "pending" : last ? "executed" : list ? "none" : "loading";
    $("#operation-controls").hidden = !this.mayOperate;
    $("#operation-controls").dataset.permission = this.mayOperate == null ? "unknown" : this.mayOperate ? "write" : "read";
    for (const button of $("#operation-controls").querySelectorAll("button")) {
      button.disabled = pending || Boolean(this.submitting);
      button.title = pending ? "One operation at a time: wait until the pending one is executed" : "";
    }
    const confirming = this.confirming;
    $("#operation-confirm").hidden = !confirming;
    if (confirming) {
      const purge = $("#operation-purge").checked ? ", discarding its local state (purge)" : "";
      $("#operation-question").textContent = `${QUESTIONS[confirming](this.id)}${purge}?`;
      $("#operation-yes").textContent = OPERATION_LABELS[confirming];
    }
    $("#operation-error").textContent = this.operationError || this.operationsError || "";
  }

  async submit() {
    const action = this.confirming;
    if (!action) return;
    this.confirming = null;
    this.submitting = true;
    this.operationError = "";
    markDirty();
    try {
      await app.api.createInterrupt(this.id, action, $("#operation-purge").checked);
      $("#operation-purge").checked = false;
    } catch (error) {
      this.operationError =
        error.code === 20041
          ? "Another operation is pending: wait until the connector has executed it."
          : `Not submitted: ${error.message} (HTTP ${error.status})`;
    }
    this.submitting = false;
    await this.loadOperations();
  }

  renderTable(inWindow, spans) {
    const took = new Map(spans.filter((s) => s.finish).map((s) => [eventKey(s.finish), s.to - s.from]));
    const newestFirst = inWindow.slice(-this.shownRows).reverse();
    $("#events-table tbody").replaceChildren(
      ...newestFirst.map((event) => {
        const key = eventKey(event);
        const classes = [isFailure(event.k) && "failure", key === this.selected && "selected"].filter(Boolean);
        return el(
          "tr",
          { class: classes.join(" ") || null, "data-key": key },
          el("td", { text: formatTime(event.t) }),
          el("td", { class: "mono", text: key }),
          el("td", {}, kindChip(event.k, "button", { type: "button", "data-key": key, title: "Show Get Event" })),
          el("td", { text: took.has(key) ? formatDuration(took.get(key)) : "" }),
          el("td", { text: event.a ? formatTime(event.a) : "" }),
        );
      }),
    );
    const more = $("#events-more");
    more.hidden = inWindow.length <= this.shownRows;
    more.textContent = `Show more (${inWindow.length - this.shownRows} older)`;
  }

  zoomTo(from, to) {
    const middle = (from + to) / 2;
    const half = Math.max(5, (to - from) / 2); // ten seconds at least
    this.zoom = { from: Math.floor(middle - half), to: Math.ceil(middle + half) };
    markDirty();
  }

  select(event) {
    this.selected = eventKey(event);
    this.selectedSnapshot = null;
    markDirty();
    openDetail(this.id, event);
  }

  selectSnapshot(t) {
    this.selectedSnapshot = t;
    this.selected = null;
    markDirty();
    openSnapshotDetail(this.id, t);
  }
}

// --- Get Event panel ---------------------------------------------------------

async function openDetail(connectorId, event) {
  const url = app.api.eventUrl(connectorId, event.t, event.n);
  await showResponse(url, `${event.k} · ${eventKey(event)}`, "Get Event", () =>
    app.api.getEventText(connectorId, event.t, event.n),
  );
}

async function openSnapshotDetail(connectorId, t) {
  const url = app.api.snapshotUrl(connectorId, t);
  await showResponse(url, `Snapshot · ${t} · ${formatTime(t)}`, "Get Snapshot", () =>
    app.api.getSnapshotText(connectorId, t),
  );
}

/** The detail panel: what `operation` (Get Event, Get Snapshot) answers at `url`, byte for byte, and its curl. */
async function showResponse(url, title, operation, request) {
  const ticket = (app.detail = { text: null });
  app.detailReturn ??= document.activeElement;
  $("#detail").hidden = false;
  document.body.classList.add("with-detail");
  $("#detail-title").textContent = title;
  $("#detail-operation").textContent = operation;
  $("#detail-request").textContent = `GET ${url}`;
  $("#detail-status").textContent = "";
  $("#detail-json").textContent = "Loading…";
  $("#detail-copied").textContent = "";
  $("#detail-curl").textContent = `curl -sS -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN" ${shellQuote(url)}`;
  $("#detail-close").focus();
  try {
    const response = await request();
    if (app.detail !== ticket) return; // another event was opened meanwhile
    ticket.text = response.text;
    $("#detail-status").textContent = `HTTP ${response.status}`;
  } catch (error) {
    if (app.detail === ticket) $("#detail-json").textContent = `Request failed: ${error.message}`;
    return;
  }
  showDetailJson();
}

function showDetailJson() {
  const text = app.detail?.text;
  if (text != null) $("#detail-json").textContent = $("#detail-pretty").checked ? prettyJson(text) : text;
}

function closeDetail() {
  if ($("#detail").hidden) return;
  $("#detail").hidden = true;
  document.body.classList.remove("with-detail");
  app.detail = null;
  if (app.view) {
    app.view.selected = null;
    app.view.selectedSnapshot = null;
    markDirty();
  }
  app.detailReturn?.focus?.();
  app.detailReturn = null;
}

async function copyCurl() {
  const text = $("#detail-curl").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (plain http on another host): select the text for Ctrl-C.
    getSelection().selectAllChildren($("#detail-curl"));
    if (!document.execCommand("copy")) {
      $("#detail-copied").textContent = "Selected: press Ctrl-C";
      return;
    }
  }
  $("#detail-copied").textContent = "Copied";
}

// --- Kinds, from the server's own table --------------------------------------

async function loadKindNames() {
  try {
    const response = await fetch(new URL("client/v4/openapi.json", document.baseURI));
    const refs = (await response.json()).components.schemas.Event.properties.e.oneOf;
    const names = refs.map((ref) => ref.$ref.split("/").pop());
    for (const item of $("#legend").children) {
      const family = item.dataset.family;
      const kinds = names.filter((name) => familyOf(name).id === family);
      if (kinds.length) item.title = kinds.join(", ");
    }
  } catch {
    // the legend works without the kind names
  }
}

function buildLegend() {
  const items = FAMILIES.map((family) => {
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.setProperty("--c", family.color);
    return el("li", { "data-family": family.id }, swatch, family.label);
  });
  const failure = el("span", { class: "swatch failure", "aria-hidden": "true" });
  failure.style.setProperty("--c", FAILURE_COLOR);
  items.push(el("li", {}, failure, "Failure / error"));
  const spanSwatch = el("span", { class: "swatch bar", "aria-hidden": "true" });
  items.push(el("li", {}, spanSwatch, "Start → Finish (duration)"));
  $("#legend").replaceChildren(...items);
}

// --- Navigation and controls --------------------------------------------------

function route() {
  if (!app.api) return;
  const match = /^#\/connectors\/([^/]+)$/.exec(location.hash);
  closeDetail();
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (!app.view || app.view.id !== id) {
      app.view = new ConnectorView(id);
      app.view.load();
    }
    $("#fleet").hidden = true;
    $("#connector").hidden = false;
    document.title = `${id} · conntel`;
    scrollTo(0, 0);
  } else {
    app.view = null;
    $("#connector").hidden = true;
    $("#fleet").hidden = false;
    document.title = "conntel · connector fleet";
  }
  markDirty();
}

function wireControls() {
  $("#sign-out").addEventListener("click", signOut);
  $("#signin-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const account = $("#signin-account").value.trim();
    const token = $("#signin-token").value.trim();
    $("#signin-token").value = "";
    $("#signin button[type=submit]").disabled = true;
    sessionStorage.setItem("conntel.account", account);
    $("#signin-error").textContent = "Opening…";
    open(account, token);
  });
  $("#health-filter").replaceChildren(
    ...["all", ...HEALTHS].map((name) =>
      el("button", {
        type: "button",
        "data-health": name,
        class: `health-${name}`,
        onclick: () => {
          app.healthFilter = name;
          markDirty();
        },
      }),
    ),
  );
  $("#fleet-filter").addEventListener("input", (input) => {
    app.text = input.target.value.trim().toLowerCase();
    markDirty();
  });
  $("#fleet-table thead").addEventListener("click", (click) => {
    const key = click.target.closest("button[data-sort]")?.dataset.sort;
    if (!key) return;
    app.sort = { key, dir: app.sort.key === key ? -app.sort.dir : 1 };
    markDirty();
  });
  $("#timeline-range").addEventListener("change", () => {
    if (!app.view) return;
    app.view.range = Number($("#timeline-range").value);
    app.view.zoom = null;
    app.view.load();
  });
  $("#timeline-reset").addEventListener("click", () => {
    app.view.zoom = null;
    markDirty();
  });
  $("#events-table tbody").addEventListener("click", (click) => {
    const key = click.target.closest("button[data-key]")?.dataset.key;
    const event = key && app.view?.events.get(key);
    if (event) app.view.select(event);
  });
  $("#events-more").addEventListener("click", () => {
    app.view.shownRows += PAGE_ROWS;
    markDirty();
  });
  $("#operation-controls").addEventListener("click", (click) => {
    const action = click.target.closest("button[data-action]")?.dataset.action;
    if (!action || !app.view) return;
    app.view.confirming = action;
    markDirty();
  });
  $("#operation-purge").addEventListener("change", markDirty);
  $("#operation-no").addEventListener("click", () => {
    if (app.view) app.view.confirming = null;
    markDirty();
  });
  $("#operation-yes").addEventListener("click", () => app.view?.submit());
  setInterval(() => app.view?.loadOperations(), 5000); // a pending operation turns executed
  $("#detail-close").addEventListener("click", closeDetail);
  $("#detail-pretty").addEventListener("change", showDetailJson);
  $("#detail-copy").addEventListener("click", copyCurl);
  document.addEventListener("keydown", (key) => {
    if (key.key === "Escape") closeDetail();
  });
  addEventListener("hashchange", route);
  addEventListener("resize", markDirty);
  addEventListener("scroll", markDirty, { passive: true }); // the fleet table draws the rows in view
  setInterval(markDirty, 15000); // "5m ago" moves with the clock
}

wireControls();
buildLegend();
takeFragment();
const savedToken = sessionStorage.getItem("conntel.token");
const savedAccount = sessionStorage.getItem("conntel.account");
if (savedToken && savedAccount) open(savedAccount, savedToken);
else showSignin();
