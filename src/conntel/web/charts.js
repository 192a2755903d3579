// A connector's metrics as small SVG charts under its timeline, on the same
// time axis (same label column, same right pad): CPU, memory, load,
// per-interface throughput (a rate from the byte counters, across counter
// resets) and tunnel health. Hovering any chart shows the values of the
// nearest snapshot in every chart; a click selects that snapshot.

import { LABEL_WIDTH, RIGHT_PAD } from "./timeline.js";
import { formatTime, svg } from "./util.js";

const HEIGHT = 86; // one line chart
const TOP = 16; // room for the readout
const BOTTOM = 4;
const TUNNEL_ROW = 12;
const CPU_PARTS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
export const HEALTH = [
  { name: "unknown", color: "#94a3b8" },
  { name: "healthy", color: "#16a34a" },
  { name: "degraded", color: "#f59e0b" },
  { name: "down", color: "#dc2626" },
];
const COLORS = ["#2563eb", "#db2777", "#0891b2", "#7c3aed", "#ea580c", "#65a30d", "#0f766e", "#a16207"];

/** Whether `b` continues `a`'s boot (same kernel boot time, counters not reset). */
function sameBoot(a, b) {
  return a && b && a.kernel_btime === b.kernel_btime;
}

/** The rate of a counter between two snapshots; after a reset, what it counted since boot over the uptime. */
export function counterRate(prev, snap, get) {
  const value = get(snap);
  if (value == null) return null;
  const before = prev ? get(prev) : null;
  if (prev && before != null && sameBoot(prev, snap) && value >= before && snap.t > prev.t) {
    return (value - before) / (snap.t - prev.t);
  }
  const uptime = snap.uptime_total_ms != null ? snap.uptime_total_ms / 1000 : null;
  return uptime > 0 ? value / uptime : null;
}

function cpuBusy(prev, snap) {
  const now = CPU_PARTS.map((p) => snap[`cpu_time_${p}_ms`]);
  if (now.some((v) => typeof v !== "number")) return null;
  const before = prev && sameBoot(prev, snap) ? CPU_PARTS.map((p) => prev[`cpu_time_${p}_ms`] ?? 0) : CPU_PARTS.map(() => 0);
  const deltas = now.map((v, i) => v - before[i]);
  const total = deltas.reduce((a, b) => a + b, 0);
  if (!(total > 0) || deltas.some((d) => d < 0)) return null;
  return 100 * (1 - deltas[CPU_PARTS.indexOf("idle")] / total);
}

/** The charts' series from snapshots sorted by t: {t, values} per snapshot, per chart. */
export function deriveSeries(snapshots) {
  const devices = [];
  const tunnels = [];
  for (const snap of snapshots) {
    for (const dev of snap.netdevs || []) if (dev.name !== "lo" && !devices.includes(dev.name)) devices.push(dev.name);
    for (const tunnel of snap.tunnels || []) if (!tunnels.includes(tunnel.interface_name)) tunnels.push(tunnel.interface_name);
  }
  const points = snapshots.map((snap, i) => {
    const prev = snapshots[i - 1];
    const total = snap.memory_total_bytes;
    const throughput = {};
    for (const name of devices) {
      const dev = (s) => (s.netdevs || []).find((d) => d.name === name);
      const rx = counterRate(prev, snap, (s) => dev(s)?.recv_bytes);
      const tx = counterRate(prev, snap, (s) => dev(s)?.sent_bytes);
      throughput[name] = rx == null && tx == null ? null : 8 * ((rx ?? 0) + (tx ?? 0));
    }
    const health = {};
    for (const tunnel of snap.tunnels || []) health[tunnel.interface_name] = tunnel.health_value;
    return {
      t: snap.t,
      gapBefore: prev && !sameBoot(prev, snap),
      cpu: cpuBusy(prev, snap),
      memory: total && snap.memory_available_bytes != null ? (100 * (total - snap.memory_available_bytes)) / total : null,
      memoryBytes: total && snap.memory_available_bytes != null ? total - snap.memory_available_bytes : null,
      load: [snap.load_average_1m, snap.load_average_5m, snap.load_average_15m],
      cpuCount: snap.cpu_count,
      throughput,
      health,
    };
  });
  return { points, devices, tunnels };
}

const percent = (v) => (v == null ? "–" : `${v.toFixed(0)}%`);
export function formatBits(bitsPerSecond) {
  if (bitsPerSecond == null) return "–";
  const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
  let value = bitsPerSecond;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
}
function formatBytes(bytes) {
  return bytes == null ? "–" : `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * Draw into `container` the charts of `snapshots` (sorted by t) over [from, to].
 * `selected` is the t of the chosen snapshot; a click calls `onSelect(t)`; `hovered` is the t under the
 * pointer (kept across redraws), reported through `onHover(t)`.
 */
export function renderCharts(container, { snapshots, from, to, selected, onSelect, hovered, onHover }) {
  const width = Math.max(container.clientWidth, 480);
  const plot = width - LABEL_WIDTH - RIGHT_PAD;
  const x = (t) => LABEL_WIDTH + ((t - from) / Math.max(1, to - from)) * plot;
  const { points, devices, tunnels } = deriveSeries(snapshots);
  const visible = points.filter((p) => p.t >= from && p.t <= to);
  const maxLoad = Math.max(1, ...visible.flatMap((p) => [...p.load, p.cpuCount ?? 0].filter((v) => v != null)));
  const maxBits = Math.max(1000, ...visible.flatMap((p) => Object.values(p.throughput).filter((v) => v != null)));
  const charts = [
    {
      name: "cpu",
      label: "CPU busy",
      max: 100,
      lines: [{ name: "CPU", color: COLORS[0], value: (p) => p.cpu }],
      readout: (p) => `CPU ${percent(p.cpu)}`,
    },
    {
      name: "memory",
      label: "Memory used",
      max: 100,
      lines: [{ name: "memory", color: COLORS[3], value: (p) => p.memory }],
      readout: (p) => `memory ${percent(p.memory)} (${formatBytes(p.memoryBytes)})`,
    },
    {
      name: "load",
      label: "Load average",
      max: maxLoad * 1.1,
      lines: ["1m", "5m", "15m"].map((name, i) => ({ name, color: COLORS[i], value: (p) => p.load[i] })),
      readout: (p) => `load ${p.load.map((v) => (v == null ? "–" : v.toFixed(2))).join(" / ")} (${p.cpuCount ?? "?"} cores)`,
    },
    {
      name: "throughput",
      label: "Throughput",
      max: maxBits * 1.1,
      lines: devices.map((name, i) => ({ name, color: COLORS[i % COLORS.length], value: (p) => p.throughput[name] })),
      readout: (p) => devices.map((name) => `${name} ${formatBits(p.throughput[name])}`).join(" · "),
    },
  ];
  const nodes = charts.map((chart) => lineChart(chart, visible, { width, plot, x, selected }));
  nodes.push(healthChart(tunnels, visible, { width, plot, x, selected, from }));

  const hover = (point) => {
    nodes.forEach((node) => node.show(point));
    onHover?.(point ? point.t : null);
  };
  const nearest = (clientX, root) => {
    const px = clientX - root.getBoundingClientRect().left;
    if (px < LABEL_WIDTH || !visible.length) return null;
    let best = visible[0];
    for (const p of visible) if (Math.abs(x(p.t) - px) < Math.abs(x(best.t) - px)) best = p;
    return best;
  };
  for (const node of nodes) {
    node.root.addEventListener("pointermove", (move) => hover(nearest(move.clientX, node.root)));
    node.root.addEventListener("pointerleave", () => hover(null));
    node.root.addEventListener("click", (click) => {
      const point = nearest(click.clientX, node.root);
      if (point) onSelect(point.t);
    });
  }
  hover(visible.find((p) => p.t === hovered) ?? null);
  container.replaceChildren(...nodes.map((node) => node.root));
}

function frame(name, label, height, width) {
  const root = svg("svg", {
    class: `chart chart-${name}`,
    "data-chart": name,
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
  });
  root.append(
    svg("rect", { class: "chart-bg", x: 0, y: 0, width, height }),
    svg("text", { class: "chart-label", x: 8, y: 14, text: label }),
  );
  return root;
}

function cursorParts(root, height) {
  const cursor = svg("line", { class: "cursor", y1: TOP - 4, y2: height, visibility: "hidden" });
  const readout = svg("text", { class: "readout", x: LABEL_WIDTH + 4, y: 12 });
  root.append(cursor, readout);
  return { cursor, readout };
}

function lineChart(chart, points, { width, plot, x, selected }) {
  const height = HEIGHT;
  const root = frame(chart.name, chart.label, height, width);
  const y = (v) => TOP + (1 - Math.min(v, chart.max) / chart.max) * (height - TOP - BOTTOM);
  root.append(
    svg("line", { class: "axis", x1: LABEL_WIDTH, x2: LABEL_WIDTH + plot, y1: y(0), y2: y(0) }),
    svg("text", { class: "scale", x: LABEL_WIDTH - 6, y: TOP + 8, text: scaleText(chart) }),
  );
  const swatches = chart.lines.map((line, i) =>
    svg("text", { class: "swatch-label", x: 8, y: 30 + i * 12, fill: line.color, text: line.name }),
  );
  if (chart.lines.length > 1) root.append(...swatches.slice(0, 5));
  for (const line of chart.lines) {
    let d = "";
    let pen = false;
    for (const p of points) {
      const v = line.value(p);
      if (v == null || Number.isNaN(v) || p.gapBefore) pen = false;
      if (v == null || Number.isNaN(v)) continue;
      d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    root.append(svg("path", { class: "line", d, stroke: line.color, "data-series": line.name }));
  }
  if (selected != null && points.some((p) => p.t === selected)) {
    root.append(svg("line", { class: "selected-t", x1: x(selected), x2: x(selected), y1: TOP, y2: height }));
  }
  const dots = chart.lines.map((line) => svg("circle", { class: "dot", r: 3, fill: line.color, visibility: "hidden" }));
  root.append(...dots);
  const { cursor, readout } = cursorParts(root, height);
  const latest = points[points.length - 1];
  return {
    root,
    show(point) {
      const p = point || latest;
      readout.textContent = p ? `${chart.readout(p)} · ${formatTime(p.t)}${point ? "" : " (latest)"}` : "no snapshots";
      cursor.setAttribute("visibility", point ? "visible" : "hidden");
      if (point) {
        cursor.setAttribute("x1", x(point.t));
        cursor.setAttribute("x2", x(point.t));
      }
      chart.lines.forEach((line, i) => {
        const v = point ? line.value(point) : null;
        dots[i].setAttribute("visibility", v == null ? "hidden" : "visible");
        if (v != null) {
          dots[i].setAttribute("cx", x(point.t));
          dots[i].setAttribute("cy", y(v));
        }
      });
      root.dataset.readout = readout.textContent;
    },
  };
}

function scaleText(chart) {
  if (chart.name === "throughput") return formatBits(chart.max);
  if (chart.max === 100) return "100%";
  return chart.max.toFixed(1);
}

function healthChart(tunnels, points, { width, plot, x, selected, from }) {
  const height = TOP + Math.max(1, tunnels.length) * TUNNEL_ROW + 8;
  const root = frame("tunnels", "Tunnel health", height, width);
  tunnels.forEach((name, row) => {
    const y = TOP + row * TUNNEL_ROW + 2;
    root.append(svg("text", { class: "swatch-label", x: 8, y: y + 9, text: name }));
    let start = null; // each snapshot's health covers the time since the one before it
    for (const p of points) {
      const value = p.health[name];
      const begin = start ?? Math.max(from, p.t - 60);
      start = p.t;
      if (value == null || p.gapBefore) continue;
      const state = HEALTH[value] || HEALTH[0];
      root.append(
        svg(
          "rect",
          { class: `health health-${state.name}`, x: x(begin), y, width: Math.max(1, x(p.t) - x(begin)), height: TUNNEL_ROW - 3,
            fill: state.color, "data-t": p.t }, // fmt: skip
        ),
      );
    }
  });
  if (selected != null && points.some((p) => p.t === selected)) {
    root.append(svg("line", { class: "selected-t", x1: x(selected), x2: x(selected), y1: TOP, y2: height }));
  }
  const { cursor, readout } = cursorParts(root, height);
  const latest = points[points.length - 1];
  return {
    root,
    show(point) {
      const p = point || latest;
      const text = p
        ? tunnels.map((name) => `${name} ${HEALTH[p.health[name]]?.name ?? "–"}`).join(" · ") || "no tunnels"
        : "no snapshots";
      readout.textContent = p ? `${text} · ${formatTime(p.t)}${point ? "" : " (latest)"}` : text;
      cursor.setAttribute("visibility", point ? "visible" : "hidden");
      if (point) {
        cursor.setAttribute("x1", x(point.t));
        cursor.setAttribute("x2", x(point.t));
      }
      root.dataset.readout = readout.textContent;
    },
  };
}
