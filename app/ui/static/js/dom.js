// Small DOM helpers: build elements without innerHTML (text is always text), format values,
// and show loading / empty / error states that say what to do.

// h("a", {href: "#/x", class: "link", onclick: fn}, "text", child, [more, children])
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "style" && typeof value === "object") {
      Object.assign(el.style, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  appendAll(el, children);
  return el;
}

// append(el, ...children): like el.append, skipping null/undefined/false and flattening arrays.
export function append(el, ...children) {
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendAll(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function fmtTime(iso) {
  if (iso === null || iso === undefined || iso === "") return "—";
  const date = typeof iso === "number" ? new Date(iso) : new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : TIME.format(date);
}

// How long ago, in words ("3 min ago"), for feeds.
export function fmtAgo(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function fmtNum(x) {
  if (x === null || x === undefined || x === "") return "—";
  const n = typeof x === "number" ? x : Number(x);
  if (!Number.isFinite(n)) return String(x); // NaN, Infinity as the server spelled them
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString();
  const abs = Math.abs(n);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return n.toExponential(3);
  return n.toPrecision(4).replace(/\.?0+$/, "");
}

export function fmtBytes(n) {
  const value = Number(n);
  if (!Number.isFinite(value)) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = value;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// state(el, "loading" | "empty" | "error", text): replaces el's content with the state.
export function state(el, kind, text) {
  clear(el);
  const role = kind === "error" ? "alert" : "status";
  el.append(h("div", { class: `state state-${kind}`, role }, text));
  return el;
}

// A modal dialog with its focus kept inside and Esc to cancel; resolves to the value the
// chosen action returns (or null when cancelled).
export function dialog({ title, body, actions }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const box = h("div", { class: "dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "dialog-title" });
    const backdrop = h("div", { class: "dialog-backdrop" }, box);
    const close = (value) => {
      backdrop.remove();
      document.removeEventListener("keydown", onKey, true);
      if (previous && previous.focus) previous.focus();
      resolve(value);
    };
    const buttons = actions.map((action) =>
      h(
        "button",
        {
          type: action.submit ? "submit" : "button",
          class: action.class ?? (action.submit ? "primary" : ""),
          onclick: action.submit
            ? null
            : () => close(action.value === undefined ? null : action.value),
        },
        action.label,
      ),
    );
    const form = h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          const submit = actions.find((a) => a.submit);
          const value = submit.run ? await submit.run(form) : true;
          if (value !== undefined) close(value);
        },
      },
      h("h2", { id: "dialog-title" }, title),
      body,
      h("div", { class: "dialog-actions" }, buttons),
    );
    box.append(form);
    const focusable = () =>
      [...box.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])")].filter(
        (e) => !e.disabled,
      );
    const onKey = (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close(null);
      } else if (event.key === "Tab") {
        const items = focusable();
        if (!items.length) return;
        const first = items[0];
        const last = items[items.length - 1];
        if (event.shiftKey && document.activeElement === first) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && document.activeElement === last) {
          event.preventDefault();
          first.focus();
        }
      }
    };
    document.addEventListener("keydown", onKey, true);
    backdrop.addEventListener("mousedown", (event) => {
      if (event.target === backdrop) close(null);
    });
    document.body.append(backdrop);
    (box.querySelector("textarea, input, select") ?? focusable()[0])?.focus();
  });
}

// A short message at the bottom of the screen, read out by screen readers.
export function toast(text, kind = "info") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  region.append(item);
  window.setTimeout(() => item.remove(), 6000);
}
