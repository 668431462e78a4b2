// GraphiQL with a sign-in step. The token is kept in sessionStorage (forgotten when the tab
// closes, never in GraphiQL's persisted headers) and sent with everything GraphiQL does:
// the Authorization header over HTTP, and connection_init's payload on the WebSocket.
// GraphiQL is re-mounted whenever the token changes, so the schema is fetched with it.
(function () {
  "use strict";

  const h = React.createElement;
  const config = JSON.parse(document.getElementById("modelgraph-ide").textContent);
  const STORAGE_KEY = "modelgraph.token";
  const endpoint = window.location.origin + window.location.pathname;
  const subscriptionUrl = endpoint.replace(/^http/, "ws");
  const explorer = GraphiQLPluginExplorer.explorerPlugin();
  const DEFAULT_QUERY = `# modelgraph. Ctrl-Enter runs the query; the book icon opens the schema's docs,
# the folder icon the explorer.
{
  viewer {
    name
    role
  }
}
`;

  function bearer(token) {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  // Who the token belongs to, or why it was refused.
  async function whoIs(token) {
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(token) },
        body: JSON.stringify({ query: "{ viewer { name role } }" }),
      });
    } catch (error) {
      return { error: "the server did not answer (" + error.message + ")" };
    }
    const body = await response.json().catch(() => null);
    if (response.ok && body && body.data) return { viewer: body.data.viewer };
    const first = body && body.errors && body.errors[0];
    return { error: first ? first.message : "HTTP " + response.status };
  }

  function makeFetcher(token, onRefused) {
    const fetcher = GraphiQL.createFetcher({
      url: endpoint,
      subscriptionUrl,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        // The token was revoked (or expired) while the page was open.
        if (response.status === 401 && token) onRefused();
        return response;
      },
    });
    // Headers typed into GraphiQL's Headers tab still win over the signed-in token.
    return (params, options) =>
      fetcher(params, {
        ...options,
        headers: { ...bearer(token), ...((options && options.headers) || {}) },
      });
  }

  function SignIn({ busy, onSubmit }) {
    const [value, setValue] = React.useState("");
    return h(
      "form",
      {
        className: "mg-signin",
        onSubmit: (event) => {
          event.preventDefault();
          if (value.trim()) onSubmit(value.trim());
        },
      },
      h("label", { htmlFor: "mg-token" }, "API token"),
      h("input", {
        id: "mg-token",
        type: "password",
        autoComplete: "off",
        spellCheck: false,
        placeholder: "mg_…",
        value,
        onChange: (event) => setValue(event.target.value),
        autoFocus: true,
      }),
      h("button", { type: "submit", disabled: busy || !value.trim() }, busy ? "Checking…" : "Sign in"),
    );
  }

  function Bar({ session, busy, notice, onSignIn, onSignOut }) {
    let status;
    if (config.auth === "none") {
      status = h("span", { className: "mg-status" }, "Authentication is off (dev mode)");
    } else if (session) {
      status = h(
        React.Fragment,
        null,
        h("span", { className: "mg-status" }, `Signed in as ${session.viewer.name} (${session.viewer.role})`),
        h("button", { type: "button", onClick: onSignOut }, "Sign out"),
      );
    } else {
      status = h(
        React.Fragment,
        null,
        config.auth === "optional" && h("span", { className: "mg-status" }, "Anonymous: read only"),
        h(SignIn, { busy, onSubmit: onSignIn }),
      );
    }
    return h(
      "header",
      { className: "mg-bar" },
      h("strong", { className: "mg-title" }, "modelgraph"),
      h("span", { className: "mg-spacer" }),
      notice && h("span", { role: "alert", className: "mg-alert" }, notice),
      status,
    );
  }

  function Gate() {
    return h(
      "main",
      { className: "mg-gate" },
      h("h1", null, "This server needs an API token"),
      h("p", null, "Paste a token in the field above and press Sign in: GraphiQL opens with the schema loaded."),
      h("p", null, "No token? On the server: ", h("code", null, "modelgraph token create --name me --role READER")),
    );
  }

  function App() {
    const stored = config.auth === "none" ? null : window.sessionStorage.getItem(STORAGE_KEY);
    const [session, setSession] = React.useState(null);
    const [busy, setBusy] = React.useState(Boolean(stored));
    const [notice, setNotice] = React.useState(null);

    const signOut = React.useCallback((message) => {
      window.sessionStorage.removeItem(STORAGE_KEY);
      setSession(null);
      setNotice(message || null);
    }, []);

    const signIn = React.useCallback(async (token) => {
      setBusy(true);
      setNotice(null);
      const answer = await whoIs(token);
      setBusy(false);
      if (answer.viewer) {
        window.sessionStorage.setItem(STORAGE_KEY, token);
        setSession({ token, viewer: answer.viewer });
      } else {
        signOut("That token was refused: " + answer.error);
      }
    }, [signOut]);

    React.useEffect(() => {
      if (stored) signIn(stored);
    }, []);

    const token = session ? session.token : null;
    const fetcher = React.useMemo(
      () => makeFetcher(token, () => signOut("The server refused the token (revoked?): sign in again.")),
      [token, signOut],
    );
    const open = config.auth !== "required" || session !== null;

    return h(
      "div",
      { className: "mg-page" },
      h(Bar, { session, busy, notice, onSignIn: signIn, onSignOut: () => signOut() }),
      open
        ? h(GraphiQL, {
            key: token || "anonymous",
            fetcher,
            plugins: [explorer],
            defaultQuery: DEFAULT_QUERY,
            inputValueDeprecation: true,
            isHeadersEditorEnabled: true,
            shouldPersistHeaders: false,
          })
        : busy
          ? h("main", { className: "mg-gate" }, h("p", null, "Checking the saved token…"))
          : h(Gate),
    );
  }

  ReactDOM.createRoot(document.getElementById("modelgraph-ide-root")).render(h(App));
})();
