// The event feed: the lifecycle stream, newest first, filterable by model and type, live
// from lifecycleEvents, and paged back through the `events` query.

import { gql, subscribe } from "../api.js";
import { clear, fmtAgo, fmtTime, h, state } from "../dom.js";
import { stageBadge } from "./models.js";

const PAGE = 50;
const TYPES = [
  "STAGE_CHANGED",
  "MODEL_ROLLED_BACK",
  "VERSION_REGISTERED",
  "VALIDATION_RECORDED",
  "ALIAS_SET",
  "ALIAS_DELETED",
  "VERSION_UPDATED",
  "VERSION_DELETED",
  "MODEL_CREATED",
  "MODEL_UPDATED",
  "MODEL_RENAMED",
  "MODEL_DELETED",
];
const FIELDS = "cursor type model versionNumber fromStage toStage alias actor reason at check checkStatus policy { bypassed }";
const CURSORS = `query Cursors($after: String, $model: String, $types: [LifecycleEventType!]) {
  events(first: 500, after: $after, model: $model, types: $types) { nodes { cursor } pageInfo { hasNextPage endCursor } }
}`;
const PAGE_QUERY = `query Feed($after: String, $first: Int, $model: String, $types: [LifecycleEventType!]) {
  events(first: $first, after: $after, model: $model, types: $types) { nodes { ${FIELDS} } }
}`;
const LIVE = `subscription Feed($after: String, $model: String, $types: [LifecycleEventType!]) {
  lifecycleEvents(after: $after, model: $model, types: $types) { ${FIELDS} }
}`;
const MODELS = `query ModelNames($after: String) { models(first: 500, after: $after) { nodes { name } pageInfo { hasNextPage endCursor } } }`;

function versionLink(e) {
  if (e.versionNumber === null || e.versionNumber === undefined) return null;
  return h("a", { href: `#/models/${encodeURIComponent(e.model)}/versions/${e.versionNumber}` }, `v${e.versionNumber}`);
}

// What happened, in words.
function describe(e) {
  const v = versionLink(e);
  switch (e.type) {
    case "STAGE_CHANGED":
      return [v, " ", stageBadge(e.fromStage), " → ", stageBadge(e.toStage), e.policy?.bypassed ? " (policy bypassed)" : ""];
    case "MODEL_ROLLED_BACK":
      return ["rolled back: ", v, " is in PRODUCTION again"];
    case "VERSION_REGISTERED":
      return [v, " registered"];
    case "VALIDATION_RECORDED":
      return [v, ` check ${e.check}: `, h("span", { class: `check check-${e.checkStatus}` }, e.checkStatus)];
    case "ALIAS_SET":
      return [`@${e.alias} → `, v];
    case "ALIAS_DELETED":
      return [`@${e.alias} removed`];
    case "VERSION_DELETED":
      return [`v${e.versionNumber} deleted`];
    case "VERSION_UPDATED":
      return [v, " updated"];
    default:
      return [e.type.toLowerCase().replace(/_/g, " ")];
  }
}

export default function render(root, _params, query) {
  let closed = false;
  let unsubscribe = null;
  let cursors = []; // every matching event's cursor, oldest first
  let olderEnd = 0; // events before this index are not shown yet
  let lastCursor = null;
  const filter = { model: query.get("model") || null, type: query.get("type") || null };

  const model = h("select", { id: "feed-model" }, h("option", { value: "" }, "All models"));
  const type = h(
    "select",
    { id: "feed-type" },
    h("option", { value: "" }, "All types"),
    TYPES.map((t) => h("option", { value: t, selected: t === filter.type }, t)),
  );
  const live = h("span", { class: "live", "data-status": "closed", "aria-live": "polite" }, "connecting…");
  const list = h("ol", { class: "feed", "aria-label": "Lifecycle events, newest first" });
  const body = h("div");
  const older = h("div", { class: "card-actions" });

  function onChange() {
    const params = new URLSearchParams();
    if (model.value) params.set("model", model.value);
    if (type.value) params.set("type", type.value);
    const hash = `#/events${params.size ? `?${params}` : ""}`;
    if (window.location.hash !== hash) window.location.hash = hash; // the router renders again
  }
  model.addEventListener("change", onChange);
  type.addEventListener("change", onChange);

  root.append(
    h("div", { class: "view-header" }, h("h1", null, "Events"), live),
    h(
      "div",
      { class: "filters" },
      h("label", { for: "feed-model" }, "Model", model),
      h("label", { for: "feed-type" }, "Type", type),
    ),
    body,
  );

  function variables(extra = {}) {
    return { model: filter.model, types: filter.type ? [filter.type] : null, ...extra };
  }

  function item(e, isNew = false) {
    return h(
      "li",
      { class: isNew ? "new" : null, "data-type": e.type },
      h("div", null, h("time", { datetime: e.at, title: fmtTime(e.at) }, fmtTime(e.at)), h("div", { class: "card-meta" }, fmtAgo(e.at))),
      h("div", null, h("div", { class: "etype" }, e.type), h("div", { class: "card-meta" }, e.actor)),
      h(
        "div",
        null,
        h("strong", null, e.model),
        " ",
        describe(e),
        e.reason ? h("div", { class: "muted" }, `“${e.reason}”`) : null,
      ),
    );
  }

  async function loadModels() {
    let after = null;
    for (;;) {
      const data = await gql(MODELS, { after });
      for (const m of data.models.nodes) {
        model.append(h("option", { value: m.name, selected: m.name === filter.model }, m.name));
      }
      if (!data.models.pageInfo.hasNextPage) break;
      after = data.models.pageInfo.endCursor;
    }
    if (filter.model && model.value !== filter.model) {
      model.append(h("option", { value: filter.model, selected: true }, filter.model));
    }
  }

  async function allCursors() {
    const found = [];
    let after = null;
    for (;;) {
      const data = await gql(CURSORS, variables({ after }));
      for (const n of data.events.nodes) found.push(n.cursor);
      if (!data.events.pageInfo.hasNextPage) return found;
      after = data.events.pageInfo.endCursor;
    }
  }

  // The page of events just before index `end` (exclusive), newest first.
  async function page(end) {
    const start = Math.max(0, end - PAGE);
    const after = start === 0 ? null : cursors[start - 1];
    const data = await gql(PAGE_QUERY, variables({ after, first: end - start }));
    return data.events.nodes.reverse();
  }

  function olderButton() {
    clear(older);
    if (olderEnd > 0) {
      older.append(
        h(
          "button",
          {
            type: "button",
            onclick: async (event) => {
              const button = event.currentTarget;
              button.disabled = true;
              try {
                const events = await page(olderEnd);
                olderEnd = Math.max(0, olderEnd - PAGE);
                for (const e of events) list.append(item(e));
                olderButton();
              } catch (error) {
                button.disabled = false;
                older.append(h("span", { class: "form-error", role: "alert" }, ` ${error.message}`));
              }
            },
          },
          `Show older (${olderEnd} more)`,
        ),
      );
    }
  }

  function setStatus(status) {
    live.dataset.status = status;
    live.textContent = { live: "live", reconnecting: "reconnecting…", closed: "not live" }[status] ?? status;
  }

  function watch() {
    unsubscribe = subscribe(LIVE, () => variables({ after: lastCursor }), {
      next: (data) => {
        const e = data.lifecycleEvents;
        lastCursor = e.cursor;
        if (!list.isConnected) {
          clear(body);
          body.append(list, older);
        }
        list.prepend(item(e, true));
      },
      status: setStatus,
      error: (error) => {
        setStatus("reconnecting");
        window.setTimeout(() => {
          if (!closed) watch();
        }, 2000);
        console.warn("the event feed's subscription ended", error.message);
      },
    });
  }

  (async () => {
    state(body, "loading", "Loading events…");
    try {
      await loadModels();
      cursors = await allCursors();
      lastCursor = cursors.length ? cursors[cursors.length - 1] : null;
      const newest = await page(cursors.length);
      if (closed) return;
      olderEnd = Math.max(0, cursors.length - PAGE);
      clear(body);
      if (!newest.length) {
        state(
          body,
          "empty",
          filter.model || filter.type
            ? "No events match these filters yet. Clear them, or wait: new ones appear here live."
            : "No lifecycle events yet. Register a model version and it appears here live.",
        );
      } else {
        for (const e of newest) list.append(item(e));
        body.append(list, older);
        olderButton();
      }
    } catch (error) {
      if (!closed) state(body, "error", `The events could not be loaded: ${error.message}. Reload to try again.`);
      return;
    }
    if (!closed) watch();
  })();

  return () => {
    closed = true;
    if (unsubscribe) unsubscribe();
  };
}
