// The models board: every model with its versions in stage columns, aliases, the latest
// validation results, the promotion policy and whether each version meets it. Promote,
// move and roll back with a reason and a confirmation; a refusal is said in words. Live
// from lifecycleEvents, resuming after its last cursor when the connection comes back.

import { ApiError, can, gql, lastEventCursor, subscribe } from "../api.js";
import { clear, dialog, fmtAgo, fmtNum, fmtTime, h, state, toast } from "../dom.js";

export const STAGES = ["DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"];
// Where a version normally goes next (what its gate is checked against).
export const NEXT = { DEVELOPMENT: "STAGING", STAGING: "PRODUCTION", ARCHIVED: "STAGING" };
// The lifecycle's allowed moves (app/registry/stages.py); the server checks them again.
export const MOVES = {
  DEVELOPMENT: ["STAGING", "ARCHIVED"],
  STAGING: ["PRODUCTION", "DEVELOPMENT", "ARCHIVED"],
  PRODUCTION: ["ARCHIVED"],
  ARCHIVED: ["STAGING"],
};
const ARCHIVED_SHOWN = 3;
const CHECKS_PER_QUERY = 25; // under the server's alias limit

const MODEL_FIELDS = `
  name description updatedAt
  aliases { alias version { version } }
  promotionPolicy { stage requiredChecks metricRules { metric op value } mustBeatProduction { metric goal } }
  productionVersion { version }
  versions(first: 200) {
    nodes {
      version stage createdAt updatedAt aliases
      run { id name experiment { name } metrics { key value } }
      validations { check status at actor detailsUrl }
    }
  }`;
const BOARD = `query Board($after: String) {
  models(first: 50, after: $after) { nodes { ${MODEL_FIELDS} } pageInfo { hasNextPage endCursor } }
}`;
const ONE_MODEL = `query Model($name: String!) { model(name: $name) { ${MODEL_FIELDS} } }`;
const LIVE = `subscription Board($after: String) {
  lifecycleEvents(after: $after) { cursor type model versionNumber fromStage toStage actor reason at }
}`;
const TRANSITION = `mutation Transition($input: TransitionModelVersionInput!) {
  transitionModelVersion(input: $input) {
    __typename
    ... on TransitionModelVersionSuccess { modelVersion { version stage } transitions { modelVersion { version } fromStage toStage } }
    ...Refusal
  }
}`;
const ROLLBACK = `mutation Rollback($input: RollbackModelInput!) {
  rollbackModel(input: $input) {
    __typename
    ... on RollbackModelSuccess { modelVersion { version stage } bypassedConditions { condition actual required } }
    ...Refusal
  }
}`;
// Every refusal a lifecycle mutation may answer with, with what it says.
export const REFUSAL = `
fragment Refusal on Error {
  __typename message code
  ... on PolicyViolation { unmet { condition actual required } }
  ... on Conflict { field expected actual }
  ... on InvalidTransition { fromStage toStage allowedMoves }
  ... on PermissionDenied { operation requiredRole role }
  ... on NoRollbackTarget { field }
  ... on InvalidInput { field limit }
}`;
const LAST_MOVE = `query LastMove($name: String!) {
  model(name: $name) { transitions(first: 1) { nodes { actor at reason fromStage toStage modelVersion { version } } } }
}`;

export function stageBadge(stage) {
  return h("span", { class: `stage stage-${stage}` }, stage);
}

export function policyText(policy) {
  const parts = [];
  if (policy.requiredChecks.length) parts.push(`checks ${policy.requiredChecks.join(", ")} passed`);
  for (const rule of policy.metricRules) parts.push(`${rule.metric} ${OPS[rule.op] ?? rule.op} ${fmtNum(rule.value)}`);
  if (policy.mustBeatProduction) {
    const better = policy.mustBeatProduction.goal === "MINIMIZE" ? "lower" : "higher";
    parts.push(`${policy.mustBeatProduction.metric} ${better} than production`);
  }
  return parts.length ? parts.join("; ") : "no conditions";
}
const OPS = { EQ: "=", NE: "≠", GT: ">", GTE: "≥", LT: "<", LTE: "≤" };

export function unmetList(unmet) {
  return h(
    "ul",
    null,
    unmet.map((u) =>
      h("li", null, h("strong", null, u.condition), `: ${fmtValue(u.actual) ?? "nothing"}, needs ${fmtValue(u.required)}`),
    ),
  );
}

function fmtValue(text) {
  if (text === null || text === undefined) return null;
  // Long floats in the server's words ("0.3248293212084997") read better rounded.
  return String(text).replace(/-?\d+\.\d{5,}(e[-+]?\d+)?/g, (n) => fmtNum(Number(n)));
}

// A refusal payload (or an ApiError) in words; `who` says who moved first on a Conflict.
export function refusalMessage(payload, who = null) {
  switch (payload.__typename) {
    case "PolicyViolation":
      return [h("p", null, "The promotion policy refuses this move. Unmet:"), unmetList(payload.unmet)];
    case "Conflict":
      return [
        h("p", null, `Someone moved first: ${payload.message}.`),
        who
          ? h(
              "p",
              null,
              `${who.actor} moved version ${who.modelVersion.version} from ${who.fromStage} to ${who.toStage} at ${fmtTime(who.at)}`,
              who.reason ? ` (“${who.reason}”).` : ".",
            )
          : null,
        h("p", null, "The board now shows the current state; check it and try again if it still makes sense."),
      ];
    case "InvalidTransition":
      return h(
        "p",
        null,
        `A version cannot move from ${payload.fromStage} to ${payload.toStage}. From ${payload.fromStage} it can go to: ${payload.allowedMoves.join(", ") || "nowhere"}.`,
      );
    case "PermissionDenied":
      return h("p", null, `Your role (${payload.role}) may not do this: it needs ${payload.requiredRole}.`);
    case "NoRollbackTarget":
      return h("p", null, `Nothing to roll back to: ${payload.message}.`);
    default:
      return h("p", null, payload.message ?? String(payload));
  }
}

async function whoMovedFirst(model) {
  try {
    const data = await gql(LAST_MOVE, { name: model });
    return data.model?.transitions.nodes[0] ?? null;
  } catch {
    return null;
  }
}

// The transition dialog: the fresh policy check, a reason, and the typed refusal if any.
// Resolves to true when the move happened.
export async function transitionDialog(model, version, from, to, { productionVersion = null } = {}) {
  const gate = h("div", { class: "gate" }, h("span", { class: "muted" }, "Checking the policy…"));
  gql(
    `query($m: String!, $v: Int!, $s: Stage!) { checkPromotion(model: $m, version: $v, stage: $s) { allowed unmet { condition actual required } } }`,
    { m: model, v: version, s: to },
  ).then(
    (data) => {
      clear(gate);
      const check = data.checkPromotion;
      if (check.allowed) gate.append(h("span", { class: "gate-ok" }, `✓ Meets everything ${to} requires.`));
      else gate.append(h("span", { class: "gate-no" }, `✗ Not allowed now:`), unmetList(check.unmet));
    },
    (error) => {
      clear(gate);
      gate.append(h("span", { class: "gate-no" }, `The policy could not be checked: ${error.message}`));
    },
  );
  const reason = h("textarea", { id: "reason", name: "reason", maxlength: 1000, placeholder: "Why (kept in the audit log)" });
  const refusal = h("div", { "aria-live": "assertive" });
  const verb = STAGES.indexOf(to) > STAGES.indexOf(from) && to !== "ARCHIVED" ? "Promote" : "Move";
  const result = await dialog({
    title: `${verb} ${model} version ${version} to ${to}?`,
    body: [
      h("p", null, stageBadge(from), " → ", stageBadge(to)),
      to === "PRODUCTION" && productionVersion
        ? h("p", { class: "muted" }, `Version ${productionVersion} leaves PRODUCTION (archived).`)
        : null,
      gate,
      h("label", { for: "reason" }, "Reason"),
      reason,
      refusal,
    ],
    actions: [
      { label: "Cancel", value: false },
      {
        label: `${verb} to ${to}`,
        submit: true,
        run: async (form) => {
          const submit = form.querySelector("button[type=submit]");
          submit.disabled = true;
          clear(refusal);
          const input = { model, version, stage: to, expectedStage: from, reason: reason.value.trim() || null };
          if (to === "PRODUCTION") input.expectedProductionVersion = productionVersion;
          try {
            const data = await gql(TRANSITION + REFUSAL, { input });
            const payload = data.transitionModelVersion;
            if (payload.__typename === "TransitionModelVersionSuccess") return true;
            const who = payload.__typename === "Conflict" ? await whoMovedFirst(model) : null;
            refusal.append(h("div", { class: "refusal", role: "alert" }, refusalMessage(payload, who)));
          } catch (error) {
            refusal.append(h("div", { class: "refusal", role: "alert" }, `The server refused: ${error.message}`));
          }
          submit.disabled = false;
          return undefined; // keep the dialog open, showing why
        },
      },
    ],
  });
  if (result === true) toast(`${model} version ${version} is now in ${to}.`);
  return result === true;
}

export async function rollbackDialog(model, productionVersion) {
  const reason = h("textarea", { id: "reason", name: "reason", maxlength: 1000, placeholder: "Why (kept in the audit log)" });
  const refusal = h("div", { "aria-live": "assertive" });
  const result = await dialog({
    title: `Roll back ${model}?`,
    body: [
      h(
        "p",
        null,
        `PRODUCTION goes back to the version that was there before ${productionVersion ? `version ${productionVersion}` : "now"}; `,
        "the current one is archived. A rollback may restore a version that no longer meets the policy: it is recorded as bypassed.",
      ),
      h("label", { for: "reason" }, "Reason"),
      reason,
      refusal,
    ],
    actions: [
      { label: "Cancel", value: null },
      {
        label: "Roll back",
        submit: true,
        run: async (form) => {
          const submit = form.querySelector("button[type=submit]");
          submit.disabled = true;
          clear(refusal);
          try {
            const data = await gql(ROLLBACK + REFUSAL, { input: { model, reason: reason.value.trim() || null } });
            const payload = data.rollbackModel;
            if (payload.__typename === "RollbackModelSuccess") return payload;
            const who = payload.__typename === "Conflict" ? await whoMovedFirst(model) : null;
            refusal.append(h("div", { class: "refusal", role: "alert" }, refusalMessage(payload, who)));
          } catch (error) {
            refusal.append(h("div", { class: "refusal", role: "alert" }, `The server refused: ${error.message}`));
          }
          submit.disabled = false;
          return undefined;
        },
      },
    ],
  });
  if (result) {
    const bypassed = result.bypassedConditions.length
      ? ` It bypassed: ${result.bypassedConditions.map((c) => c.condition).join(", ")}.`
      : "";
    toast(`${model}: version ${result.modelVersion.version} is back in PRODUCTION.${bypassed}`);
  }
  return Boolean(result);
}

// checkPromotion for every version that has a next stage, a few dozen per request.
async function gates(models) {
  const wanted = [];
  for (const model of models) {
    for (const v of model.versions.nodes) {
      if (NEXT[v.stage]) wanted.push({ model: model.name, version: v.version, stage: NEXT[v.stage] });
    }
  }
  const found = new Map();
  for (let i = 0; i < wanted.length; i += CHECKS_PER_QUERY) {
    const chunk = wanted.slice(i, i + CHECKS_PER_QUERY);
    const vars = {};
    const defs = [];
    const fields = chunk.map((w, j) => {
      vars[`m${j}`] = w.model;
      vars[`v${j}`] = w.version;
      vars[`s${j}`] = w.stage;
      defs.push(`$m${j}: String!, $v${j}: Int!, $s${j}: Stage!`);
      return `c${j}: checkPromotion(model: $m${j}, version: $v${j}, stage: $s${j}) { allowed unmet { condition actual required } }`;
    });
    const data = await gql(`query Gates(${defs.join(", ")}) { ${fields.join("\n")} }`, vars);
    chunk.forEach((w, j) => found.set(`${w.model}\u0000${w.version}`, { stage: w.stage, ...data[`c${j}`] }));
  }
  return found;
}

export default function render(root, _params, query) {
  let closed = false;
  let cursor = null;
  let unsubscribe = null;
  const sections = new Map(); // model name -> section element
  const pending = new Map(); // model name -> timer
  const live = h("span", { class: "live", "data-status": "closed", "aria-live": "polite" }, "connecting…");
  const list = h("div", { class: "board" });
  const more = h("div");
  const filter = h("input", {
    type: "search",
    placeholder: "Filter models",
    "aria-label": "Filter models by name",
    value: query.get("q") ?? "",
    oninput: () => applyFilter(),
  });

  root.append(
    h(
      "div",
      { class: "view-header" },
      h("h1", null, "Models"),
      live,
      h("span", { class: "spacer" }),
      filter,
    ),
    list,
    more,
  );

  function applyFilter() {
    const text = filter.value.trim().toLowerCase();
    for (const [name, section] of sections) section.hidden = Boolean(text) && !name.toLowerCase().includes(text);
  }

  function versionCard(model, v, gate) {
    const run = v.run;
    const card = h(
      "article",
      { class: "card", "data-version": v.version, "aria-label": `${model.name} version ${v.version}` },
      h(
        "div",
        { class: "card-title" },
        h("a", { href: `#/models/${encodeURIComponent(model.name)}/versions/${v.version}` }, `v${v.version}`),
        v.aliases.map((a) => h("span", { class: "alias", title: "alias" }, `@${a}`)),
      ),
      h(
        "div",
        { class: "card-meta" },
        run
          ? [h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.name ?? run.id.slice(0, 8)), ` · ${run.experiment.name} · `]
          : "no run · ",
        h("span", { title: fmtTime(v.createdAt) }, fmtAgo(v.createdAt)),
      ),
      policyMetrics(model, v),
      v.validations.length
        ? h(
            "div",
            { class: "checks", "aria-label": "latest validations" },
            v.validations.map((c) =>
              h("span", { class: `check check-${c.status}`, title: `${c.status} by ${c.actor} at ${fmtTime(c.at)}` }, `${c.check} ${ICON[c.status]}`),
            ),
          )
        : null,
      gate ? gateLine(gate) : null,
      actions(model, v),
    );
    return card;
  }

  function policyMetrics(model, v) {
    const keys = new Set();
    for (const p of model.promotionPolicy) {
      for (const rule of p.metricRules) keys.add(rule.metric);
      if (p.mustBeatProduction) keys.add(p.mustBeatProduction.metric);
    }
    if (!keys.size || !v.run) return null;
    const values = v.run.metrics.filter((m) => keys.has(m.key));
    if (!values.length) return null;
    return h("div", { class: "card-meta" }, values.map((m) => `${m.key} ${fmtNum(m.value)}`).join(" · "));
  }

  function gateLine(gate) {
    if (gate.allowed) return h("div", { class: "gate gate-ok" }, `✓ ready for ${gate.stage}`);
    // The lifecycle's own refusal (e.g. ARCHIVED → PRODUCTION) is not interesting here.
    return h(
      "details",
      { class: "gate gate-no" },
      h("summary", null, `✗ not ready for ${gate.stage} (${gate.unmet.length})`),
      unmetList(gate.unmet),
    );
  }

  function actions(model, v) {
    if (!can("transitionModelVersion")) return null;
    const production = model.productionVersion?.version ?? null;
    const buttons = [];
    const next = NEXT[v.stage];
    const go = async (to) => {
      if (await transitionDialog(model.name, v.version, v.stage, to, { productionVersion: production })) {
        refreshModel(model.name);
      }
    };
    if (next) {
      buttons.push(
        h(
          "button",
          { type: "button", class: "small primary", onclick: () => go(next), "data-action": "promote" },
          v.stage === "ARCHIVED" ? `Restore to ${next}` : `Promote to ${next}`,
        ),
      );
    }
    for (const to of MOVES[v.stage]) {
      if (to === next) continue;
      buttons.push(
        h(
          "button",
          { type: "button", class: to === "ARCHIVED" ? "small danger" : "small", onclick: () => go(to) },
          to === "ARCHIVED" ? "Archive" : `To ${to}`,
        ),
      );
    }
    return h("div", { class: "card-actions" }, buttons);
  }

  function modelSection(model, gateMap) {
    const byStage = Object.fromEntries(STAGES.map((s) => [s, []]));
    for (const v of model.versions.nodes) byStage[v.stage]?.push(v);
    const production = model.productionVersion?.version ?? null;
    const policies = model.promotionPolicy;
    const header = h(
      "header",
      null,
      h("h2", null, model.name),
      model.aliases.map((a) => h("span", { class: "alias" }, `@${a.alias} → v${a.version.version}`)),
      h("span", { class: "spacer" }),
      h("span", { class: "muted" }, `updated ${fmtAgo(model.updatedAt)}`),
      can("rollbackModel") && production
        ? h(
            "button",
            {
              type: "button",
              class: "small",
              onclick: async () => {
                if (await rollbackDialog(model.name, production)) refreshModel(model.name);
              },
            },
            "Roll back",
          )
        : null,
    );
    const policy = h(
      "div",
      { class: "policy" },
      policies.length
        ? policies.map((p) => h("div", null, h("strong", null, `${p.stage} policy: `), policyText(p)))
        : "No promotion policy: any allowed move goes through.",
    );
    const columns = h(
      "div",
      { class: "columns" },
      STAGES.map((stage) => {
        const versions = byStage[stage];
        const shown = stage === "ARCHIVED" ? versions.slice(0, ARCHIVED_SHOWN) : versions;
        const column = h(
          "section",
          { class: `column column-${stage}`, "data-stage": stage, "aria-label": `${model.name} ${stage}` },
          h("h3", null, stageBadge(stage), h("span", { class: "muted" }, String(versions.length))),
          shown.map((v) => versionCard(model, v, gateMap.get(`${model.name}\u0000${v.version}`))),
          versions.length > shown.length
            ? h(
                "button",
                {
                  type: "button",
                  class: "link-button more",
                  onclick: (event) => {
                    const button = event.currentTarget;
                    for (const v of versions.slice(shown.length)) {
                      button.before(versionCard(model, v, gateMap.get(`${model.name}\u0000${v.version}`)));
                    }
                    button.remove();
                  },
                },
                `${versions.length - shown.length} more`,
              )
            : null,
          versions.length === 0 ? h("p", { class: "muted" }, "—") : null,
        );
        return column;
      }),
    );
    return h(
      "section",
      { class: "board-model", "data-model": model.name, "aria-label": model.name },
      header,
      model.description ? h("p", { class: "muted" }, model.description) : null,
      policy,
      columns,
    );
  }

  function place(model, gateMap, flash = null) {
    const section = modelSection(model, gateMap);
    const old = sections.get(model.name);
    if (old) old.replaceWith(section);
    else list.append(section);
    sections.set(model.name, section);
    if (flash !== null) section.querySelector(`[data-version="${flash}"]`)?.classList.add("flash");
    applyFilter();
  }

  async function loadAll() {
    let after = null;
    let any = false;
    clear(more);
    for (;;) {
      const data = await gql(BOARD, { after });
      if (closed) return;
      const models = data.models.nodes;
      const gateMap = await gates(models);
      if (closed) return;
      if (!any) clear(list);
      for (const model of models) place(model, gateMap);
      any = any || models.length > 0;
      if (!data.models.pageInfo.hasNextPage) break;
      after = data.models.pageInfo.endCursor;
    }
    if (!any) {
      state(
        list,
        "empty",
        "No registered models yet. Register one with the registerModelVersion mutation (or `modelgraph demo` for sample data); it appears here at once.",
      );
    }
  }

  async function refreshModel(name, flash = null) {
    try {
      const data = await gql(ONE_MODEL, { name });
      if (closed) return;
      if (!data.model) {
        sections.get(name)?.remove();
        sections.delete(name);
        return;
      }
      const gateMap = await gates([data.model]);
      if (closed) return;
      if (!sections.size) clear(list);
      place(data.model, gateMap, flash);
    } catch (error) {
      if (!closed) toast(`Could not refresh ${name}: ${error.message}`, "error");
    }
  }

  function onEvent(event) {
    cursor = event.cursor;
    // Several events of one change (a promotion archives the old production) come
    // together: refresh the model once.
    window.clearTimeout(pending.get(event.model));
    pending.set(
      event.model,
      window.setTimeout(() => {
        pending.delete(event.model);
        refreshModel(event.model, event.versionNumber);
      }, 150),
    );
    if (event.type === "MODEL_RENAMED" || event.type === "MODEL_DELETED") loadAll().catch(() => {});
  }

  function setStatus(status) {
    live.dataset.status = status;
    live.textContent = { live: "live", reconnecting: "reconnecting…", closed: "not live" }[status] ?? status;
  }

  function watch() {
    unsubscribe = subscribe(LIVE, () => ({ after: cursor }), {
      next: (data) => onEvent(data.lifecycleEvents),
      status: setStatus,
      error: (error) => {
        setStatus("reconnecting");
        // SLOW_CONSUMER and the like end the subscription: start again from the cursor.
        if (!closed && !(error instanceof ApiError && (error.status === 4401 || error.status === 4403))) {
          window.setTimeout(() => {
            if (!closed) watch();
          }, 2000);
        } else {
          setStatus("closed");
        }
      },
    });
  }

  (async () => {
    state(list, "loading", "Loading the models…");
    try {
      // The cursor first, then the board: whatever happens in between is replayed.
      cursor = await lastEventCursor();
      await loadAll();
    } catch (error) {
      if (!closed) state(list, "error", `The models could not be loaded: ${error.message}. Reload to try again.`);
      return;
    }
    if (!closed) watch();
  })();

  return () => {
    closed = true;
    for (const timer of pending.values()) window.clearTimeout(timer);
    if (unsubscribe) unsubscribe();
  };
}

const ICON = { PASSED: "✓", FAILED: "✗", PENDING: "…" };
