// #/experiments: every experiment with its run count, paged through the connection.

import { gql } from "../api.js";
import { clear, fmtTime, h, state } from "../dom.js";

const PAGE = 50;
const QUERY = `query Experiments($first: Int!, $after: String) {
  experiments(first: $first, after: $after) {
    nodes { id name description createdAt lastUpdateTime runCount tags { key value } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export function experimentHref(name) {
  return `#/experiments/${encodeURIComponent(name)}`;
}

export default function render(root) {
  let alive = true;
  let after = null;
  const body = h("tbody");
  const table = h(
    "table",
    { class: "data" },
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col" }, "Experiment"), h("th", { scope: "col", class: "num" }, "Runs"),
        h("th", { scope: "col" }, "Created"), h("th", { scope: "col" }, "Last change"),
        h("th", { scope: "col" }, "Tags")),
    ),
    body,
  );
  const status = h("div", { class: "list-status" });
  const more = h("button", { type: "button", class: "load-more", hidden: true, onclick: () => load() }, "Load more");
  const wrap = h("div", { class: "table-scroll", tabindex: "0", "aria-label": "Experiments" }, table);
  clear(root).append(
    h("section", { class: "view view-experiments" },
      h("header", { class: "view-head" }, h("h1", {}, "Experiments"),
        h("p", { class: "hint" }, "Open one to see its runs as a leaderboard.")),
      status, wrap, more),
  );
  wrap.hidden = true;

  async function load() {
    more.disabled = true;
    if (!after) state(status, "loading", "Loading experiments…");
    let data;
    try {
      data = await gql(QUERY, { first: PAGE, after });
    } catch (error) {
      if (alive) state(status, "error", `Could not load the experiments: ${error.message}. Reload to try again.`);
      more.disabled = false;
      return;
    }
    if (!alive) return;
    const page = data.experiments;
    for (const e of page.nodes) {
      body.append(
        h("tr", { dataset: { experiment: e.name } },
          h("th", { scope: "row" }, h("a", { href: experimentHref(e.name) }, e.name),
            e.description ? h("div", { class: "sub" }, e.description) : null),
          h("td", { class: "num" }, String(e.runCount)),
          h("td", {}, fmtTime(e.createdAt)),
          h("td", {}, fmtTime(e.lastUpdateTime)),
          h("td", { class: "tags" }, e.tags.map((t) => h("span", { class: "chip" }, `${t.key}=${t.value}`)))),
      );
    }
    clear(status);
    if (body.children.length === 0) {
      state(status, "empty", "No experiments yet. Log a run (an MLflow client, the CLI or the startRun mutation) and it appears here; `modelgraph demo` seeds examples.");
    }
    wrap.hidden = body.children.length === 0;
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    more.hidden = !after;
    more.disabled = false;
  }

  load();
  return () => {
    alive = false;
  };
}
