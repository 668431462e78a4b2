"""The GraphQL endpoint: strawberry's ASGI view, with authentication in front of it.

HTTP: every request but the GraphiQL page needs `Authorization: Bearer <token>` (or
anonymous reads, or dev mode); a missing or bad token is a 401 before GraphQL runs.
WebSocket: the token comes in connection_init's payload (or the upgrade request's
Authorization header); none closes the socket with 4401, a bad one with 4403, and a
revocation later closes it with 4403 too. A socket that has not sent connection_init within
the init timeout is closed with 4408, on both protocols. Connections beyond the server's cap
are closed with 1013, beyond their token's with 4429. A malformed message is closed with 4400
(graphql-transport-ws) or answered with an `error` message (graphql-ws).
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET

from app.auth.access import AccessControl, MissingCredentials
from app.auth.errors import AuthenticationError
from app.errors import UnavailableError
from app.graphql import ide
from app.graphql.admission import Admission, TooManyConnections
from app.graphql.context import Context
from app.graphql.errors import present
from app.graphql.limits import QueryLimits

log = logging.getLogger("modelgraph.auth")

UNAUTHORIZED, FORBIDDEN, INTERNAL = 4401, 4403, 1011
INIT_TIMEOUT, TOO_MANY, TRY_AGAIN_LATER = 4408, 4429, 1013
TRANSPORT, LEGACY = "graphql-transport-ws", "graphql-ws"
TRANSPORT_TYPES = {"connection_init", "ping", "pong", "subscribe", "complete"}
LEGACY_TYPES = {"connection_init", "connection_terminate", "start", "stop"}
CREDENTIAL_KEYS = ("Authorization", "authorization", "token")


class WebSocketAdapter(ASGIWebSocketAdapter):
    async def close(self, code: int, reason: str) -> None:
        # Strawberry closes every refused connection_init with 4403; a connection that
        # sent no token at all is told 4401 (Unauthorized) instead.
        rejection = self.ws.scope.get("state", {}).get("rejection")
        if code in (FORBIDDEN, INTERNAL) and rejection is not None:
            code, reason = rejection
        await super().close(code, reason)

    async def send_json(self, message: Mapping[str, object]) -> None:
        # The WebSocket protocols are text: browser clients (GraphiQL's, the web UI's) read
        # a binary frame as a Blob and fail. encode_json gives orjson's bytes; send text.
        encoded = self.view.encode_json(message)
        text = encoded.decode() if isinstance(encoded, bytes) else encoded
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def _payload_problem(payload: Any) -> str | None:
    """What is wrong with a subscribe/start payload, if anything."""
    if not isinstance(payload, dict):
        return "'payload' must be an object"
    if not isinstance(payload.get("query"), str):
        return "'payload.query' must be a string"
    for key, kind in (("variables", dict), ("operationName", str), ("extensions", dict)):
        if payload.get(key) is not None and not isinstance(payload[key], kind):
            return f"'payload.{key}' must be {'an object' if kind is dict else 'a string'}"
    return None


def _transport_problem(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in TRANSPORT_TYPES:
        return "'type' must be one of " + ", ".join(sorted(TRANSPORT_TYPES))
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return "'id' must be a string"
    if kind == "subscribe":
        return _payload_problem(message.get("payload"))
    if kind == "connection_init" and not isinstance(message.get("payload") or {}, dict):
        return "'payload' must be an object"
    return None


def _legacy_problem(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in LEGACY_TYPES:
        return "'type' must be one of " + ", ".join(sorted(LEGACY_TYPES))
    if kind in ("start", "stop") and not isinstance(message.get("id"), str):
        return "'id' must be a string"
    if kind == "start":
        return _payload_problem(message.get("payload"))
    return None


class _Guarded:
    """What both protocol handlers add to strawberry's: the connection is counted against
    the caps, registered in its context (so a revocation can end its operations and close
    it), and refused (1013) when the server already holds as many as it allows."""

    protocol: str
    context: Context
    websocket: Any

    async def handle(self) -> None:
        self.context.connection = self
        admission = self.context.admission
        try:
            if admission is not None:
                admission.open_connection()
        except TooManyConnections as refused:
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=_reason(refused))
            return
        try:
            await self.serve()
        finally:
            if admission is not None:
                admission.close_connection(token=self.context.admitted_as)
            if self.context.unwatch is not None:
                self.context.unwatch()

    async def serve(self) -> None:
        await super().handle()  # type: ignore[misc]  # the protocol handler's, next in the MRO

    def count_protocol_error(self) -> None:
        if self.context.metrics is not None:
            self.context.metrics.protocol_errors.labels(self.protocol).inc()

    def count_init_timeout(self) -> None:
        if self.context.metrics is not None:
            self.context.metrics.init_timeouts.labels(self.protocol).inc()

    async def close_revoked(self) -> None:
        for operation_id in list(self.operation_ids()):
            await self.cleanup_operation(operation_id)
        # The client may have gone already; then there is nothing left to close.
        with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, RuntimeError):
            await self.websocket.close(code=FORBIDDEN, reason="Forbidden: token revoked")

    def operation_ids(self) -> list[str]:
        raise NotImplementedError

    if TYPE_CHECKING:
        # Both protocol handlers define it; declared here for the type checker only, since a
        # definition would come first in their MRO and hide theirs.
        async def cleanup_operation(self, operation_id: str) -> None: ...


class TransportWSHandler(_Guarded, BaseGraphQLTransportWSHandler[Context, None]):
    protocol = TRANSPORT

    def operation_ids(self) -> list[str]:
        return list(self.operations)

    async def handle_message(self, message: Any) -> None:
        # Strawberry indexes messages as if well-formed: a payload that is a string, or
        # an id that is a list, would raise out of the connection (a 1006 and a traceback).
        problem = _transport_problem(message)
        if problem is not None:
            await self.handle_invalid_message(f"Invalid message: {problem}")
            return
        if message["type"] == "connection_init" and message.get("payload") is None:
            message = {**message, "payload": {}}  # the protocol allows null: no parameters
        await super().handle_message(message)

    async def handle_invalid_message(self, error_message: str) -> None:
        self.count_protocol_error()
        await super().handle_invalid_message(error_message[:120])

    async def handle_connection_init_timeout(self) -> None:
        await super().handle_connection_init_timeout()
        if self.connection_timed_out:
            self.count_init_timeout()


class LegacyWSHandler(_Guarded, BaseGraphQLWSHandler[Context, None]):
    protocol = LEGACY
    connection_init_received = False

    def operation_ids(self) -> list[str]:
        return list(self.tasks)

    async def serve(self) -> None:
        # The legacy protocol has no init timeout of its own: without one, a socket that
        # never sends connection_init is held for ever.
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().serve()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_init_received:
            self.count_init_timeout()
            with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, RuntimeError):
                await self.websocket.close(
                    code=INIT_TIMEOUT, reason="Connection initialisation timeout"
                )

    async def handle_message(self, message: Any) -> None:
        # As subscriptions-transport-ws does: an `error` message (with the id when there is
        # one), and the connection goes on.
        problem = _legacy_problem(message)
        if problem is None:
            await super().handle_message(message)
            return
        self.count_protocol_error()
        error: dict[str, Any] = {
            "type": "error",
            "payload": {
                "message": f"Invalid message: {problem}",
                "extensions": {"code": "INVALID_MESSAGE"},
            },
        }
        if isinstance(message.get("id"), str):
            error["id"] = message["id"]
        await self.send_message(error)  # type: ignore[arg-type]  # its type wants an id; this may have none

    async def handle_connection_init(self, message: Any) -> None:
        self.connection_init_received = True
        # Strawberry's legacy handler would authenticate again (and start a second
        # keep-alive): one connection is one principal, as graphql-transport-ws has it.
        if self.connection_acknowledged:
            await self.websocket.close(code=TOO_MANY, reason="Too many initialisation requests")
            return
        await super().handle_connection_init(message)


def _reason(refused: TooManyConnections) -> str:
    """A close reason naming the limit (close reasons are at most 123 bytes)."""
    return f"Too many connections ({refused.setting}={refused.limit})"


def _unauthenticated(error: AuthenticationError, request_id: str | None) -> JSONResponse:
    body = {
        "data": None,
        "errors": [
            {"message": error.message, "extensions": {"code": error.code, "requestId": request_id}}
        ],
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _is_ide_page(request: Request) -> bool:
    """GraphiQL's page itself is static HTML; the queries it sends carry the token."""
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self,
        schema: Any,
        *,
        limits: QueryLimits,
        admission: Admission | None = None,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self.limits = limits
        self.admission = admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if not _is_ide_page(request):
                access: AccessControl = request.app.state.access
                try:
                    principal = await access.principal_for(request.headers.get("authorization"))
                except AuthenticationError as error:
                    request.app.state.metrics.auth_failures.labels("http").inc()
                    response = _unauthenticated(error, request.state.request_id)
                    await response(scope, receive, send)
                    return
                request.state.principal = principal
        await super().__call__(scope, receive, send)

    async def render_graphql_ide(self, request: Any) -> Any:
        return ide.page(request)

    async def process_result(self, request: Any, result: Any) -> Any:
        # Errors raised before the operation began (a parse stopped at max_tokens) never
        # met ErrorPolicy; those that did pass through unchanged.
        if result.errors:
            request_id = request.state.request_id
            metrics = request.app.state.metrics
            result.errors = [
                present(e, limits=self.limits, request_id=request_id, metrics=metrics)
                for e in result.errors
            ]
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> bytes:
        """The response body, serialised once by orjson (several times faster than json on
        a 10,000-point history). What orjson cannot write (an integer past 64 bits) falls
        back to json; a non-finite float, which no scalar of ours sends, would be null."""
        try:
            return orjson.dumps(data)
        except TypeError:
            return json.dumps(data, separators=(",", ":")).encode()

    def decode_json(self, data: str | bytes) -> object:
        """JSON, and a JSON object: anything else is the client's mistake (a 400 over HTTP,
        a 4400 close on a WebSocket), never an exception deeper in."""
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError) as exc:  # bad UTF-8, nesting, huge integers
            raise json.JSONDecodeError(f"not JSON: {exc.__class__.__name__}", "", 0) from None
        if not isinstance(decoded, dict):
            raise json.JSONDecodeError("a GraphQL request must be a JSON object", "", 0)
        return decoded

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.app.state
        websocket = isinstance(request, WebSocket)
        return Context(
            db=state.db,
            settings=state.settings,
            bus=state.bus,
            feed=state.feed,
            request=request,
            cache_loaders=not websocket,
            # None on a WebSocket until connection_init, and for GraphiQL's page.
            principal=getattr(request.state, "principal", None),
            request_id=request.state.request_id,
            metrics=state.metrics,
            admission=self.admission,
        )

    async def on_ws_connect(self, context: Context) -> Any:
        websocket: WebSocket = context.request
        state = websocket.app.state
        params = context.connection_params or {}
        credential = next((params[k] for k in CREDENTIAL_KEYS if params.get(k)), None)
        if credential is None:
            credential = websocket.headers.get("authorization")

        async def close() -> None:
            if context.connection is not None:
                await context.connection.close_revoked()

        try:
            if credential is not None and not isinstance(credential, str):
                raise AuthenticationError("the token in connection_init must be a string")
            context.principal, context.unwatch = await state.access.connect(credential, close)
        except AuthenticationError as error:
            state.metrics.auth_failures.labels("websocket").inc()
            code = UNAUTHORIZED if isinstance(error, MissingCredentials) else FORBIDDEN
            websocket.state.rejection = (code, error.message[:120])
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        except UnavailableError as error:
            # The database is down or locked: the client may try again later (1013).
            log.warning("authenticating a WebSocket (request %s): %s", context.request_id, error)
            state.metrics.unavailable.inc()
            websocket.state.rejection = (TRY_AGAIN_LATER, error.message[:120])
            raise ConnectionRejectionError({"message": error.message, "code": error.code}) from None
        except Exception:
            # A bug: say so (1011) with the id the log has.
            log.exception("authenticating a WebSocket failed (request %s)", context.request_id)
            state.metrics.internal_errors.inc()
            message = f"Internal server error (request {context.request_id})."
            websocket.state.rejection = (INTERNAL, message)
            payload: dict[str, object] = {"message": message, "code": "INTERNAL_SERVER_ERROR"}
            raise ConnectionRejectionError(payload) from None
        if context.admission is not None:
            try:
                context.admission.authenticate_connection(context.principal.name)
            except TooManyConnections as refused:
                websocket.state.rejection = (TOO_MANY, _reason(refused))
                rejection: dict[str, object] = {"message": refused.message, "code": refused.code}
                raise ConnectionRejectionError(rejection) from None
            context.admitted_as = context.principal.name
        return UNSET
