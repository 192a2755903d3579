// The dashboard: sign-in, the fleet table, a connector's timeline, an event's
// Get Event response. State lives in `app`; the account's live stream keeps it
// current; rendering happens at most once per animation frame.

import { Api, ApiError, LiveStream, MAX_T, pool } from "./api.js";
import {
  FAILURE_COLOR,
  FAMILIES,
  HEALTH_KINDS,
  buildSpans,
  compareTN,
  eventKey,
  familyOf,
  healthOf,
  healthOutcome,
  isFailure,
  isSilent,
} from "./kinds.js";
import { SnapshotPanel } from "./snapshots.js";
import { renderTimeline } from "./timeline.js";
import { el, formatAgo, formatDuration, formatTime, prettyJson, shellQuote } from "./util.js";

const CONCURRENCY = 8; // requests in flight while loading the fleet
const LOOKBACK = 90 * 86400; // how far back to look for a connector's last attempt when Latest has none
const LATEST_SIZE = 100; // Latest Events answers at most this many
const PAGE_ROWS = 300; // event rows shown at first, and per "Show more"
const HEALTH_ORDER = { failing: 0, silent: 1, error: 2, checking: 3, healthy: 4 };
const $ = (selector) => document.querySelector(selector);

const app = {
  api: null,
  stream: null,
  connectors: new Map(), // id -> connector state (see newState)
  listed: false, // the connector list has loaded
  progress: "",
  silentSeconds: 60 * (Number(localStorage.getItem("conntel.silentMinutes")) || 15),
  sort: { key: "health", dir: 1 },
  healthFilter: "all",
  text: "",
  rows: new Map(), // id -> <tr>
  view: null, // the open ConnectorView
  dirty: false,
  detail: null, // {text} of the shown Get Event response
};

// --- Connector state ---------------------------------------------------------

function newState(id) {
  return {
    id,
    record: null, // as List Connectors returned it
    heartbeat: null, // seconds: last_heartbeat, then `a` of live events
    version: null,
    last: null, // newest event {t, n, k}
    finish: null, // newest Finish that health counts {t, n, k, outcome}
    finishKnown: false, // finish is settled (looked up, or seen to be absent)
    error: null,
  };
}

function stateFor(id) {
  let state = app.connectors.get(id);
  if (!state) app.connectors.set(id, (state = newState(id)));
  return state;
}

function applyRecord(record) {
  const state = stateFor(record.id);
  state.record = record;
  const heartbeat = record.last_heartbeat ? Date.parse(record.last_heartbeat) / 1000 : null;
  if (heartbeat !== null && !(heartbeat <= state.heartbeat)) state.heartbeat = heartbeat;
  if (!state.version && record.last_seen_version) state.version = record.last_seen_version;
  return state;
}

function applyEvent(state, event) {
  if (!state.last || compareTN(event, state.last) > 0) {
    state.last = { t: event.t, n: event.n, k: event.k };
    if (event.v) state.version = event.v;
  }
  if (event.a && !(event.a <= state.heartbeat)) state.heartbeat = event.a;
  const outcome = healthOutcome(event.k);
  if (outcome && (!state.finish || compareTN(event, state.finish) > 0)) {
    state.finish = { t: event.t, n: event.n, k: event.k, outcome };
  }
}

const fromItem = (item) => ({ t: item.t, n: item.n, k: item.k ?? item.e.k, a: item.a, v: item.v });

function applyLatest(state, latest) {
  const items = latest.items; // newest first
  if (items.length) applyEvent(state, fromItem(items[0]));
  const finish = items.find((item) => healthOutcome(item.e.k));
  if (finish) applyEvent(state, fromItem(finish));
  // Settled when an attempt is among them, or when they are all the events there are.
  if (finish || items.length < LATEST_SIZE) state.finishKnown = true;
}

/** No attempt among the latest events: ask List Events for each kind that counts. */
async function lookUpFinish(state) {
  const newest = state.last ? state.last.t : app.api.now();
  const from = Math.max(0, Math.floor(newest - LOOKBACK));
  for (const kind of HEALTH_KINDS) {
    const { items } = await app.api.listEvents(state.id, from, MAX_T, { kind, maxPages: 5 });
    if (items.length) applyEvent(state, fromItem(items[items.length - 1]));
  }
  state.finishKnown = true;
}

function healthNow(state, now) {
  return state.error ? "error" : healthOf(state, now, app.silentSeconds);
}

// --- Loading -----------------------------------------------------------------

async function loadFleet(api) {
  const ids = [...app.connectors.keys()];
  let done = 0;
  const guarded = (work) => async (state) => {
    try {
      await work(state);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) app.connectors.delete(state.id);
      else state.error = error.message;
    }
    done++;
    markDirty();
  };
  app.progress = `Loading ${ids.length} connectors…`;
  await pool(
    ids.map((id) => app.connectors.get(id)),
    CONCURRENCY,
    guarded(async (state) => {
      applyLatest(state, await api.latest(state.id));
      app.progress = `Latest events: ${done + 1} of ${ids.length} connectors`;
    }),
  );
  const unsettled = [...app.connectors.values()].filter((s) => !s.finishKnown && !s.error);
  done = 0;
  await pool(
    unsettled,
    CONCURRENCY,
    guarded(async (state) => {
      await lookUpFinish(state);
      app.progress = `Earlier attempts: ${done + 1} of ${unsettled.length} connectors`;
    }),
  );
  app.progress = "";
  markDirty();
}

function onLive(message) {
  const known = app.connectors.has(message.connector_id);
  const state = stateFor(message.connector_id);
  const event = fromItem(message);
  applyEvent(state, event);
  if (!known && app.listed) {
    // A connector made after the list loaded: all its events come from here on.
    state.finishKnown = true;
    app.api.connector(state.id).then(applyRecord, () => {}).then(markDirty);
  }
  if (app.view && app.view.id === message.connector_id) app.view.add(event);
  markDirty();
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
  const stream = new LiveStream(api, api.url("/telemetry/events/stream"), { onEvent: onLive, onStatus: setLive });
  // The stream first: it carries every event acknowledged after it opened, the
  // loads below everything before; merging keeps the newest of both.
  stream.start();
  await Promise.race([stream.opened, new Promise((resolve) => setTimeout(resolve, 5000))]);
  let records;
  try {
    records = await api.connectors();
  } catch (error) {
    stream.stop();
    sessionStorage.removeItem("conntel.token");
    showSignin(error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error));
    return;
  }
  sessionStorage.setItem("conntel.account", account);
  sessionStorage.setItem("conntel.token", token);
  Object.assign(app, { api, stream });
  $("#signin").hidden = true;
  $("#sign-out").hidden = false;
  $("#account-label").textContent = `account ${account}`;
  records.forEach(applyRecord);
  app.listed = true;
  route();
  loadKindNames();
  await loadFleet(api);
}

function signOut() {
  app.stream?.stop();
  sessionStorage.removeItem("conntel.token");
  location.replace(location.pathname + location.search);
}

// --- Rendering ---------------------------------------------------------------

function markDirty() {
  if (app.dirty) return;
  app.dirty = true;
  requestAnimationFrame(() => {
    app.dirty = false;
    if (!app.api) return;
    if (!$("#fleet").hidden) renderFleet();
    if (app.view && !$("#connector").hidden) app.view.render();
  });
}

function kindChip(kind, tag = "span", attrs = {}) {
  const chip = el(tag, { class: `kind${isFailure(kind) ? " failure" : ""}`, text: kind, ...attrs });
  chip.style.setProperty("--c", isFailure(kind) ? FAILURE_COLOR : familyOf(kind).color);
  return chip;
}

function healthBadges(state, health, now) {
  const title =
    health === "failing"
      ? `${state.finish.k} at ${formatTime(state.finish.t)}`
      : health === "silent"
        ? state.heartbeat
          ? `no events for ${formatDuration(now - state.heartbeat)}`
          : "has never pushed events"
        : health === "error"
          ? state.error
          : health === "checking"
            ? "looking up its latest attempts"
            : state.finish
              ? `${state.finish.k} at ${formatTime(state.finish.t)}`
              : "no upgrade, attestation or rotation yet";
  const badges = [el("span", { class: `badge health-${health}`, title, text: health })];
  if (health === "failing" && isSilent(state, now, app.silentSeconds)) {
    badges.push(el("span", { class: "badge health-silent", title: "no recent events", text: "silent" }));
  }
  return badges;
}

const SORTS = {
  id: (a, b) => a.id.localeCompare(b.id),
  health: (a, b) => HEALTH_ORDER[a.health] - HEALTH_ORDER[b.health] || a.id.localeCompare(b.id),
  last: (a, b) => (b.last ? b.last.t : -1) - (a.last ? a.last.t : -1) || a.id.localeCompare(b.id),
  version: (a, b) => (a.version || "").localeCompare(b.version || "", undefined, { numeric: true }),
  heartbeat: (a, b) => (b.heartbeat ?? -1) - (a.heartbeat ?? -1) || a.id.localeCompare(b.id),
};

function matchesText(state, text) {
  if (!text) return true;
  const device = state.record?.device || {};
  return [state.id, device.serial_number, device.id, state.record?.notes, state.version].some((value) =>
    value?.toLowerCase().includes(text),
  );
}

function renderFleet() {
  const now = app.api.now();
  const states = [...app.connectors.values()];
  const counts = { all: states.length, failing: 0, silent: 0, healthy: 0, checking: 0, error: 0 };
  for (const state of states) counts[(state.health = healthNow(state, now))]++;
  for (const button of $("#health-filter").children) {
    const name = button.dataset.health;
    button.textContent = `${name === "all" ? "All" : name} ${counts[name]}`;
    button.setAttribute("aria-pressed", String(app.healthFilter === name));
  }
  const shown = states
    .filter((s) => (app.healthFilter === "all" || s.health === app.healthFilter) && matchesText(s, app.text))
    .sort((a, b) => app.sort.dir * SORTS[app.sort.key](a, b));
  const tbody = $("#fleet-table tbody");
  let cursor = tbody.firstChild;
  for (const state of shown) {
    const row = fleetRow(state, now);
    if (row === cursor) cursor = cursor.nextSibling;
    else tbody.insertBefore(row, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
  $("#fleet-empty").hidden = shown.length > 0 || !app.listed;
  $("#fleet-progress").textContent = app.progress;
  for (const th of $("#fleet-table thead tr").children) {
    const key = th.firstElementChild.dataset.sort;
    th.setAttribute("aria-sort", key !== app.sort.key ? "none" : app.sort.dir > 0 ? "ascending" : "descending");
  }
}

function fleetRow(state, now) {
  let row = app.rows.get(state.id);
  const heartbeat = state.heartbeat ? formatAgo(state.heartbeat, now) : "never";
  const lastAgo = state.last ? formatAgo(state.last.t, now) : "";
  const signature = JSON.stringify([state.health, state.last, state.finish, state.version, heartbeat, lastAgo,
    state.record?.notes, isSilent(state, now, app.silentSeconds)]); // fmt: skip
  if (row && row.signature === signature) return row;
  if (!row) app.rows.set(state.id, (row = el("tr", { "data-id": state.id })));
  row.signature = signature;
  row.dataset.health = state.health;
  const device = state.record?.device;
  const sub = [device?.serial_number, device?.type, state.record?.notes].filter(Boolean).join(" · ");
  row.replaceChildren(
    el(
      "td",
      { class: "connector-cell" },
      el("a", { href: `#/connectors/${encodeURIComponent(state.id)}`, text: state.id }),
      sub && el("div", { class: "sub", text: sub.length > 90 ? sub.slice(0, 89) + "…" : sub }),
    ),
    el("td", { class: "health-cell" }, healthBadges(state, state.health, now)),
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
    const generation = (this.generation = (this.generation || 0) + 1);
    this.loading = true;
    this.error = "";
    markDirty();
    try {
      const state = this.state();
      if (!state.last) applyLatest(state, await app.api.latest(this.id));
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
    const health = healthNow(state, now);
    $("#connector-title").textContent = this.id;
    $("#connector-health").replaceChildren(...healthBadges(state, health, now));
    this.renderMeta(state, now);

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
  const minutes = $("#silent-minutes");
  minutes.value = app.silentSeconds / 60;
  minutes.addEventListener("change", () => {
    const value = Math.max(1, Math.round(Number(minutes.value) || 15));
    minutes.value = value;
    app.silentSeconds = value * 60;
    localStorage.setItem("conntel.silentMinutes", String(value));
    markDirty();
  });
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
    ...["all", "failing", "silent", "healthy", "checking", "error"].map((name) =>
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
  $("#detail-close").addEventListener("click", closeDetail);
  $("#detail-pretty").addEventListener("change", showDetailJson);
  $("#detail-copy").addEventListener("click", copyCurl);
  document.addEventListener("keydown", (key) => {
    if (key.key === "Escape") closeDetail();
  });
  addEventListener("hashchange", route);
  addEventListener("resize", markDirty);
  setInterval(markDirty, 15000); // "5m ago" and silence move with the clock
}

wireControls();
buildLegend();
takeFragment();
const savedToken = sessionStorage.getItem("conntel.token");
const savedAccount = sessionStorage.getItem("conntel.account");
if (savedToken && savedAccount) open(savedAccount, savedToken);
else showSignin();
