// #/experiments/:name: the experiment's runs as a leaderboard. Sorted by a metric (its last,
// min or max) or the start time, filtered by metrics, params, tags and status through the
// `runs(experiment, filter, orderBy)` query, paged with its cursor ("Load more"). Every
// choice lives in the URL's query, so a view is a link. Ticked runs open #/compare.

import { gql } from "../api.js";
import { clear, fmtNum, fmtTime, h, state } from "../dom.js";

const PAGE = 50;
// The server's largest page (Settings.max_page_size).
const MAX_PAGE = 500;
const STATUSES = ["RUNNING", "FINISHED", "FAILED", "KILLED"];
const AGGREGATES = { LAST: "last", MIN: "min", MAX: "max" };
const OPS = { GT: ">", GTE: "≥", LT: "<", LTE: "≤", EQ: "=", NE: "≠" };
const QUERY = `query Leaderboard($experiment: String!, $filter: RunFilter, $orderBy: RunOrder,
    $first: Int!, $after: String) {
  experiment(name: $experiment) { name description runCount }
  runs(experiment: $experiment, filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    nodes {
      id name status startTime endTime userId
      params { key value }
      tags { key value }
      metrics { key value min max step }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

export function runHref(id) {
  return `#/runs/${encodeURIComponent(id)}`;
}

export function compareHref(ids) {
  return `#/compare?runs=${ids.map(encodeURIComponent).join(",")}`;
}

/** The view's state, read from and written to the URL's query. */
function readState(query) {
  const q = query ?? new URLSearchParams();
  const agg = AGGREGATES[q.get("agg")] ? q.get("agg") : "LAST";
  const dir = q.get("dir") === "ASC" ? "ASC" : "DESC";
  const sort = q.get("sort") || ""; // a metric key, or "" for the start time
  const metrics = q.getAll("m").map(parseMetricFilter).filter(Boolean);
  const params = q.getAll("p").map(parsePair).filter(Boolean);
  const tags = q.getAll("t").map(parsePair).filter(Boolean);
  const status = (q.get("status") || "").split(",").filter((s) => STATUSES.includes(s));
  const asked = Number.parseInt(q.get("first") ?? "", 10);
  const first = asked >= 1 && asked <= MAX_PAGE ? asked : PAGE; // runs per page
  return { agg, dir, sort, metrics, params, tags, status, first };
}

function writeState(s) {
  const q = new URLSearchParams();
  if (s.sort) q.set("sort", s.sort);
  if (s.dir !== "DESC") q.set("dir", s.dir);
  if (s.agg !== "LAST") q.set("agg", s.agg);
  for (const m of s.metrics) q.append("m", `${m.metric}:${m.op}:${m.value}:${m.aggregate}`);
  for (const p of s.params) q.append("p", `${p.key}=${p.value}`);
  for (const t of s.tags) q.append("t", `${t.key}=${t.value}`);
  if (s.status.length) q.set("status", s.status.join(","));
  if (s.first !== PAGE) q.set("first", String(s.first));
  return q;
}

function parsePair(text) {
  const i = text.indexOf("=");
  return i > 0 ? { key: text.slice(0, i), value: text.slice(i + 1) } : null;
}

function parseMetricFilter(text) {
  // key:OP:value:AGG, the key may itself hold ':'
  const parts = text.split(":");
  if (parts.length < 4) return null;
  const aggregate = parts.pop();
  const value = Number(parts.pop());
  const op = parts.pop();
  const metric = parts.join(":");
  if (!metric || !OPS[op] || !Number.isFinite(value) || !AGGREGATES[aggregate]) return null;
  return { metric, op, value, aggregate };
}

function variables(name, s, after) {
  const filter = {};
  if (s.metrics.length) filter.metrics = s.metrics;
  if (s.params.length) filter.params = s.params;
  if (s.tags.length) filter.tags = s.tags;
  if (s.status.length) filter.status = s.status;
  return {
    experiment: name,
    filter: Object.keys(filter).length ? filter : null,
    orderBy: { metric: s.sort || null, direction: s.dir, aggregate: s.agg },
    first: s.first,
    after,
  };
}

function metricOf(run, key, agg) {
  const m = run.metrics.find((x) => x.key === key);
  if (!m) return null;
  return agg === "MIN" ? m.min : agg === "MAX" ? m.max : m.value;
}

function duration(run) {
  if (!run.endTime) return run.status === "RUNNING" ? "running" : "—";
  const seconds = (new Date(run.endTime) - new Date(run.startTime)) / 1000;
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function statusBadge(status) {
  return h("span", { class: `run-status run-status-${status.toLowerCase()}` }, status);
}

export default function render(root, params, query) {
  const name = params.name;
  let s = readState(query);
  let alive = true;
  let generation = 0; // a newer load makes older answers void
  let runs = [];
  let after = null;
  const selected = new Set();

  const title = h("h1", {}, name);
  const subtitle = h("p", { class: "hint" });
  const status = h("div", { class: "list-status" });
  const tableWrap = h("div", { class: "table-scroll", tabindex: "0", "aria-label": `Runs of ${name}` });
  const more = h("button", { type: "button", class: "load-more", hidden: true, onclick: () => load(false) }, "Load more");
  const count = h("span", { class: "count", "aria-live": "polite" });
  const compare = h("a", { class: "button primary compare-link", "aria-disabled": "true", href: "#" }, "Compare");
  compare.addEventListener("click", (event) => {
    if (selected.size < 2) event.preventDefault();
  });
  const chips = h("ul", { class: "filter-chips", "aria-label": "Active filters" });

  // --- the controls -------------------------------------------------------------------
  const aggSelect = h(
    "select",
    { id: "lb-agg", onchange: () => update({ agg: aggSelect.value }) },
    Object.entries(AGGREGATES).map(([v, label]) => h("option", { value: v, selected: v === s.agg }, label)),
  );
  const kind = h("select", { id: "lb-kind", onchange: () => syncKind() },
    h("option", { value: "metric" }, "metric"), h("option", { value: "param" }, "param"),
    h("option", { value: "tag" }, "tag"));
  const keyInput = h("input", { id: "lb-key", list: "lb-keys", required: true, autocomplete: "off", size: 14 });
  const keys = h("datalist", { id: "lb-keys" });
  const op = h("select", { id: "lb-op" }, Object.entries(OPS).map(([v, label]) => h("option", { value: v }, label)));
  const valueInput = h("input", { id: "lb-value", required: true, autocomplete: "off", size: 10 });
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });
  const opLabel = h("label", { for: "lb-op" }, "Operator");
  const syncKind = () => {
    const metric = kind.value === "metric";
    op.hidden = opLabel.hidden = !metric;
    valueInput.inputMode = metric ? "decimal" : "text";
    fillKeys();
  };
  const form = h(
    "form",
    { class: "filter-form", "aria-label": "Add a filter", onsubmit: (event) => addFilter(event) },
    h("label", { for: "lb-kind" }, "Filter on"), kind,
    h("label", { for: "lb-key" }, "Key"), keyInput, keys,
    opLabel, op,
    h("label", { for: "lb-value" }, "Value"), valueInput,
    h("button", { type: "submit" }, "Add filter"),
    formError,
  );
  const statusBoxes = h(
    "fieldset",
    { class: "status-filter" },
    h("legend", {}, "Status"),
    STATUSES.map((st) =>
      h("label", {}, h("input", { type: "checkbox", value: st, checked: s.status.includes(st),
        onchange: () => update({ status: STATUSES.filter((x) => statusBoxes.querySelector(`input[value=${x}]`).checked) }) }), st),
    ),
  );

  clear(root).append(
    h("section", { class: "view view-leaderboard" },
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/experiments" }, "Experiments"), " / ", name),
      h("header", { class: "view-head" }, title, subtitle),
      h("div", { class: "toolbar" },
        h("div", { class: "field" }, h("label", { for: "lb-agg" }, "Metric values"), aggSelect),
        statusBoxes,
        form),
      chips,
      h("div", { class: "toolbar toolbar-compare" }, count, compare, h("span", { class: "hint" }, "Tick two or more runs to compare them.")),
      status, tableWrap, more),
  );
  syncKind();

  function fillKeys() {
    clear(keys);
    const found = new Set();
    for (const run of runs) {
      const list = kind.value === "metric" ? run.metrics : kind.value === "param" ? run.params : run.tags;
      for (const x of list) found.add(x.key);
    }
    for (const k of [...found].sort()) keys.append(h("option", { value: k }));
  }

  function addFilter(event) {
    event.preventDefault();
    formError.hidden = true;
    const key = keyInput.value.trim();
    const value = valueInput.value.trim();
    if (!key) return showFormError("Say which key to filter on.");
    if (kind.value === "metric") {
      const number = Number(value);
      if (value === "" || !Number.isFinite(number)) return showFormError("A metric filter needs a number, e.g. 0.9.");
      update({ metrics: [...s.metrics, { metric: key, op: op.value, value: number, aggregate: s.agg }] });
    } else if (kind.value === "param") {
      update({ params: [...s.params.filter((p) => p.key !== key), { key, value }] });
    } else {
      update({ tags: [...s.tags.filter((t) => t.key !== key), { key, value }] });
    }
    keyInput.value = "";
    valueInput.value = "";
  }

  function showFormError(text) {
    formError.textContent = text;
    formError.hidden = false;
  }

  function renderChips() {
    clear(chips);
    const chip = (text, without) =>
      chips.append(h("li", { class: "chip" }, text,
        h("button", { type: "button", class: "chip-remove", "aria-label": `Remove filter ${text}`, onclick: () => update(without()) }, "×")));
    s.metrics.forEach((m, i) => chip(`${AGGREGATES[m.aggregate]}(${m.metric}) ${OPS[m.op]} ${m.value}`,
      () => ({ metrics: s.metrics.filter((_, j) => j !== i) })));
    s.params.forEach((p, i) => chip(`param ${p.key} = ${p.value}`, () => ({ params: s.params.filter((_, j) => j !== i) })));
    s.tags.forEach((t, i) => chip(`tag ${t.key} = ${t.value}`, () => ({ tags: s.tags.filter((_, j) => j !== i) })));
  }

  function update(change) {
    s = { ...s, ...change };
    const q = writeState(s).toString();
    history.replaceState(null, "", `#/experiments/${encodeURIComponent(name)}${q ? "?" + q : ""}`);
    load(true);
  }

  function syncCompare() {
    const ids = [...selected];
    count.textContent = `${ids.length} selected`;
    if (ids.length >= 2) {
      compare.href = compareHref(ids);
      compare.setAttribute("aria-disabled", "false");
    } else {
      compare.href = "#";
      compare.setAttribute("aria-disabled", "true");
    }
  }

  function sortButton(label, key) {
    const active = s.sort === key;
    const th = h("th", { scope: "col", class: key ? "num" : "", "aria-sort": active ? (s.dir === "ASC" ? "ascending" : "descending") : "none" });
    const arrow = active ? (s.dir === "ASC" ? " ▲" : " ▼") : "";
    th.append(h("button", {
      type: "button", class: "sort", dataset: { sort: key || "start" },
      onclick: () => update({ sort: key, dir: active && s.dir === "DESC" ? "ASC" : "DESC" }),
    }, label, arrow));
    return th;
  }

  function renderTable() {
    const metricKeys = [...new Set(runs.flatMap((r) => r.metrics.map((m) => m.key)))].sort();
    if (s.sort && !metricKeys.includes(s.sort)) metricKeys.unshift(s.sort);
    const paramKeys = [...new Set(runs.flatMap((r) => r.params.map((p) => p.key)))].sort();
    const agg = AGGREGATES[s.agg];
    const head = h("tr", {},
      h("th", { scope: "col", class: "select" }, h("span", { class: "visually-hidden" }, "Select")),
      h("th", { scope: "col" }, "Run"),
      h("th", { scope: "col" }, "Status"),
      metricKeys.map((k) => sortButton(`${k} (${agg})`, k)),
      paramKeys.map((k) => h("th", { scope: "col", class: "param" }, k)),
      sortButton("Started", ""),
      h("th", { scope: "col" }, "Duration"),
      h("th", { scope: "col" }, "Tags"));
    const rows = runs.map((run) => {
      const box = h("input", { type: "checkbox", checked: selected.has(run.id), "aria-label": `Select ${run.name || run.id}`,
        onchange: () => { box.checked ? selected.add(run.id) : selected.delete(run.id); syncCompare(); } });
      const params = new Map(run.params.map((p) => [p.key, p.value]));
      return h("tr", { dataset: { run: run.id } },
        h("td", { class: "select" }, box),
        h("th", { scope: "row" }, h("a", { href: runHref(run.id) }, run.name || run.id.slice(0, 8))),
        h("td", {}, statusBadge(run.status)),
        metricKeys.map((k) => {
          const v = metricOf(run, k, s.agg);
          return h("td", { class: "num", dataset: { metric: k, value: v ?? "" } }, fmtNum(v));
        }),
        paramKeys.map((k) => h("td", { class: "param", dataset: { param: k } }, params.get(k) ?? "—")),
        h("td", { class: "nowrap" }, fmtTime(run.startTime)),
        h("td", { class: "nowrap" }, duration(run)),
        h("td", { class: "tags" }, run.tags.filter((t) => !t.key.startsWith("mlflow.")).map((t) => h("span", { class: "chip" }, `${t.key}=${t.value}`))));
    });
    clear(tableWrap).append(h("table", { class: "data leaderboard" }, h("thead", {}, head), h("tbody", {}, rows)));
    tableWrap.hidden = runs.length === 0;
  }

  async function load(fresh) {
    const mine = fresh ? ++generation : generation;
    if (fresh) {
      after = null;
      renderChips();
      state(status, "loading", "Loading runs…");
    }
    more.disabled = true;
    let data;
    try {
      data = await gql(QUERY, variables(name, s, after));
    } catch (error) {
      if (alive && mine === generation) {
        state(status, "error", `Could not load the runs: ${error.message}. Change or remove a filter, or reload.`);
        more.disabled = false;
      }
      return;
    }
    if (!alive || mine !== generation) return;
    if (!data.experiment) {
      state(status, "error", `There is no experiment named “${name}”. Pick one from the experiments list.`);
      tableWrap.hidden = true;
      return;
    }
    const e = data.experiment;
    runs = fresh ? data.runs.nodes : runs.concat(data.runs.nodes);
    after = data.runs.pageInfo.hasNextPage ? data.runs.pageInfo.endCursor : null;
    const filtered = s.metrics.length || s.params.length || s.tags.length || s.status.length;
    subtitle.textContent = `${e.runCount} run${e.runCount === 1 ? "" : "s"}` +
      (filtered || after ? ` · ${runs.length}${after ? "+" : ""} shown${filtered ? " (filtered)" : ""}` : "") +
      (e.description ? ` · ${e.description}` : "");
    clear(status);
    if (runs.length === 0) {
      state(status, "empty", s.metrics.length || s.params.length || s.tags.length || s.status.length
        ? "No run matches these filters. Remove a filter above to see more."
        : "This experiment has no runs yet.");
    }
    renderTable();
    fillKeys();
    syncCompare();
    more.hidden = !after;
    more.textContent = `Load ${s.first} more`;
    more.disabled = false;
    tableWrap.dataset.loaded = String(runs.length);
  }

  load(true);
  return () => {
    alive = false;
  };
}
