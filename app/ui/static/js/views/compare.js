// #/compare?runs=id1,id2,...: the runs side by side: a params diff (rows whose values differ
// are marked, and can be shown alone), the latest metrics, and one chart per metric key
// with every run's curve overlaid.

import { gql } from "../api.js";
import { clear, fmtNum, h, state } from "../dom.js";
import { MetricChart, fetchSeries, seriesColor } from "../charts.js";
import { experimentHref } from "./experiments.js";
import { runHref, statusBadge } from "./leaderboard.js";
import { runLabel } from "./run.js";

// Runs compared at once: more curves than this on one chart is no longer readable.
const MAX_RUNS = 10;
const FIELDS = `id name status experiment { name } params { key value } metrics { key value min max step }`;

function runsQuery(n) {
  const vars = Array.from({ length: n }, (_, i) => `$r${i}: ID!`).join(", ");
  const fields = Array.from({ length: n }, (_, i) => `r${i}: run(id: $r${i}) { ${FIELDS} }`).join("\n");
  return `query Compare(${vars}) { ${fields} }`;
}

export default function render(root, params, query) {
  let alive = true;
  const charts = [];
  const ids = [...new Set((query?.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean))];
  if (ids.length < 2) {
    state(root, "empty", "Pick two or more runs to compare: tick them on an experiment's leaderboard, then press Compare.");
    root.append(h("p", {}, h("a", { href: "#/experiments" }, "Go to the experiments")));
    return undefined;
  }
  if (ids.length > MAX_RUNS) {
    state(root, "error", `Compare up to ${MAX_RUNS} runs at once (${ids.length} were asked for). Untick some on the leaderboard.`);
    return undefined;
  }
  state(root, "loading", `Loading ${ids.length} runs…`);

  async function load() {
    const variables = {};
    ids.forEach((id, i) => (variables[`r${i}`] = id));
    let data;
    try {
      data = await gql(runsQuery(ids.length), variables);
    } catch (error) {
      if (alive) state(root, "error", `Could not load the runs: ${error.message}. Reload to try again.`);
      return;
    }
    if (!alive) return;
    const runs = ids.map((_, i) => data[`r${i}`]);
    const missing = ids.filter((_, i) => !runs[i]);
    if (missing.length) {
      state(root, "error", `No run with id ${missing.join(", ")}. Go back to the leaderboard and pick again.`);
      return;
    }
    const head = h("tr", {}, h("th", { scope: "col" }, "Run"),
      runs.map((r, i) => h("th", { scope: "col" },
        h("span", { class: "swatch", style: { background: seriesColor(i) }, "aria-hidden": "true" }),
        h("a", { href: runHref(r.id) }, runLabel(r)), " ", statusBadge(r.status),
        h("div", { class: "sub" }, h("a", { href: experimentHref(r.experiment.name) }, r.experiment.name)))));

    // params diff
    const paramKeys = [...new Set(runs.flatMap((r) => r.params.map((p) => p.key)))].sort();
    const values = runs.map((r) => new Map(r.params.map((p) => [p.key, p.value])));
    let differing = 0;
    const paramRows = paramKeys.map((k) => {
      const cells = values.map((m) => m.get(k));
      const differs = new Set(cells.map((v) => v ?? "\u0000missing")).size > 1;
      if (differs) differing++;
      return h("tr", { class: differs ? "differs" : "", dataset: { param: k, differs: String(differs) } },
        h("th", { scope: "row" }, k, differs ? h("span", { class: "visually-hidden" }, " (differs)") : null),
        cells.map((v) => h("td", {}, v ?? "—")));
    });
    const paramTable = h("table", { class: "data diff" }, h("thead", {}, head.cloneNode(true)), h("tbody", {}, paramRows));
    const onlyDiff = h("input", { type: "checkbox", id: "only-diff",
      onchange: () => paramTable.classList.toggle("only-differing", onlyDiff.checked) });

    // latest metrics
    const metricKeys = [...new Set(runs.flatMap((r) => r.metrics.map((m) => m.key)))].sort();
    const latest = runs.map((r) => new Map(r.metrics.map((m) => [m.key, m])));
    const metricTable = h("table", { class: "data" }, h("thead", {}, head.cloneNode(true)),
      h("tbody", {}, metricKeys.map((k) => h("tr", { dataset: { metric: k } }, h("th", { scope: "row" }, k),
        latest.map((m) => h("td", { class: "num" }, m.has(k) ? fmtNum(m.get(k).value) : "—"))))));

    const grid = h("div", { class: "chart-grid" });
    const chartStatus = h("div");
    clear(root).append(h("section", { class: "view view-compare" },
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/experiments" }, "Experiments"), " / Compare"),
      h("header", { class: "view-head" }, h("h1", {}, `Compare ${runs.length} runs`)),
      h("section", { class: "panel", "aria-label": "Params" },
        h("h2", {}, "Params"),
        h("p", { class: "hint" }, paramKeys.length
          ? `${differing} of ${paramKeys.length} params differ (marked). `
          : "These runs logged no params.",
        paramKeys.length ? h("label", { for: "only-diff", class: "inline" }, onlyDiff, " Show only the differing ones") : null),
        h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Params diff" }, paramTable)),
      h("section", { class: "panel", "aria-label": "Latest metrics" },
        h("h2", {}, "Latest metrics"),
        metricKeys.length
          ? h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Latest metrics" }, metricTable)
          : h("p", { class: "muted" }, "These runs logged no metrics.")),
      h("section", { class: "panel", "aria-label": "Metric curves" },
        h("h2", {}, "Metric curves"), chartStatus, grid)));

    const byKey = new Map();
    for (const k of metricKeys) {
      const chart = new MetricChart({ title: k, labels: runs.map(runLabel) });
      charts.push(chart);
      byKey.set(k, chart);
      grid.append(chart.el);
    }
    if (metricKeys.length) state(chartStatus, "loading", "Loading the curves…");
    try {
      const all = await Promise.all(runs.map((r) => fetchSeries(r.id, r.metrics.map((m) => m.key))));
      if (!alive) return;
      all.forEach((series, i) => {
        for (const [k, columns] of series) byKey.get(k)?.appendColumns(i, columns);
      });
      clear(chartStatus);
    } catch (error) {
      if (alive) state(chartStatus, "error", `Could not load the curves: ${error.message}. Reload to try again.`);
    }
  }

  load();
  return () => {
    alive = false;
    for (const chart of charts) chart.destroy();
  };
}
