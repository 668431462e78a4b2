"""What an on-call engineer reads: Prometheus metrics, request ids, and the request
middleware that assigns ids, bounds request bodies and masks what escapes as a bug.

Plain ASGI (no framework): the middleware wraps the whole app, faces included."""

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.errors import UnavailableError

log = logging.getLogger("modelgraph.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
# A caller's own request id is kept when it is plausible as one (no log injection).
_CALLER_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One registry per app (tests run many apps in one process)."""

    def __init__(self, paths: set[str]) -> None:
        self.paths = paths
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "modelgraph_http_requests", "HTTP requests answered", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "modelgraph_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.websockets = Gauge(
            "modelgraph_websocket_connections", "WebSocket connections open", registry=r
        )
        self.subscriptions = Gauge(
            "modelgraph_subscriptions", "Subscriptions open", ["field"], registry=r
        )
        self.events_delivered = Counter(
            "modelgraph_events_delivered",
            "Results sent to subscribers (lifecycle events, metric batches)",
            ["field"],
            registry=r,
        )
        self.subscription_executions = Counter(
            "modelgraph_subscription_executions",
            "Subscription events executed for their watchers (executed), and results taken "
            "from another watcher's execution of the same query, variables and role (shared)",
            ["outcome"],
            registry=r,
        )
        self.auth_failures = Counter(
            "modelgraph_auth_failures",
            "Requests and connections refused for missing, invalid or revoked tokens",
            ["transport"],
            registry=r,
        )
        self.permission_denied = Counter(
            "modelgraph_permission_denied", "Operations refused for the caller's role", registry=r
        )
        self.internal_errors = Counter(
            "modelgraph_internal_errors", "Bugs: errors masked for the client", registry=r
        )
        self.unavailable = Counter(
            "modelgraph_unavailable",
            "Requests refused because the database is down, full or locked (retry later)",
            registry=r,
        )
        self.body_too_large = Counter(
            "modelgraph_request_body_too_large", "Requests refused for their size", registry=r
        )
        self.protocol_errors = Counter(
            "modelgraph_websocket_protocol_errors",
            "Malformed WebSocket messages (answered with the protocol's error or close code)",
            ["protocol"],
            registry=r,
        )
        self.init_timeouts = Counter(
            "modelgraph_websocket_init_timeouts",
            "WebSockets closed for not authenticating in time",
            ["protocol"],
            registry=r,
        )
        self.limit_refusals = Counter(
            "modelgraph_limit_refusals",
            "WebSocket connections and subscriptions refused by a cap",
            ["limit"],
            registry=r,
        )
        self.store_integrity_failures = Counter(
            "modelgraph_store_integrity_failures",
            "Downloads refused or cut short because a stored blob is missing or corrupt",
            ["problem"],
            registry=r,
        )

    def path_label(self, path: str) -> str:
        return path if path in self.paths else "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BodyTooLarge(Exception):
    pass


class CutShort(Exception):
    """Raised by a streamed response body that must stop before its Content-Length (its
    reason logged where it was known): the connection closes short, so the client sees a
    failed transfer, never a clean end on wrong bytes, and no traceback is logged."""


def request_id_of(scope: Scope) -> str:
    """The id of this request: the caller's X-Request-ID if plausible, else a new one."""
    for name, value in scope.get("headers") or ():
        if name == REQUEST_ID_HEADER and _CALLER_ID.fullmatch(value):
            return str(value.decode())
    return uuid.uuid4().hex


class RequestMiddleware:
    """Per request: an id (in scope state, the X-Request-ID response header and every
    masked error), a body-size bound, metrics, and a JSON 500 naming the id for anything
    that escapes the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        unbounded_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.unbounded_prefixes = unbounded_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            self.metrics.websockets.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.websockets.dec()
            return
        await self._http(scope, receive, send, request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        path = self.metrics.path_label(scope.get("path", ""))
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        limit = self.max_body_bytes
        if scope.get("path", "").startswith(self.unbounded_prefixes):
            limit = 1 << 62

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        try:
            if _declared_length(scope) > limit:
                raise BodyTooLarge
            await self.app(scope, bounded_receive, send_with_id)
        except CutShort:
            # The response started; returning without completing it makes the server
            # close the connection.
            pass
        except BodyTooLarge:
            self.metrics.body_too_large.inc()
            if not status["sent"]:
                await _answer(send_with_id, 413, _too_large(limit))
        except UnavailableError as error:
            # Before GraphQL ran (a token lookup): a plain HTTP 503 any retry logic knows.
            self.metrics.unavailable.inc()
            log.warning("unavailable (request %s): %s", request_id, error)
            if not status["sent"]:
                retry = ((b"retry-after", str(error.retry_after).encode()),)
                await _answer(send_with_id, 503, _unavailable(error, request_id), retry)
        except Exception:
            self.metrics.internal_errors.inc()
            log.exception("unhandled error (request %s)", request_id)
            if not status["sent"]:
                body = {
                    "errors": [
                        {
                            "message": f"Internal server error (request {request_id}).",
                            "extensions": {
                                "code": "INTERNAL_SERVER_ERROR",
                                "requestId": request_id,
                            },
                        }
                    ]
                }
                await _answer(send_with_id, 500, body)
        finally:
            self.metrics.requests.labels(path, str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


async def _answer(
    send: Send, status: int, body: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _too_large(limit: int) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": f"the request body is larger than the limit of {limit} bytes",
                "extensions": {"code": "REQUEST_TOO_LARGE", "limit": limit},
            }
        ]
    }


def _unavailable(error: UnavailableError, request_id: str) -> dict[str, Any]:
    extensions = {"code": error.code, "retryAfter": error.retry_after, "requestId": request_id}
    return {"errors": [{"message": error.message, "extensions": extensions}]}
