// The shell: sign-in, the top bar (who you are, your role, sign out) and a hash router that
// loads each view module on first use. A view is
//   export default function render(root, params, query) -> cleanup | undefined
// and its cleanup runs before the next view renders (close subscriptions there).

import { ApiError, gql, session, signIn, signOut } from "./api.js";
import { clear, h, state } from "./dom.js";

const ROUTES = [
  { pattern: /^\/models$/, module: "./views/models.js", nav: "models", keys: [] },
  {
    pattern: /^\/models\/([^/]+)\/versions\/([^/]+)$/,
    module: "./views/version.js",
    nav: "models",
    keys: ["name", "version"],
  },
  { pattern: /^\/events$/, module: "./views/events.js", nav: "events", keys: [] },
  { pattern: /^\/experiments$/, module: "./views/experiments.js", nav: "experiments", keys: [] },
  { pattern: /^\/experiments\/([^/]+)$/, module: "./views/leaderboard.js", nav: "experiments", keys: ["name"] },
  { pattern: /^\/runs\/([^/]+)$/, module: "./views/run.js", nav: "experiments", keys: ["id"] },
  { pattern: /^\/compare$/, module: "./views/compare.js", nav: "experiments", keys: [] },
];
const DEFAULT = "#/models";
const NAV = [
  ["models", "Models", "#/models"],
  ["experiments", "Experiments", "#/experiments"],
  ["events", "Events", "#/events"],
];

const app = document.getElementById("app");
let cleanup = null;
let renderCount = 0;
let main = null;
let navLinks = {};

function authMode() {
  return document.querySelector('meta[name="modelgraph-auth"]')?.content ?? "required";
}

function match(hash) {
  const raw = hash.replace(/^#/, "") || "/models";
  const [path, search = ""] = raw.split("?");
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (found) {
      const params = {};
      route.keys.forEach((key, i) => {
        params[key] = decodeURIComponent(found[i + 1]);
      });
      return { route, params, query: new URLSearchParams(search) };
    }
  }
  return null;
}

function runCleanup() {
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch (error) {
      console.warn("a view's cleanup failed", error);
    }
  }
  cleanup = null;
}

async function route() {
  if (!session.viewer) return;
  if (!window.location.hash || window.location.hash === "#" || window.location.hash === "#/") {
    window.location.replace(DEFAULT);
    return;
  }
  runCleanup();
  const ticket = ++renderCount;
  const found = match(window.location.hash);
  for (const [key, link] of Object.entries(navLinks)) {
    if (found?.route.nav === key) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(main);
  if (!found) {
    main.append(
      h(
        "div",
        { class: "state state-empty", role: "status" },
        "There is no page at this address. ",
        h("a", { href: DEFAULT }, "Go to the models board"),
        ".",
      ),
    );
    return;
  }
  const root = h("div", { class: "view" });
  main.append(root);
  state(root, "loading", "Loading…");
  let view;
  try {
    view = await import(found.route.module);
  } catch (error) {
    if (ticket !== renderCount) return;
    state(root, "error", `This page could not be loaded (${found.route.module}: ${error.message}). Reload to try again.`);
    return;
  }
  if (ticket !== renderCount) return;
  clear(root);
  try {
    cleanup = view.default(root, found.params, found.query) ?? null;
  } catch (error) {
    state(root, "error", `This page failed to render: ${error.message}. Reload to try again.`);
  }
  main.focus({ preventScroll: true });
}

function shell() {
  clear(app);
  const viewer = session.viewer;
  navLinks = {};
  const menu = h(
    "button",
    {
      type: "button",
      class: "nav-toggle",
      "aria-expanded": "false",
      "aria-controls": "nav",
      onclick: () => {
        const open = menu.getAttribute("aria-expanded") !== "true";
        menu.setAttribute("aria-expanded", String(open));
        nav.classList.toggle("open", open);
      },
    },
    "Menu",
  );
  const nav = h(
    "nav",
    { id: "nav", "aria-label": "Main" },
    NAV.map(([key, label, href]) => {
      navLinks[key] = h("a", { href }, label);
      return navLinks[key];
    }),
    h("a", { href: "/graphql", class: "nav-api" }, "GraphiQL"),
  );
  nav.addEventListener("click", (event) => {
    if (event.target.closest("a")) {
      nav.classList.remove("open");
      menu.setAttribute("aria-expanded", "false");
    }
  });
  const who = h(
    "div",
    { class: "who" },
    h("span", { class: "who-name", title: "The actor recorded on your changes" }, viewer.name),
    " ",
    h("span", { class: `role role-${viewer.role.toLowerCase()}`, "data-testid": "role" }, viewer.role),
    session.token
      ? h("button", { type: "button", class: "link-button", onclick: () => leave() }, "Sign out")
      : authMode() === "optional"
        ? h("button", { type: "button", class: "link-button", onclick: () => showSignIn() }, "Sign in")
        : null,
  );
  main = h("main", { id: "main", tabindex: "-1" });
  app.append(
    h("a", { href: "#main", class: "skip", onclick: (e) => (e.preventDefault(), main.focus()) }, "Skip to content"),
    h("header", { class: "topbar" }, h("a", { href: DEFAULT, class: "brand" }, "modelgraph"), menu, nav, who),
    main,
  );
}

function leave() {
  runCleanup();
  signOut();
  start();
}

function showSignIn(message = null) {
  runCleanup();
  clear(app);
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "mg_…",
  });
  const alert = h("p", { class: "form-error", role: "alert" }, message ?? "");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        button.disabled = true;
        alert.textContent = "";
        try {
          const data = await gql("{ viewer { name role } }", {}, { token });
          signIn(token);
          session.viewer = data.viewer;
          shell();
          route();
        } catch (error) {
          alert.textContent =
            error instanceof ApiError && error.status === 401
              ? "The server refused this token: it is unknown, revoked or mistyped."
              : `Signing in failed: ${error.message}`;
          button.disabled = false;
          input.focus();
        }
      },
    },
    h("h1", null, "modelgraph"),
    h("p", null, "This server needs an API token. Paste yours to sign in; it is kept for this browser tab only."),
    h("label", { for: "token" }, "API token"),
    input,
    alert,
    button,
    h(
      "p",
      { class: "hint" },
      "No token? On the server: ",
      h("code", null, "modelgraph token create --name me --role READER"),
    ),
  );
  app.append(h("div", { class: "signin-page" }, form));
  input.focus();
}

async function start() {
  session.auth = authMode();
  if (!session.token && session.auth === "required") {
    showSignIn();
    return;
  }
  state(app, "loading", "Loading modelgraph…");
  try {
    const data = await gql("{ viewer { name role } }");
    session.viewer = data.viewer;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut();
      showSignIn("Your session's token was refused (revoked or expired). Sign in again.");
    } else {
      state(app, "error", `The server did not answer: ${error.message}. Reload the page to try again.`);
    }
    return;
  }
  shell();
  route();
}

window.addEventListener("hashchange", () => route());
window.addEventListener("modelgraph:refused", () => {
  if (!session.viewer) return; // signing in handles its own refusals
  runCleanup();
  signOut();
  showSignIn("The server no longer accepts your token (revoked or expired). Sign in again.");
});
start();
