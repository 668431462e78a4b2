"""Typed refusals for mutation payloads, and masking of everything that is a bug."""

import logging
import re
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app import errors as domain
from app.auth.errors import PermissionDeniedError
from app.graphql.limits import QueryLimits, limit_error_facts

log = logging.getLogger("modelgraph.graphql")


@strawberry.interface(description="A refusal: the request was understood and declined.")
class Error:
    message: str
    code: str = strawberry.field(description="Stable machine-readable code.")


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


class _Handler:
    def handle(self, exception: Any, *, field: Any, info: Any) -> Any:
        return self.convert(exception)


class NotFoundHandler(_Handler, strawberry.ExceptionHandler[domain.NotFoundError, NotFound]):
    @staticmethod
    def convert(e: domain.NotFoundError) -> NotFound:
        return NotFound(message=e.message, code=e.code, field=e.field, value=e.value)


class InvalidInputHandler(
    _Handler, strawberry.ExceptionHandler[domain.ValidationError, InvalidInput]
):
    @staticmethod
    def convert(e: domain.ValidationError) -> InvalidInput:
        return InvalidInput(message=e.message, code=e.code, field=e.field, limit=e.limit)


class AlreadyExistsHandler(
    _Handler, strawberry.ExceptionHandler[domain.AlreadyExistsError, AlreadyExists]
):
    @staticmethod
    def convert(e: domain.AlreadyExistsError) -> AlreadyExists:
        return AlreadyExists(message=e.message, code=e.code, field=e.field, value=e.value)


class ConflictHandler(_Handler, strawberry.ExceptionHandler[domain.ConflictError, Conflict]):
    @staticmethod
    def convert(e: domain.ConflictError) -> Conflict:
        return Conflict(
            message=e.message, code=e.code, field=e.field, expected=e.expected, actual=e.actual
        )


class PermissionDeniedHandler(
    _Handler, strawberry.ExceptionHandler[PermissionDeniedError, PermissionDenied]
):
    @staticmethod
    def convert(e: PermissionDeniedError) -> PermissionDenied:
        return PermissionDenied(
            message=e.message,
            code=e.code,
            operation=e.operation,
            required_role=e.required.value,
            role=e.role.value,
        )


HANDLERS = [
    NotFoundHandler(),
    InvalidInputHandler(),
    AlreadyExistsHandler(),
    ConflictHandler(),
    PermissionDeniedHandler(),
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
            extensions={"code": "BAD_REQUEST"},
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
            extensions={"code": "INVALID_INPUT"},
        )
    log.error("unexpected error at %s (request %s)", error.path, request_id, exc_info=original)
    if metrics is not None:
        metrics.internal_errors.inc()
    return GraphQLError(
        f"Internal server error (request {request_id}).",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
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
