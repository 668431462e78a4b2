// Metric charts over the vendored uPlot (MIT, vendor/uplot/): a line chart per metric key,
// x = step, one series per run (several runs overlaid to compare), data appended live and
// redrawn at most once per animation frame, resized with its container. Each chart element
// carries data-points: how many points the drawn chart holds (tests count them).
//
// Series come from Run.metricSeries in its packed form (base64 of 64-bit columns: far less
// to send and parse than the metricHistory connection), pages of up to 10,000 points.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { gql } from "./api.js";

const PALETTE = [
  "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#4b5563", "#65a30d", "#9333ea",
];
// The server's largest metricSeries page; one request per 10,000 points of a key.
export const SERIES_PAGE = 10000;
// Keys asked for in one request (the server refuses more than 30 aliases).
const KEYS_PER_REQUEST = 20;
const HEIGHT = 220;

export function seriesColor(i) {
  return PALETTE[i % PALETTE.length];
}

/** A MetricValue as a plot value: numbers stay, "NaN" and ±"Infinity" become gaps. */
export function plotValue(value) {
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** One curve: points kept sorted by step (then arrival), each (step, timestamp) once. */
class Curve {
  constructor(label) {
    this.label = label;
    this.steps = [];
    this.values = [];
    this.seen = new Set();
  }

  /** Add a point unless the same (step, timestamp) is already here; true if added. */
  add(step, value, timestamp) {
    const s = Number(step);
    const id = `${s}:${timestamp ?? ""}`;
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    const v = plotValue(value);
    const n = this.steps.length;
    if (n === 0 || s >= this.steps[n - 1]) {
      this.steps.push(s);
      this.values.push(v);
      return true;
    }
    // Out of order (rare): after the last point with a step <= s.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.steps[mid] <= s) lo = mid + 1;
      else hi = mid;
    }
    this.steps.splice(lo, 0, s);
    this.values.splice(lo, 0, v);
    return true;
  }
}

/** Several curves on one x: the union of their steps, each curve's last value at a step. */
function align(curves) {
  const xs = new Set();
  for (const c of curves) for (const s of c.steps) xs.add(s);
  const x = Float64Array.from(xs).sort();
  const index = new Map();
  x.forEach((s, i) => index.set(s, i));
  const ys = curves.map((c) => {
    const y = new Array(x.length).fill(null);
    for (let i = 0; i < c.steps.length; i++) y[index.get(c.steps[i])] = c.values[i];
    return y;
  });
  return [Array.from(x), ...ys];
}

function formatValue(v) {
  if (v == null) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

/**
 * A line chart of one metric key. `el` is the element to put in the page; call destroy()
 * when the view goes away.
 */
export class MetricChart {
  constructor({ title, labels = [], height = HEIGHT } = {}) {
    this.title = title;
    this.height = height;
    this.curves = labels.map((label) => new Curve(label));
    this.plot = null;
    this.frame = 0;
    this.drawnWidth = 0;
    this.el = document.createElement("figure");
    this.el.className = "chart";
    this.el.dataset.metric = title;
    this.el.dataset.points = "0";
    this.el.setAttribute("aria-label", `Chart of ${title}`);
    this.canvas = document.createElement("div");
    this.canvas.className = "chart-plot";
    this.empty = document.createElement("p");
    this.empty.className = "chart-empty";
    this.empty.textContent = "No points yet.";
    this.el.append(this.canvas, this.empty);
    this.resizer = new ResizeObserver(() => this.schedule());
    this.resizer.observe(this.el);
  }

  /** Add a curve (a run) and return its index. */
  addCurve(label) {
    this.curves.push(new Curve(label));
    if (this.plot) this.rebuild();
    return this.curves.length - 1;
  }

  /** Add points {step, value, timestamp} to curve `i` (duplicates dropped); redraws soon. */
  append(i, points) {
    const curve = this.curves[i];
    let added = 0;
    for (const p of points) if (curve.add(p.step, p.value, p.timestamp)) added++;
    if (added) this.schedule();
    return added;
  }

  /** Add a metricSeries page (columns) to curve `i`. */
  appendColumns(i, { steps, values, timestamps }) {
    const curve = this.curves[i];
    let added = 0;
    for (let k = 0; k < steps.length; k++) {
      if (curve.add(steps[k], values[k], timestamps ? timestamps[k] : undefined)) added++;
    }
    if (added) this.schedule();
    return added;
  }

  /** Points held, over all curves. */
  get points() {
    return this.curves.reduce((n, c) => n + c.steps.length, 0);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  data() {
    if (this.curves.length === 1) return [this.curves[0].steps, this.curves[0].values];
    return align(this.curves);
  }

  options(width) {
    return {
      title: this.title,
      width,
      height: this.height,
      scales: { x: { time: false } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      axes: [{ label: "step" }, { size: 60, values: (u, ticks) => ticks.map(formatValue) }],
      series: [
        { label: "step", value: (u, v) => (v == null ? "–" : String(v)) },
        ...this.curves.map((c, i) => ({
          label: c.label,
          stroke: seriesColor(i),
          width: 1.5,
          spanGaps: true,
          points: { show: false },
          value: (u, v) => formatValue(v),
        })),
      ],
    };
  }

  rebuild() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.schedule();
  }

  draw() {
    const width = Math.floor(this.el.clientWidth);
    if (width <= 0) return; // not laid out yet: the resize observer calls again
    const data = this.data();
    if (!this.plot) {
      this.plot = new uPlot(this.options(width), data, this.canvas);
      this.drawnWidth = width;
    } else {
      if (width !== this.drawnWidth) {
        this.plot.setSize({ width, height: this.height });
        this.drawnWidth = width;
      }
      this.plot.setData(data);
    }
    let held = 0;
    for (let s = 1; s < this.plot.data.length; s++) {
      for (const v of this.plot.data[s]) if (v !== null && v !== undefined) held++;
    }
    const total = this.points;
    this.el.dataset.points = String(total);
    this.el.dataset.drawn = String(held);
    this.empty.hidden = total > 0;
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.el.remove();
  }
}

/** The bytes of a standard (padded) base64 string. */
function base64Bytes(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A Float64Array scalar (base64 of little-endian binary64) as numbers; NaN stays NaN. */
export function unpackFloats(text) {
  const bytes = base64Bytes(text);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array(bytes.byteLength / 8);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

/** An Int64Array scalar (base64 of little-endian int64) as numbers (exact up to 2^53). */
export function unpackInts(text) {
  const bytes = base64Bytes(text);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array(bytes.byteLength / 8);
  for (let i = 0; i < out.length; i++) out[i] = Number(view.getBigInt64(i * 8, true));
  return out;
}

const PAGE_FIELDS = "packed { steps values timestamps } pageInfo { hasNextPage endCursor }";

function unpackPage(page) {
  return {
    steps: unpackInts(page.packed.steps),
    values: unpackFloats(page.packed.values),
    timestamps: unpackInts(page.packed.timestamps),
  };
}

/**
 * The metricSeries of `keys` for one run: Map key -> {steps, values, timestamps}, all
 * pages. Pages come packed (base64 of 64-bit columns): less for the server to serialise
 * and for the page to parse than JSON arrays of 10,000 numbers.
 */
export async function fetchSeries(runId, keys) {
  const result = new Map();
  const more = [];
  for (let start = 0; start < keys.length; start += KEYS_PER_REQUEST) {
    const chunk = keys.slice(start, start + KEYS_PER_REQUEST);
    const vars = chunk.map((_, i) => `$k${i}: String!`).join(", ");
    const fields = chunk
      .map((_, i) => `s${i}: metricSeries(key: $k${i}, first: ${SERIES_PAGE}) { ${PAGE_FIELDS} }`)
      .join("\n");
    const variables = { id: runId };
    chunk.forEach((key, i) => (variables[`k${i}`] = key));
    const data = await gql(`query RunSeries($id: ID!, ${vars}) { run(id: $id) { ${fields} } }`, variables);
    if (!data.run) break;
    chunk.forEach((key, i) => {
      const page = data.run[`s${i}`];
      result.set(key, unpackPage(page));
      if (page.pageInfo.hasNextPage) more.push([key, page.pageInfo.endCursor]);
    });
  }
  for (let [key, after] of more) {
    const whole = result.get(key);
    while (after) {
      const data = await gql(
        `query RunSeriesPage($id: ID!, $key: String!, $after: String) { run(id: $id) {
          metricSeries(key: $key, first: ${SERIES_PAGE}, after: $after) { ${PAGE_FIELDS} } } }`,
        { id: runId, key, after },
      );
      const page = data.run.metricSeries;
      const columns = unpackPage(page);
      for (const name of ["steps", "values", "timestamps"]) {
        for (const x of columns[name]) whole[name].push(x);
      }
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    }
  }
  return result;
}
