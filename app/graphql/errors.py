"""Typed refusals for mutation payloads, and masking of everything that is a bug."""

import logging
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any, Generic, TypeVar, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app import errors as domain
from app.auth.errors import PermissionDeniedError
from app.errors import ErrorCode
from app.graphql.limits import QueryLimits, limit_error_facts

log = logging.getLogger("modelgraph.graphql")
E = TypeVar("E", bound=Exception)
T = TypeVar("T")


class RequestErrorCode(StrEnum):
    """Codes of requests refused before or around execution: limits, malformed documents
    and messages, masked bugs. They appear only in a top-level error's extensions.code."""

    QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    TOO_MANY_FIELDS = "TOO_MANY_FIELDS"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    INTROSPECTION_TOO_DEEP = "INTROSPECTION_TOO_DEEP"
    TOO_MANY_ERRORS = "TOO_MANY_ERRORS"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_REQUEST = "BAD_REQUEST"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


# Clients switch on one list, so the published enum is the domain's codes followed by the
# request codes; the enum's functional form keeps each list written once.
_make_enum = cast(Callable[..., type[StrEnum]], StrEnum)
ErrorCodeEnum = strawberry.enum(
    _make_enum("ErrorCode", [(c.name, c.value) for c in (*ErrorCode, *RequestErrorCode)]),
    name="ErrorCode",
    description="Every code a client can be given. A payload's `Error.code` is one of the "
    "refusals (NOT_FOUND through TOO_MANY_CONNECTIONS). A top-level error's "
    "`extensions.code` is a refusal met outside a payload (SERVICE_UNAVAILABLE, "
    "UNAUTHENTICATED, PERMISSION_DENIED on a query, INVALID_INPUT in an argument, "
    "SLOW_CONSUMER and the caps on a subscription), or the request's own: its limits "
    "(QUERY_TOO_LARGE through REQUEST_TOO_LARGE, with `limit`), a document or message that "
    "cannot be read (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, BAD_REQUEST, "
    "INVALID_MESSAGE), or INTERNAL_SERVER_ERROR for a bug, masked, with `requestId`.",
)


@strawberry.interface(description="A refusal: the request was understood and declined.")
class Error:
    message: str
    code: ErrorCode = strawberry.field(
        graphql_type=ErrorCodeEnum, description="Stable machine-readable code."
    )


@strawberry.type(description="Something named in the input does not exist.")
class NotFound(Error):
    field: str = strawberry.field(description="The input field that named it.")
    value: str


@strawberry.type(description="An input value breaks a rule or a limit.")
class InvalidInput(Error):
    field: str
    limit: int | None = strawberry.field(description="The limit broken, where there is one.")


@strawberry.type(description="The thing to create exists already.")
class AlreadyExists(Error):
    field: str
    value: str


@strawberry.type(description="The request contradicts stored state; read it again and retry.")
class Conflict(Error):
    field: str
    expected: str | None = strawberry.field(description="What the request expected, if it said.")
    actual: str | None = strawberry.field(description="What is stored now.")


@strawberry.type(description="The token's role does not include the one this operation needs.")
class PermissionDenied(Error):
    operation: str
    required_role: str = strawberry.field(description="The least role that may do this.")
    role: str = strawberry.field(description="The role of the token that asked.")


class Refusal(Generic[E, T]):
    """The ExceptionHandler turning a domain error into its GraphQL type. Strawberry
    applies it only to fields whose union has that type (see app/graphql/payloads.py)."""

    def __init__(self, exception_type: type[E], error_type: type[T], convert: Callable[[E], T]):
        self.exception_type = exception_type
        self.error_type = error_type
        self.convert = convert

    def handle(self, exception: E, *, field: Any, info: Any) -> T:
        return self.convert(exception)


HANDLERS: list[Refusal[Any, Any]] = [
    Refusal(
        domain.NotFoundError,
        NotFound,
        lambda e: NotFound(message=e.message, code=e.code, field=e.field, value=e.value),
    ),
    Refusal(
        domain.ValidationError,
        InvalidInput,
        lambda e: InvalidInput(message=e.message, code=e.code, field=e.field, limit=e.limit),
    ),
    Refusal(
        domain.AlreadyExistsError,
        AlreadyExists,
        lambda e: AlreadyExists(message=e.message, code=e.code, field=e.field, value=e.value),
    ),
    Refusal(
        domain.ConflictError,
        Conflict,
        lambda e: Conflict(
            message=e.message, code=e.code, field=e.field, expected=e.expected, actual=e.actual
        ),
    ),
    Refusal(
        PermissionDeniedError,
        PermissionDenied,
        lambda e: PermissionDenied(
            message=e.message,
            code=e.code,
            operation=e.operation,
            required_role=e.required.value,
            role=e.role.value,
        ),
    ),
]


# graphql-core's words for a literal or variable that did not coerce: the client's mistake.
_COERCION = ("Expected value of type", "Variable '$")
# A built-in scalar's Python error (an integer of thousands of digits) says nothing useful.
_UNREADABLE = (ValueError, TypeError, OverflowError)
MESSAGE_LIMIT = 300


def present(
    error: GraphQLError, *, limits: QueryLimits, request_id: str | None, metrics: Any = None
) -> GraphQLError:
    """The error as a client may see it: refusals keep their message and gain a code and
    facts (graphql-core's own limit errors our codes); a bug is logged with the request
    id and masked, the client getting the id."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        if "code" not in (error.extensions or {}) and (
            facts := limit_error_facts(error.message, limits)
        ):
            error.extensions = {**(error.extensions or {}), **facts}
        return error
    if isinstance(original, domain.DomainError):
        counted = "code" in (error.extensions or {})  # errors may pass here twice
        if isinstance(original, domain.UnavailableError) and not counted:
            # The server's condition, not a bug: counted apart, the cause in the log.
            log.warning("unavailable at %s (request %s): %s", error.path, request_id, original)
            if metrics is not None:
                metrics.unavailable.inc()
        facts = {k: v for k, v in original.facts.items() if v is not None}
        error.extensions = {**(error.extensions or {}), "code": original.code, **facts}
        return error
    if isinstance(original, (InvalidOperationTypeError, CannotGetOperationTypeError)):
        # A query sent where only subscriptions are served (legacy graphql-ws), or an
        # operationName that names nothing: the client's request, not a bug.
        return GraphQLError(
            "this transport does not serve that operation (or operationName matches none)",
            nodes=error.nodes,
            extensions={"code": RequestErrorCode.BAD_REQUEST},
        )
    if (
        error.path is None
        and isinstance(original, _UNREADABLE)
        and error.message.startswith(_COERCION)
    ):
        # "Expected value of type 'Int', but encountered error '<Python's words>'": keep
        # what was expected, drop the words.
        head = re.split(r"; |, but encountered", error.message, maxsplit=1)[0]
        if len(head) > MESSAGE_LIMIT:
            head = head[:MESSAGE_LIMIT] + "..."
        return GraphQLError(
            f"{head}; the value cannot be read",
            nodes=error.nodes,
            extensions={"code": ErrorCode.INVALID_INPUT},
        )
    log.error("unexpected error at %s (request %s)", error.path, request_id, exc_info=original)
    if metrics is not None:
        metrics.internal_errors.inc()
    return GraphQLError(
        f"Internal server error (request {request_id}).",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": RequestErrorCode.INTERNAL_SERVER_ERROR, "requestId": request_id},
    )


class ErrorPolicy(SchemaExtension):
    """Every result's errors pass through `present`: refusals keep their message and gain
    `extensions.code` and facts; anything else is a bug, logged and masked."""

    def __init__(self, limits: QueryLimits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        yield
        self._process_result(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Each result of a subscription (WebSocket) passes here, not through on_operation.
        self._process_result(result)
        yield

    def _process_result(self, result: Any) -> None:
        if result is not None and getattr(result, "errors", None):
            context = self.execution_context.context
            request_id = getattr(context, "request_id", None)
            metrics = getattr(context, "metrics", None)
            result.errors = [
                present(e, limits=self.limits, request_id=request_id, metrics=metrics)
                for e in result.errors
            ]
