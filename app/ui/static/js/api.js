// The UI's only way to the server: the public GraphQL API at /graphql. Queries and mutations
// are HTTP POSTs; subscriptions share one graphql-transport-ws socket, which reconnects
// with backoff. The token lives in sessionStorage (forgotten when the tab closes) under the
// same key GraphiQL uses, so signing in to one signs in to the other.

const ENDPOINT = "/graphql";
const TOKEN_KEY = "modelgraph.token";

export class ApiError extends Error {
  constructor(message, { errors = [], typename = null, status = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.errors = errors; // GraphQL errors, as the server sent them
    this.typename = typename; // a refusal's payload type, when one is wrapped
    this.status = status; // the HTTP status, when the transport failed
  }

  get code() {
    return this.errors[0]?.extensions?.code ?? null;
  }
}

export const session = {
  token: readToken(),
  viewer: null, // {name, role} once known
  auth: "required", // none | optional | required: what the server asks of a browser
};

function readToken() {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function bearer(token) {
  return token ? { Authorization: "Bearer " + token } : {};
}

export async function gql(query, variables = {}, { token = session.token } = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...bearer(token) },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(`The server did not answer (${error.message}). Is it running?`);
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    const message = body?.errors?.[0]?.message ?? "this server needs a valid API token";
    // The session's own token stopped working (revoked while the page was open): the shell
    // asks for another one.
    if (token && token === session.token) window.dispatchEvent(new CustomEvent("modelgraph:refused"));
    throw new ApiError(message, { errors: body?.errors ?? [], status: 401 });
  }
  if (!body || (!body.data && !body.errors)) {
    throw new ApiError(`The server answered ${response.status} without a GraphQL body.`, {
      status: response.status,
    });
  }
  if (body.errors?.length) {
    throw new ApiError(body.errors.map((e) => e.message).join("; "), {
      errors: body.errors,
      status: response.status,
    });
  }
  return body.data;
}

// Roles include the ones before them; what each operation needs mirrors the server's
// table (app/auth/roles.py). The server still refuses what a role may not do.
const RANK = { READER: 0, WRITER: 1, DEPLOYER: 2, ADMIN: 3 };
const NEEDS = {
  transitionModelVersion: "DEPLOYER",
  promoteBestRun: "DEPLOYER",
  rollbackModel: "DEPLOYER",
  setModelAlias: "DEPLOYER",
  deleteModelAlias: "DEPLOYER",
  recordValidation: "WRITER",
  registerModelVersion: "WRITER",
  logMetrics: "WRITER",
  setPromotionPolicy: "ADMIN",
  createApiToken: "ADMIN",
};

export function can(operation) {
  const role = session.viewer?.role;
  if (!role) return false;
  const needed = NEEDS[operation] ?? "ADMIN";
  return RANK[role] >= RANK[needed];
}

export function signIn(token) {
  session.token = token;
  try {
    window.sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // private mode without storage: the token lasts as long as the page
  }
  socket.restart();
}

export function signOut() {
  session.token = null;
  session.viewer = null;
  try {
    window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  socket.restart();
}

// --- subscriptions: one graphql-transport-ws socket for all of them ---------------------

class Socket {
  constructor() {
    this.ws = null;
    this.ready = false;
    this.nextId = 1;
    this.subs = new Map(); // id -> {payload, handlers}
    this.attempt = 0;
    this.timer = null;
    this.status = "closed";
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${ENDPOINT}`;
  }

  setStatus(status) {
    this.status = status;
    for (const sub of this.subs.values()) sub.handlers.status?.(status);
  }

  open() {
    if (this.ws || this.timer) return;
    const ws = new WebSocket(this.url(), "graphql-transport-ws");
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      const payload = session.token ? { Authorization: "Bearer " + session.token } : {};
      ws.send(JSON.stringify({ type: "connection_init", payload }));
    };
    // The server may send its frames as binary: read them as UTF-8 text either way.
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      const text = typeof event.data === "string" ? event.data : DECODER.decode(event.data);
      this.receive(JSON.parse(text));
    };
    ws.onclose = (event) => this.closed(ws, event);
    ws.onerror = () => {}; // onclose follows and says what to do
  }

  receive(message) {
    const sub = this.subs.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.ready = true;
        this.attempt = 0;
        for (const [id, s] of this.subs) this.send(id, s);
        this.setStatus("live");
        break;
      case "ping":
        this.ws.send(JSON.stringify({ type: "pong" }));
        break;
      case "next":
        if (message.payload?.errors?.length) {
          sub?.handlers.error?.(
            new ApiError(message.payload.errors.map((e) => e.message).join("; "), {
              errors: message.payload.errors,
            }),
          );
        } else {
          sub?.handlers.next?.(message.payload.data);
        }
        break;
      case "error":
        if (sub) {
          this.subs.delete(message.id);
          sub.handlers.error?.(
            new ApiError(message.payload.map((e) => e.message).join("; "), { errors: message.payload }),
          );
        }
        break;
      case "complete":
        if (sub) {
          this.subs.delete(message.id);
          sub.handlers.complete?.();
        }
        break;
      default:
        break;
    }
  }

  send(id, sub) {
    const payload = { query: sub.query, variables: sub.variables() };
    this.ws.send(JSON.stringify({ id, type: "subscribe", payload }));
  }

  closed(ws, event) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.ready = false;
    if (this.subs.size === 0) {
      this.setStatus("closed");
      return;
    }
    if (event.code === 4401 || event.code === 4403) {
      // The token is missing, revoked or refused: retrying cannot help.
      const error = new ApiError("The server refused this session's token on the live connection.", {
        status: event.code,
      });
      for (const s of this.subs.values()) s.handlers.error?.(error);
      this.subs.clear();
      this.setStatus("closed");
      return;
    }
    this.setStatus("reconnecting");
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.timer = window.setTimeout(() => {
      this.timer = null;
      if (this.subs.size) this.open();
    }, delay);
  }

  add(query, variables, handlers) {
    const id = String(this.nextId++);
    // `variables` may be a function: read again on every (re)subscribe, so a caller can
    // resume from the last cursor it saw.
    const sub = { query, variables: typeof variables === "function" ? variables : () => variables, handlers };
    this.subs.set(id, sub);
    if (this.ready) {
      this.send(id, sub);
      handlers.status?.("live");
    } else {
      handlers.status?.(this.ws || this.timer ? "reconnecting" : "closed");
      this.open();
    }
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.ready) this.ws.send(JSON.stringify({ id, type: "complete" }));
      if (this.subs.size === 0) this.shutdown();
    };
  }

  shutdown() {
    window.clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000, "no subscriptions");
  }

  // Drop the connection (as a network failure would); the subscriptions reconnect.
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the client");
  }

  // A new token: subscriptions re-authenticate on a new socket.
  restart() {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    window.clearTimeout(this.timer);
    this.timer = null;
    if (ws) ws.close(1000, "signed in again");
    if (this.subs.size) this.open();
  }
}

const DECODER = new TextDecoder();
const socket = new Socket();

// subscribe(query, variables | () => variables, {next, error, complete, status}) -> unsubscribe
export function subscribe(query, variables, handlers = {}) {
  return socket.add(query, variables, handlers);
}

// For tests and the "reconnect" button: drop the live socket as a network failure would.
export function dropConnection() {
  socket.drop();
}

// A file behind the API's auth, downloaded with the token and handed to the browser.
export async function download(url, filename) {
  const response = await fetch(url, { headers: bearer(session.token) });
  if (!response.ok) {
    throw new ApiError(`The download was refused (${response.status}).`, { status: response.status });
  }
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 10000);
}

// The cursor of the newest lifecycle event (matching model/types), or null when there is
// none: subscribe with it as `after` to get everything that happens from now on, with no
// gap between a page's first load and its live updates. Pages hold cursors only.
export async function lastEventCursor({ model = null, types = null } = {}) {
  const query = `query LastCursor($after: String, $model: String, $types: [LifecycleEventType!]) {
    events(first: 500, after: $after, model: $model, types: $types) { pageInfo { hasNextPage endCursor } }
  }`;
  let after = null;
  for (;;) {
    const data = await gql(query, { after, model, types });
    const page = data.events.pageInfo;
    if (page.endCursor) after = page.endCursor;
    if (!page.hasNextPage) return after;
  }
}
