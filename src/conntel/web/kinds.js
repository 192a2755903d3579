// Event kinds as the dashboard sees them: families and their colours (the one
// table), Start→Finish pairs, and the health rules. Everything is derived from
// the kind names, so a kind added to src/conntel/kinds.py lands in its family
// by its name (or in "Other" until this table learns it).

export const FAMILIES = [
  { id: "process", label: "Process", color: "#64748b", match: /^(Init|Leave)$/ },
  { id: "attestation", label: "Attestation", color: "#7c3aed", match: /Attestation/ },
  { id: "cryptkey", label: "Crypt key rotation", color: "#0d9488", match: /RotateCryptKey/ },
  { id: "pki", label: "PKI rotation", color: "#0284c7", match: /RotatePki/ },
  { id: "upgrade", label: "Upgrade", color: "#2563eb", match: /Upgrade/ },
  { id: "slot", label: "Boot slot", color: "#a16207", match: /^BlessSlot/ },
  { id: "tunnel", label: "Tunnel", color: "#4f46e5", match: /Tunnel/ },
  { id: "reconcile", label: "Reconcile", color: "#94a3b8", match: /^Reconcile$/ },
  { id: "rekey", label: "Rekey", color: "#16a34a", match: /^Rekey/ },
  { id: "ha", label: "HA", color: "#c026d3", match: /^Ha[A-Z]/ },
];
export const OTHER = { id: "other", label: "Other", color: "#6b7280", match: /(?:)/ };
export const FAILURE_COLOR = "#dc2626";

const familyCache = new Map();

export function familyOf(kind) {
  let family = familyCache.get(kind);
  if (!family) {
    family = FAMILIES.find((f) => f.match.test(kind)) || OTHER;
    familyCache.set(kind, family);
  }
  return family;
}

/** A kind that reports something going wrong (as FAILURE_KINDS in kinds.py): highlighted everywhere. */
export function isFailure(kind) {
  return kind.endsWith("Failure") || kind === "HaError" || kind === "RekeyReset";
}

/**
 * The kind's part in a Start→Finish pair: Start<X> → Finish<X>Success|Failure,
 * and RekeyStart → RekeyComplete. Null for kinds that are single points.
 */
export function pairRole(kind) {
  let m = /^Start(.+)$/.exec(kind);
  if (m) return { key: m[1], role: "start" };
  m = /^Finish(.+?)(Success|Failure)$/.exec(kind);
  if (m) return { key: m[1], role: "finish", outcome: m[2].toLowerCase() };
  if (kind === "RekeyStart") return { key: "Rekey", role: "start" };
  if (kind === "RekeyComplete") return { key: "Rekey", role: "finish", outcome: "success" };
  return null;
}

/** Order of events: by (t, n). */
export function compareTN(a, b) {
  return a.t - b.t || a.n - b.n;
}

export function eventKey(event) {
  return `${event.t}.${event.n}`;
}

/**
 * Spans from events sorted by (t, n): each Start matched with the next Finish
 * of the same pair. A Start followed by another Start of the same pair ends
 * "unfinished" at the second one; a Start still open at the end is "open"
 * (drawn up to `end`). A Finish with no Start in view stays a point.
 */
export function buildSpans(events, end) {
  const open = new Map();
  const spans = [];
  for (const event of events) {
    const role = pairRole(event.k);
    if (!role) continue;
    const started = open.get(role.key);
    if (role.role === "start") {
      if (started) spans.push(span(started, event, "unfinished"));
      open.set(role.key, event);
    } else if (started) {
      spans.push(span(started, event, role.outcome));
      open.delete(role.key);
    }
  }
  for (const started of open.values()) spans.push(span(started, null, "open", end));
  return spans;
}

function span(start, finish, outcome, end) {
  return {
    start,
    finish,
    outcome,
    family: familyOf(start.k),
    from: start.t,
    to: finish ? finish.t : Math.max(end, start.t),
  };
}

// --- Health --------------------------------------------------------------
// The server keeps each connector's health (README "Fleet health"): the page reads it for the
// whole fleet in one request, then follows the `health` messages of the account's live stream.
// Between an event and the server's message about it, `anticipate` applies the server's rules in
// brief so that a row never shows a health its own latest event contradicts.

const HEALTH_PAIRS = new Set(["Upgrade", "Attestation", "RotateCryptKey", "RotatePki"]);

/** "success" / "failure" when the kind finishes an attempt that health counts, else null. */
export function healthOutcome(kind) {
  const role = pairRole(kind);
  return role && role.role === "finish" && HEALTH_PAIRS.has(role.key) ? role.outcome : null;
}

/**
 * What a new `event` does to a connector's health `current` ({health, since, reason, event?}, or
 * null when unknown), until the server says: a Failure among the outcome kinds makes it failing; a
 * Success clears a failing that such a Failure caused; any event wakes a silent connector. An
 * outcome older than the one `current` names changes nothing. Returns the new health, or null.
 */
export function anticipate(current, event, now) {
  const outcome = healthOutcome(event.k);
  const ref = { t: event.t, n: event.n };
  const byOutcome = current && healthOutcome(current.reason) && current.event;
  if (outcome && byOutcome && compareTN(event, current.event) <= 0) return null;
  if (outcome === "failure" && current?.health !== "failing") {
    return { health: "failing", since: now, reason: event.k, event: ref };
  }
  if (outcome === "success" && current?.health === "failing" && byOutcome) {
    return { health: "healthy", since: now, reason: event.k, event: ref };
  }
  if (!current || current.health === "silent") return { health: "healthy", since: now, reason: "reporting", event: ref };
  return null;
}
