// A connector's snapshots for its charts: List Snapshots over the window (the
// `{a, t}` index), then Get Snapshot for at most MAX_POINTS of them, one per
// time bucket (buckets sit on whole multiples of their width, so a window that
// slides with the clock keeps what it already fetched), kept in a cache.

import { pool } from "./api.js";
import { renderCharts } from "./charts.js";

const MAX_POINTS = 240; // about one every 4 pixels on a wide screen; 24 hours: one per 6 minutes
const CONCURRENCY = 6;
const RELIST_MS = 30000; // a window that moves with the clock is listed again at most this often

export class SnapshotPanel {
  constructor(api, id, { onChange }) {
    this.api = api;
    this.id = id;
    this.onChange = onChange;
    this.cache = new Map(); // t -> snapshot
    this.shown = []; // sorted snapshots of the current sample
    this.revision = 0;
    this.status = "Loading snapshots…";
    this.key = null;
    this.listedAt = 0;
    this.busy = false;
    this.hovered = null; // t of the snapshot under the pointer, kept across redraws
  }

  /** Load (or refresh) the sample of [from, to]; calls onChange when something new is there to draw. */
  async sync(from, to) {
    const span = to - from;
    const key = `${from}:${to}`;
    if (key === this.key || this.busy) return;
    const sameWindow = Math.abs(this.span - span) <= span / 100 && Math.abs(this.from - from) < span / 10;
    if (sameWindow && Date.now() - this.listedAt < RELIST_MS) return; // a window sliding with the clock
    this.busy = true;
    this.key = key;
    Object.assign(this, { from, span, listedAt: Date.now() });
    try {
      const { items, truncated } = await this.api.listSnapshots(this.id, from, to);
      const step = Math.max(1, Math.ceil(span / MAX_POINTS));
      const buckets = new Map();
      for (const item of items) {
        const bucket = Math.floor(item.t / step);
        if (!buckets.has(bucket)) buckets.set(bucket, item.t);
      }
      const wanted = [...buckets.values()];
      await pool(wanted.filter((t) => !this.cache.has(t)), CONCURRENCY, async (t) => {
        this.cache.set(t, await this.api.getSnapshot(this.id, t));
      });
      this.shown = wanted.map((t) => this.cache.get(t)).sort((a, b) => a.t - b.t);
      this.status = items.length
        ? `${items.length} snapshots, ${wanted.length} charted${truncated ? " (the first 20,000 only)" : ""}` +
          " · hover for values, click for Get Snapshot"
        : "No snapshots in this window.";
    } catch (error) {
      this.status = `Snapshots: ${error.message}`;
      this.key = null;
    } finally {
      this.busy = false;
    }
    this.revision++;
    this.onChange();
  }

  render(container, { from, to, selected, onSelect }) {
    renderCharts(container, {
      snapshots: this.shown,
      from,
      to,
      selected,
      onSelect,
      hovered: this.hovered,
      onHover: (t) => (this.hovered = t),
    });
  }
}
