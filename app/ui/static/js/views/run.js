// #/runs/:id: one run: status and times, params, tags, dataset inputs, artifacts (download
// links), the logged models it output and the model versions registered from it, and a chart
// per metric key. While the run is RUNNING the charts grow live from the `runMetrics`
// subscription: subscribe first (live points are buffered), load the history, then append;
// every point is kept once by (step, timestamp), so the seam between history and live holds
// no duplicate. The first live batch after each (re)connection reloads the history once too,
// which fills any gap between reading the history and the subscription taking effect.

import { download, gql, subscribe } from "../api.js";
import { clear, fmtBytes, fmtNum, fmtTime, h, state } from "../dom.js";
import { MetricChart, fetchSeries } from "../charts.js";
import { experimentHref } from "./experiments.js";
import { statusBadge } from "./leaderboard.js";

const QUERY = `query RunPage($id: ID!) {
  run(id: $id) {
    id name status startTime endTime userId deleted
    experiment { name }
    parent { id name }
    children { id name status }
    params { key value }
    tags { key value }
    metrics { key value min max step timestamp }
    inputs { context tags { key value } dataset { name digest sourceType source } }
    artifacts { path isDir size digest downloadUrl }
    modelVersions { version stage createdAt model { name } }
  }
}`;
const STATUS_QUERY = `query RunStatus($id: ID!) { run(id: $id) { id status endTime } }`;
const FOLDER_QUERY = `query RunFolder($id: ID!, $path: String!) {
  run(id: $id) { artifacts(path: $path) { path isDir size digest downloadUrl } }
}`;
const LOGGED_MODELS = `query RunLoggedModels($experiment: String!, $filter: String!) {
  loggedModels(experiment: $experiment, filter: $filter, first: 50) {
    nodes { id name status modelType createdAt }
  }
}`;
const LIVE = `subscription RunPageMetrics($id: ID!) { runMetrics(runId: $id) { points { key value step timestamp } } }`;

export function runLabel(run) {
  return run.name || run.id.slice(0, 8);
}

function keyValues(list, empty) {
  if (!list.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-scroll" },
    h("table", { class: "data kv" }, h("tbody", {},
      list.map((x) => h("tr", {}, h("th", { scope: "row" }, x.key), h("td", {}, x.value))))));
}

function section(title, ...content) {
  return h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), ...content);
}

export default function render(root, params) {
  const id = params.id;
  let alive = true;
  let unsubscribe = null;
  const charts = new Map(); // key -> MetricChart
  const grid = h("div", { class: "chart-grid", "aria-live": "off" });
  const live = h("span", { class: "live-badge", dataset: { live: "off" } });
  const head = h("header", { class: "view-head" });
  const facts = h("dl", { class: "facts" });
  const latest = h("div");
  const summary = new Map(); // key -> {value, min, max, step, timestamp}: the latest of each key

  function renderSummary(empty) {
    if (!summary.size) {
      clear(latest).append(h("p", { class: "muted" }, empty));
      return;
    }
    const keys = [...summary.keys()].sort();
    clear(latest).append(h("div", { class: "table-scroll" }, h("table", { class: "data metrics-summary" },
      h("thead", {}, h("tr", {}, ["Metric", "Last", "Min", "Max", "Step"].map((c, i) => h("th", { scope: "col", class: i ? "num" : "" }, c)))),
      h("tbody", {}, keys.map((k) => {
        const m = summary.get(k);
        return h("tr", { dataset: { metric: k } }, h("th", { scope: "row" }, k),
          h("td", { class: "num" }, fmtNum(m.value)), h("td", { class: "num" }, fmtNum(m.min)),
          h("td", { class: "num" }, fmtNum(m.max)), h("td", { class: "num" }, fmtNum(m.step)));
      })))));
  }

  // History read again (at a seam, or after a gap) may hold points the summary never saw.
  function noteColumns(key, { steps, values, timestamps }) {
    const points = steps.map((step, i) => ({ key, step, value: values[i], timestamp: timestamps[i] }));
    noteLive(points);
  }

  // Live points move the summary as the server would: the last value is the one at the
  // highest step (then the latest timestamp); min and max ignore NaN.
  function noteLive(points) {
    for (const p of points) {
      const step = Number(p.step);
      const value = typeof p.value === "number" ? p.value : Number(p.value);
      let m = summary.get(p.key);
      if (!m) {
        m = { key: p.key, value: p.value, step, timestamp: p.timestamp, min: null, max: null };
        summary.set(p.key, m);
      } else if (step > Number(m.step) || (step === Number(m.step) && p.timestamp >= m.timestamp)) {
        Object.assign(m, { value: p.value, step, timestamp: p.timestamp });
      }
      if (!Number.isNaN(value)) {
        if (m.min === null || m.min === undefined || value < Number(m.min)) m.min = value;
        if (m.max === null || m.max === undefined || value > Number(m.max)) m.max = value;
      }
    }
    renderSummary("");
  }
  state(root, "loading", "Loading the run…");

  function chartFor(key) {
    let chart = charts.get(key);
    if (!chart) {
      chart = new MetricChart({ title: key, labels: [key] });
      charts.set(key, chart);
      // keep the charts in key order
      const after = [...charts.keys()].sort().find((k) => k > key);
      const before = after ? charts.get(after).el : null;
      grid.insertBefore(chart.el, before);
    }
    return chart;
  }

  async function loadHistory(keys) {
    const series = await fetchSeries(id, keys);
    if (!alive) return;
    for (const [key, columns] of series) {
      if (chartFor(key).appendColumns(0, columns) && summary.has(key)) noteColumns(key, columns);
    }
  }

  function setLive(status) {
    live.dataset.live = status;
    live.textContent = { live: "● live", connecting: "connecting…", reconnecting: "reconnecting…", closed: "", ended: "run ended", off: "" }[status] ?? status;
  }

  // Live updates: subscribe, read the history, append what arrives. A failed subscription
  // (the server closes a watcher that falls too far behind) is taken up again from the
  // history, a few times, while the run is still RUNNING.
  let restarts = 0;
  const MAX_RESTARTS = 3;

  function watch() {
    let buffer = []; // live points that arrived before the history
    let historyLoaded = false;
    let resyncNeeded = true; // the first batch of each connection reloads the history
    let wasLive = false;
    const appendLive = (points) => {
      const byKey = new Map();
      for (const p of points) {
        if (!byKey.has(p.key)) byKey.set(p.key, []);
        byKey.get(p.key).push(p);
      }
      for (const [key, list] of byKey) chartFor(key).append(0, list);
      if (points.length) noteLive(points);
    };
    const resync = async () => {
      try {
        await loadHistory([...charts.keys()]);
      } catch {
        // the next batch or reconnection tries again
        resyncNeeded = true;
      }
    };
    unsubscribe = subscribe(LIVE, { id }, {
      next: (data) => {
        if (!alive) return;
        const points = data?.runMetrics?.points ?? [];
        if (!historyLoaded) {
          buffer.push(...points);
          return;
        }
        appendLive(points);
        if (resyncNeeded) {
          resyncNeeded = false;
          resync();
        }
      },
      status: (s) => {
        if (!alive) return;
        if (s === "reconnecting") resyncNeeded = true;
        setLive(s === "live" || wasLive ? s : "connecting");
        if (s === "live") wasLive = true;
      },
      error: (error) => {
        if (!alive) return;
        unsubscribe = null;
        setLive("closed");
        live.textContent = `live updates stopped: ${error.message}`;
        takeUp();
      },
      complete: () => {
        if (!alive) return;
        unsubscribe = null;
        refreshStatus();
      },
    });
    return async () => {
      await loadHistory([...charts.keys()]);
      if (!alive) return;
      historyLoaded = true;
      const early = buffer;
      buffer = [];
      appendLive(early);
      if (early.length) {
        resyncNeeded = false;
        resync();
      }
    };
  }

  async function takeUp() {
    if (restarts >= MAX_RESTARTS) return;
    restarts += 1;
    try {
      const data = await gql(STATUS_QUERY, { id });
      if (!alive || !data.run) return;
      if (data.run.status !== "RUNNING") {
        await refreshStatus();
        return;
      }
      await watch()();
    } catch {
      // the message says live updates stopped; a reload starts again
    }
  }

  async function refreshStatus() {
    try {
      const data = await gql(STATUS_QUERY, { id });
      if (!alive || !data.run) return;
      head.querySelector(".run-status")?.replaceWith(statusBadge(data.run.status));
      const end = facts.querySelector("[data-fact=end]");
      if (end) end.textContent = fmtTime(data.run.endTime);
      // the last points may have been logged with the end: read them from the history
      await loadHistory([...charts.keys()]);
      if (!alive) return;
      if (data.run.status === "RUNNING") {
        // the subscription ended but the run goes on: take it up again
        setLive("closed");
        await takeUp();
      } else {
        setLive("ended");
      }
    } catch {
      // the page keeps what it has; a reload shows the rest
    }
  }

  function fact(label, value, key) {
    facts.append(h("dt", {}, label), h("dd", key ? { dataset: { fact: key } } : {}, value));
  }

  function artifactList(entries) {
    const list = h("ul", { class: "artifacts" });
    if (!entries.length) list.append(h("li", { class: "muted" }, "No files."));
    for (const entry of entries) {
      const name = entry.path.split("/").pop();
      if (entry.isDir) {
        const children = h("div", { class: "artifact-children", hidden: true });
        const button = h("button", { type: "button", class: "link-button", "aria-expanded": "false",
          onclick: async () => {
            const open = button.getAttribute("aria-expanded") !== "true";
            button.setAttribute("aria-expanded", String(open));
            children.hidden = !open;
            if (open && !children.firstChild) {
              state(children, "loading", "Loading…");
              try {
                const data = await gql(FOLDER_QUERY, { id, path: entry.path });
                clear(children).append(artifactList(data.run.artifacts));
              } catch (error) {
                state(children, "error", `Could not list ${entry.path}: ${error.message}`);
              }
            }
          } }, `📁 ${name}/`);
        list.append(h("li", {}, button, children));
      } else {
        const link = h("a", { href: entry.downloadUrl, download: name, onclick: async (event) => {
          event.preventDefault();
          try {
            await download(entry.downloadUrl, name);
          } catch (error) {
            link.after(h("span", { class: "form-error", role: "alert" }, ` ${error.message}`));
          }
        } }, entry.path);
        list.append(h("li", {}, link, h("span", { class: "muted" }, ` ${fmtBytes(entry.size)}`),
          h("code", { class: "digest", title: entry.digest }, entry.digest ? entry.digest.slice(0, 12) : "")));
      }
    }
    return list;
  }

  async function loggedModels(run, into) {
    state(into, "loading", "Loading logged models…");
    try {
      const data = await gql(LOGGED_MODELS, { experiment: run.experiment.name, filter: `source_run_id = '${run.id}'` });
      if (!alive) return;
      const nodes = data.loggedModels.nodes;
      clear(into).append(nodes.length
        ? h("ul", {}, nodes.map((m) => h("li", {}, h("strong", {}, m.name), ` ${m.id} · ${m.status}`,
          m.modelType ? ` · ${m.modelType}` : "", h("span", { class: "muted" }, ` · ${fmtTime(m.createdAt)}`))))
        : h("p", { class: "muted" }, "This run logged no model."));
    } catch (error) {
      if (alive) state(into, "error", `Could not load the logged models: ${error.message}`);
    }
  }

  async function load() {
    let data;
    try {
      data = await gql(QUERY, { id });
    } catch (error) {
      if (alive) state(root, "error", `Could not load the run: ${error.message}. Reload to try again.`);
      return;
    }
    if (!alive) return;
    const run = data.run;
    if (!run) {
      state(root, "error", `There is no run with id ${id}. Open one from an experiment's leaderboard.`);
      return;
    }
    // Subscribe before reading the history, so no point falls between the two.
    const start = run.status === "RUNNING" ? watch() : null;
    head.append(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/experiments" }, "Experiments"), " / ",
        h("a", { href: experimentHref(run.experiment.name) }, run.experiment.name), " / ", runLabel(run)),
      h("h1", {}, runLabel(run), " ", statusBadge(run.status), " ", live),
    );
    fact("Run id", h("code", {}, run.id));
    fact("Started", fmtTime(run.startTime));
    fact("Ended", fmtTime(run.endTime), "end");
    if (run.userId) fact("User", run.userId);
    if (run.parent) fact("Parent run", h("a", { href: `#/runs/${run.parent.id}` }, runLabel(run.parent)));
    if (run.children.length) {
      fact("Child runs", run.children.map((c, i) => [i ? ", " : "", h("a", { href: `#/runs/${c.id}` }, runLabel(c))]));
    }
    if (run.deleted) fact("Deleted", "yes (hidden from lists; restore it to show it again)");
    for (const m of run.metrics) summary.set(m.key, { ...m });
    renderSummary(run.status === "RUNNING" ? "No metric yet: charts appear as points are logged." : "This run logged no metric.");
    const inputs = run.inputs.length
      ? h("ul", {}, run.inputs.map((i) => h("li", {}, h("strong", {}, i.dataset.name), i.context ? ` (${i.context})` : "",
        " ", h("code", { class: "digest", title: i.dataset.digest }, i.dataset.digest.slice(0, 12)),
        h("span", { class: "muted" }, ` ${i.dataset.sourceType}: ${i.dataset.source}`))))
      : h("p", { class: "muted" }, "No dataset recorded.");
    const versions = run.modelVersions.length
      ? h("ul", {}, run.modelVersions.map((v) => h("li", {},
        h("a", { href: `#/models/${encodeURIComponent(v.model.name)}/versions/${v.version}` }, `${v.model.name} v${v.version}`),
        " ", h("span", { class: `stage stage-${v.stage.toLowerCase()}` }, v.stage))))
      : h("p", { class: "muted" }, "No model version was registered from this run.");
    const models = h("div");
    clear(root).append(h("section", { class: "view view-run" },
      head, facts,
      section("Metrics", latest, grid),
      h("div", { class: "panels" },
        section("Params", keyValues(run.params, "No params.")),
        section("Tags", keyValues(run.tags, "No tags.")),
        section("Dataset inputs", inputs),
        section("Artifacts", artifactList(run.artifacts)),
        section("Logged models", models),
        section("Model versions", versions))));
    loggedModels(run, models);
    for (const m of run.metrics) chartFor(m.key);
    try {
      if (start) await start();
      else await loadHistory(run.metrics.map((m) => m.key));
    } catch (error) {
      if (alive) grid.prepend(h("div", { class: "state state-error", role: "alert" }, `Could not load the metric history: ${error.message}. Reload to try again.`));
    }
    if (!start) setLive("off");
  }

  load();
  return () => {
    alive = false;
    if (unsubscribe) unsubscribe();
    for (const chart of charts.values()) chart.destroy();
  };
}
