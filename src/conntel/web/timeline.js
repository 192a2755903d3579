// A connector's timeline as SVG: one lane per family, events as dots coloured
// by family (failures red), Start→Finish pairs as bars labelled with their
// duration, an axis, and a "now" line.

import { FAILURE_COLOR, FAMILIES, OTHER, eventKey, familyOf, isFailure } from "./kinds.js";
import { formatClock, formatDuration, formatTime, svg } from "./util.js";

export const LABEL_WIDTH = 130;
const LANE_HEIGHT = 26;
const AXIS_HEIGHT = 22;
export const RIGHT_PAD = 14;
const STEPS = [60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];

/**
 * Draw into `container`: `events` sorted by (t, n), `spans` from buildSpans,
 * the window [from, to], `now`; `selected` is the key of the chosen event.
 * Clicking a dot or a bar calls `onSelect(event)`; dragging across the plot
 * calls `onZoom(from, to)`. While a drag is on, redraws wait.
 */
export function renderTimeline(container, { events, spans, from, to, now, selected, onSelect, onZoom }) {
  if (container.dataset.dragging) return;
  const lanes = events.some((e) => familyOf(e.k) === OTHER) ? [...FAMILIES, OTHER] : FAMILIES;
  const laneIndex = new Map(lanes.map((family, i) => [family, i]));
  const width = Math.max(container.clientWidth, 480);
  const height = AXIS_HEIGHT + lanes.length * LANE_HEIGHT + 4;
  const plot = width - LABEL_WIDTH - RIGHT_PAD;
  const x = (t) => LABEL_WIDTH + ((t - from) / Math.max(1, to - from)) * plot;
  const laneY = (family) => AXIS_HEIGHT + laneIndex.get(family) * LANE_HEIGHT;
  const byKey = new Map();

  const root = svg("svg", {
    class: "timeline",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Timeline: ${events.length} events from ${formatTime(from)} to ${formatTime(to)}`,
  });

  // Lanes and their labels.
  for (const family of lanes) {
    const y = laneY(family);
    root.append(
      svg("rect", { class: "lane", x: 0, y, width, height: LANE_HEIGHT }),
      svg("text", { class: "lane-label", x: 8, y: y + LANE_HEIGHT / 2 + 4, text: family.label }),
    );
  }

  // Axis: a tick every "nice" step, about one per 110 pixels.
  const step = STEPS.find((s) => (plot / (to - from)) * s >= 110) || STEPS[STEPS.length - 1];
  const offset = new Date(from * 1000).getTimezoneOffset() * 60; // ticks on local hours
  const withDate = to - from > 86400;
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) {
    root.append(
      svg("line", { class: "tick", x1: x(t), x2: x(t), y1: AXIS_HEIGHT - 4, y2: height }),
      svg("text", { class: "tick-label", x: x(t), y: AXIS_HEIGHT - 8, text: formatClock(t, withDate) }),
    );
  }
  if (now >= from && now <= to) {
    root.append(
      svg("line", { class: "now", x1: x(now), x2: x(now), y1: AXIS_HEIGHT - 4, y2: height }, svg("title", { text: "now" })),
    );
  }

  // Spans under the dots; a duration label where it does not overlap the previous one in its lane.
  const labelEnd = new Map();
  const labels = []; // drawn last, over the dots
  for (const span of spans) {
    if (span.to < from || span.from > to) continue;
    const x1 = x(Math.max(span.from, from));
    const x2 = x(Math.min(span.to, to));
    const y = laneY(span.family);
    const target = span.finish || span.start;
    const label = `${span.start.k} → ${span.finish ? span.finish.k : span.outcome}: ${formatDuration(span.to - span.from)}`;
    byKey.set(eventKey(target), target);
    const width = Math.max(4, x2 - x1);
    const bar = svg(
      "g",
      { class: `span span-${span.outcome}`, "data-key": eventKey(target) },
      svg("title", { text: `${label}\n${formatTime(span.from)} → ${formatTime(span.to)}` }),
      svg("rect", {
        x: x1,
        y: y + 5,
        width,
        height: LANE_HEIGHT - 10,
        rx: 3,
        fill: span.family.color,
        stroke: span.outcome === "failure" ? FAILURE_COLOR : span.family.color,
      }),
    );
    const text = formatDuration(span.to - span.from);
    const textWidth = text.length * 6.5 + 4;
    const inside = width > textWidth + 8;
    const textX = inside ? x1 + 5 : x1 + width + 7;
    if (textX >= (labelEnd.get(span.family) ?? 0) && textX + textWidth < LABEL_WIDTH + plot + RIGHT_PAD) {
      labels.push(svg("text", { class: "span-label", x: textX, y: y + LANE_HEIGHT / 2 + 4, text }));
      labelEnd.set(span.family, textX + textWidth + 4);
    }
    root.append(bar);
  }

  // Events.
  for (const event of events) {
    if (event.t < from || event.t > to) continue;
    const family = familyOf(event.k);
    const failed = isFailure(event.k);
    const key = eventKey(event);
    byKey.set(key, event);
    root.append(
      svg(
        "circle",
        {
          class: `mark${failed ? " failure" : ""}${key === selected ? " selected" : ""}`,
          cx: x(event.t),
          cy: laneY(family) + LANE_HEIGHT / 2,
          r: failed ? 5.5 : 4,
          fill: failed ? FAILURE_COLOR : family.color,
          "data-key": key,
        },
        svg("title", { text: `${event.k} · ${formatTime(event.t)} (${key})` }),
      ),
    );
  }

  root.append(...labels);

  root.addEventListener("click", (click) => {
    const key = click.target.closest("[data-key]")?.getAttribute("data-key");
    if (key && byKey.has(key)) onSelect(byKey.get(key));
  });
  brush(root, container, { top: AXIS_HEIGHT, height, left: LABEL_WIDTH, right: LABEL_WIDTH + plot },
    (x1, x2) => onZoom(from + ((x1 - LABEL_WIDTH) / plot) * (to - from), from + ((x2 - LABEL_WIDTH) / plot) * (to - from))); // fmt: skip
  container.replaceChildren(root);
}

/** Drag across the plot to pick a time range. */
function brush(root, container, box, done) {
  let start = null;
  let rect = null;
  const at = (pointer) => Math.min(box.right, Math.max(box.left, pointer.clientX - root.getBoundingClientRect().left));
  root.addEventListener("pointerdown", (down) => {
    if (down.button !== 0 || down.target.closest("[data-key]")) return;
    start = at(down);
    rect = svg("rect", { class: "brush", x: start, y: box.top, width: 0, height: box.height - box.top });
    root.append(rect);
    root.setPointerCapture(down.pointerId);
    container.dataset.dragging = "yes";
  });
  root.addEventListener("pointermove", (move) => {
    if (start === null) return;
    const x = at(move);
    rect.setAttribute("x", Math.min(start, x));
    rect.setAttribute("width", Math.abs(x - start));
  });
  const end = (up) => {
    if (start === null) return;
    const x = at(up);
    const [x1, x2] = [Math.min(start, x), Math.max(start, x)];
    start = null;
    rect.remove();
    delete container.dataset.dragging;
    if (up.type === "pointerup" && x2 - x1 >= 6) done(x1, x2);
  };
  root.addEventListener("pointerup", end);
  root.addEventListener("pointercancel", end);
}
