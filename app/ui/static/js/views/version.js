// A model version: where it came from (run, experiment, params, metrics, datasets), its
// files with digests and downloads, its validation history, the audit timeline of its
// transitions, and "what was in PRODUCTION at…" (versionAt).

import { can, download, gql, lastEventCursor, subscribe } from "../api.js";
import { append, clear, fmtAgo, fmtBytes, fmtNum, fmtTime, h, state, toast } from "../dom.js";
import { MOVES, NEXT, policyText, stageBadge, transitionDialog, unmetList } from "./models.js";

const VERSION = `query Version($name: String!, $version: Int!) {
  modelVersion(model: $name, version: $version) {
    version stage source digest description runLink loggedModelId createdAt updatedAt aliases
    tags { key value }
    model { name productionVersion { version } promotionPolicy { stage requiredChecks metricRules { metric op value } mustBeatProduction { metric goal } } }
    run {
      id name status startTime endTime userId
      experiment { name }
      params { key value }
      metrics { key value min max step }
      inputs { context dataset { name digest sourceType source } }
    }
    files { path digest size downloadUrl }
    validationHistory { check status at actor detailsUrl metrics { key value } }
    transitions {
      fromStage toStage actor reason rollback at
      policy { requiredChecks metricRules { metric op value } mustBeatProduction { metric goal } bypassed unmet { condition actual required } }
    }
  }
}`;
const AT = `query At($name: String!, $at: DateTime!, $stage: Stage) {
  model(name: $name) { versionAt(at: $at, stage: $stage) { version stage run { id name } } }
}`;
const LIVE = `subscription Version($model: String!, $after: String) {
  lifecycleEvents(model: $model, after: $after) { cursor versionNumber type }
}`;

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "").map(([key, value]) => [h("dt", null, key), h("dd", null, value)]),
  );
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data" },
      h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", null, rows.map((cells) => h("tr", null, cells))),
    ),
  );
}

function withClass(name, el) {
  el.classList.add(name);
  return el;
}

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export default function render(root, params) {
  const name = params.name;
  const number = Number.parseInt(params.version, 10);
  let closed = false;
  let cursor = null;
  let unsubscribe = null;
  const modelHref = `#/models`;

  if (!Number.isInteger(number) || number < 1) {
    state(root, "error", `"${params.version}" is not a version number. Pick a version on the models board.`);
    return undefined;
  }

  function lineage(v) {
    const run = v.run;
    if (!run) {
      return h(
        "section",
        { class: "panel" },
        h("h2", null, "Lineage"),
        h("p", { class: "muted" }, "This version was registered without a run."),
        facts([["Source", v.source ? h("code", null, v.source) : null], ["Logged model", v.loggedModelId]]),
      );
    }
    return h(
      "section",
      { class: "panel" },
      h("h2", null, "Lineage"),
      facts([
        ["Run", h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.name ?? run.id)],
        ["Experiment", h("a", { href: `#/experiments/${encodeURIComponent(run.experiment.name)}` }, run.experiment.name)],
        ["Status", run.status],
        ["Trained", `${fmtTime(run.startTime)}${run.endTime ? ` → ${fmtTime(run.endTime)}` : ""}`],
        ["By", run.userId],
        ["Source", v.source ? h("code", null, v.source) : null],
        ["Logged model", v.loggedModelId],
      ]),
      h("h3", null, "Params"),
      table(
        ["Param", "Value"],
        run.params.map((p) => [h("td", null, p.key), h("td", { class: "mono" }, p.value)]),
        "No params were logged.",
      ),
      h("h3", null, "Metrics"),
      table(
        ["Metric", "Last", "Min", "Max", "Step"],
        run.metrics.map((m) => [
          h("td", null, m.key),
          h("td", { class: "num" }, fmtNum(m.value)),
          h("td", { class: "num" }, fmtNum(m.min)),
          h("td", { class: "num" }, fmtNum(m.max)),
          h("td", { class: "num" }, fmtNum(m.step)),
        ]),
        "No metrics were logged.",
      ),
      h("h3", null, "Datasets"),
      table(
        ["Dataset", "Context", "Digest", "Source"],
        run.inputs.map((i) => [
          h("td", null, i.dataset.name),
          h("td", null, i.context ?? "—"),
          h("td", { class: "digest" }, i.dataset.digest),
          h("td", { class: "mono" }, `${i.dataset.sourceType}: ${i.dataset.source}`),
        ]),
        "No dataset inputs were logged for this run.",
      ),
    );
  }

  function files(v) {
    return h(
      "section",
      { class: "panel" },
      h("h2", null, "Files"),
      v.digest ? h("p", { class: "muted" }, "Version digest: ", h("span", { class: "digest" }, v.digest)) : null,
      withClass(
        "files",
        table(
        ["File", "Size", ""],
        v.files.map((f) => [
          h("td", null, h("div", { class: "mono" }, f.path), h("div", { class: "digest muted", title: "SHA-256" }, `sha256 ${f.digest}`)),
          h("td", { class: "num" }, fmtBytes(f.size)),
          h(
            "td",
            null,
            h(
              "button",
              {
                type: "button",
                class: "small",
                "aria-label": `Download ${f.path}`,
                onclick: () =>
                  download(f.downloadUrl, f.path.split("/").pop()).catch((error) => toast(error.message, "error")),
              },
              "Download",
            ),
          ),
        ]),
        "This version owns no files in this registry (its source may point elsewhere).",
        ),
      ),
    );
  }

  function validations(v) {
    return h(
      "section",
      { class: "panel" },
      h("h2", null, "Validation history"),
      table(
        ["Check", "Status", "When", "By", "Metrics", ""],
        v.validationHistory.map((c) => [
          h("td", null, c.check),
          h("td", null, h("span", { class: `check check-${c.status}` }, c.status)),
          h("td", null, fmtTime(c.at)),
          h("td", null, c.actor),
          h("td", null, c.metrics.map((m) => `${m.key} ${fmtNum(m.value)}`).join(", ") || "—"),
          h("td", null, c.detailsUrl ? h("a", { href: c.detailsUrl, rel: "noopener noreferrer" }, "details") : ""),
        ]),
        "No validations were recorded for this version (recordValidation reports them).",
      ),
    );
  }

  function audit(v) {
    if (!v.transitions.length) {
      return h("section", { class: "panel" }, h("h2", null, "Audit"), h("p", { class: "muted" }, "No transitions yet: registered in DEVELOPMENT."));
    }
    return h(
      "section",
      { class: "panel" },
      h("h2", null, "Audit"),
      h(
        "ol",
        { class: "timeline" },
        v.transitions.map((t) =>
          h(
            "li",
            null,
            h("div", null, stageBadge(t.fromStage), " → ", stageBadge(t.toStage), t.rollback ? h("strong", null, " rollback") : null),
            h("div", { class: "card-meta" }, `${t.actor} · ${fmtTime(t.at)}`),
            t.reason ? h("div", null, `“${t.reason}”`) : null,
            t.policy
              ? h(
                  "div",
                  { class: t.policy.bypassed ? "gate gate-no" : "gate gate-ok" },
                  t.policy.bypassed ? "Policy bypassed by the rollback: " : "Passed policy: ",
                  policyText(t.policy),
                  t.policy.unmet.length ? unmetList(t.policy.unmet) : null,
                )
              : null,
          ),
        ),
      ),
    );
  }

  function versionAt() {
    const input = h("input", { type: "datetime-local", id: "at", value: localInputValue(new Date()), step: 1 });
    const stage = h(
      "select",
      { id: "at-stage", "aria-label": "Stage" },
      ["PRODUCTION", "STAGING"].map((s) => h("option", { value: s }, s)),
    );
    const answer = h("div", { class: "at-answer", "aria-live": "polite" });
    const form = h(
      "form",
      {
        class: "at-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const when = new Date(input.value);
          if (Number.isNaN(when.getTime())) {
            state(answer, "error", "Pick a date and time first.");
            return;
          }
          state(answer, "loading", "Looking…");
          try {
            const data = await gql(AT, { name, at: when.toISOString(), stage: stage.value });
            const found = data.model?.versionAt;
            clear(answer);
            answer.append(
              found
                ? h(
                    "p",
                    null,
                    `At ${fmtTime(when.toISOString())}, ${stage.value} of ${name} was `,
                    h("a", { href: `#/models/${encodeURIComponent(name)}/versions/${found.version}` }, `version ${found.version}`),
                    found.run ? ` (run ${found.run.name ?? found.run.id})` : "",
                    ".",
                  )
                : h("p", null, `At ${fmtTime(when.toISOString())}, ${name} had no version in ${stage.value}.`),
            );
          } catch (error) {
            state(answer, "error", `Could not look it up: ${error.message}`);
          }
        },
      },
      h("label", { for: "at" }, "What was in"),
      stage,
      h("label", { for: "at" }, "at"),
      input,
      h("button", { type: "submit" }, "Show"),
    );
    return h("section", { class: "panel" }, h("h2", null, "Back in time"), form, answer);
  }

  function actions(v) {
    if (!can("transitionModelVersion")) return null;
    return h(
      "div",
      { class: "card-actions" },
      MOVES[v.stage].map((to) =>
        h(
          "button",
          {
            type: "button",
            class: to === "ARCHIVED" ? "small danger" : to === NEXT[v.stage] ? "small primary" : "small",
            onclick: async () => {
              const production = v.model.productionVersion?.version ?? null;
              if (await transitionDialog(name, v.version, v.stage, to, { productionVersion: production })) load();
            },
          },
          to === "ARCHIVED" ? "Archive" : to === NEXT[v.stage] ? `Promote to ${to}` : `Move to ${to}`,
        ),
      ),
    );
  }

  async function load() {
    try {
      const data = await gql(VERSION, { name, version: number });
      if (closed) return;
      const v = data.modelVersion;
      clear(root);
      if (!v) {
        state(root, "empty", `${name} has no version ${number}. It may have been deleted; go back to the models board.`);
        return;
      }
      append(
        root,
        h("div", { class: "crumbs" }, h("a", { href: modelHref }, "Models"), ` / ${name}`),
        h(
          "div",
          { class: "view-header" },
          h("h1", null, `${name} · version ${v.version}`),
          stageBadge(v.stage),
          v.aliases.map((a) => h("span", { class: "alias" }, `@${a}`)),
          h("span", { class: "spacer" }),
          h("span", { class: "muted", title: fmtTime(v.updatedAt) }, `registered ${fmtAgo(v.createdAt)}`),
        ),
        v.description ? h("p", null, v.description) : null,
        actions(v),
        h("div", { class: "grid-2" }, h("div", null, lineage(v)), h("div", null, files(v), validations(v), audit(v), versionAt())),
      );
    } catch (error) {
      if (!closed) state(root, "error", `This version could not be loaded: ${error.message}. Reload to try again.`);
    }
  }

  state(root, "loading", `Loading ${name} version ${number}…`);
  lastEventCursor({ model: name })
    .catch(() => null)
    .then((last) => {
      cursor = last;
      return load();
    })
    .then(() => {
      if (closed) return;
      // Refresh when this version changes (a move, a validation) while the page is open.
      unsubscribe = subscribe(LIVE, () => ({ model: name, after: cursor }), {
        next: (data) => {
          const event = data.lifecycleEvents;
          cursor = event.cursor;
          if (event.versionNumber === number || event.versionNumber === null) load();
        },
      });
    });

  return () => {
    closed = true;
    if (unsubscribe) unsubscribe();
  };
}
