"""The MLflow REST face's conventions, in one place: how a request is read, who is asking,
and how a refusal is answered, so that each endpoint module only translates.

MLflow's client sends GET fields as query parameters (a repeated key is a list) and every
other method's fields as a JSON body, DELETE included. It parses proto-JSON answers with
snake_case names and ignores fields it does not know. A refusal is
`{"error_code": ..., "message": ...}` with the status MLflow gives that code: the client
branches on the code (a missing experiment read by name is `None`, an existing registered
model is reused), and it retries every 5xx for minutes, so a client's mistake must never
be answered with one.

    @endpoint("POST", "experiments/create", operation="create_experiment")
    async def create_experiment(call: Call) -> dict[str, Any]:
        name = call.text("name", required=True)
        ...

`operation` names the role the call needs (app.auth.roles), the same names as the GraphQL
operations, so a token may do here exactly what it may do there.
"""

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.auth.errors import AuthenticationError, PermissionDeniedError
from app.auth.roles import Principal, required_role
from app.config import Settings
from app.db import Database
from app.errors import (
    AlreadyExistsError,
    ConflictError,
    DomainError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from app.http.paths import ANY_PATH

log = logging.getLogger("modelgraph.mlflow")

# MLflow's error codes and the statuses its server answers them with.
STATUS: dict[str, int] = {
    "BAD_REQUEST": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
}

# Domain refusals as MLflow codes, the first match wins (subclasses before their bases).
_DOMAIN_CODES: list[tuple[type[DomainError], str]] = [
    (AuthenticationError, "UNAUTHENTICATED"),
    (PermissionDeniedError, "PERMISSION_DENIED"),
    (NotFoundError, "RESOURCE_DOES_NOT_EXIST"),
    (ValidationError, "INVALID_PARAMETER_VALUE"),
    (AlreadyExistsError, "RESOURCE_ALREADY_EXISTS"),
    (ConflictError, "INVALID_STATE"),
    (UnavailableError, "TEMPORARILY_UNAVAILABLE"),
]


class MlflowError(Exception):
    """A refusal made by the face itself (a malformed field, an unsupported option)."""

    def __init__(self, error_code: str, message: str) -> None:
        assert error_code in STATUS, error_code
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.error_code]


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def missing(name: str) -> MlflowError:
    return invalid(
        f"Missing value for required parameter '{name}'. "
        "See the API docs for more information about request parameters."
    )


def error_response(error: MlflowError | DomainError) -> JSONResponse:
    if isinstance(error, MlflowError):
        code, message = error.error_code, error.message
    else:
        code = next(
            (code for kind, code in _DOMAIN_CODES if isinstance(error, kind)),
            "INVALID_PARAMETER_VALUE",
        )
        message = error.message
    headers: dict[str, str] = {}
    if isinstance(error, UnavailableError):
        headers["Retry-After"] = str(error.retry_after)
    if code == "UNAUTHENTICATED":
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error_code": code, "message": message}, STATUS[code], headers=headers)


@dataclass
class Call:
    """One request to an endpoint: its fields, who sent it, and the app's state."""

    request: Request
    principal: Principal
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.request.app.state

    @property
    def db(self) -> Database:
        database: Database = self.state.db
        return database

    @property
    def settings(self) -> Settings:
        settings: Settings = self.state.settings
        return settings

    @property
    def path_params(self) -> dict[str, Any]:
        return dict(self.request.path_params)

    def _one(self, name: str) -> Any:
        value = self.fields.get(name)
        if isinstance(value, list) and self.request.method == "GET":
            # A repeated query parameter where one value is expected: the last wins, as
            # MLflow's server reads it.
            return value[-1] if value else None
        return value

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._one(name)
        if value is None or (required and value == ""):
            if required:
                raise missing(name)
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid(f"Invalid value {_show(value)} for parameter '{name}': a string")
        return str(value)

    def required_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(
        self, name: str, *, required: bool = False, default: int | None = None
    ) -> int | None:
        """An int64 as MLflow sends it: a JSON number or a decimal string."""
        value = self._one(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return default
        if isinstance(value, bool):
            raise invalid(f"Invalid value {_show(value)} for parameter '{name}': an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise invalid(f"Invalid value {_show(value)} for parameter '{name}': an integer")

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A double as proto-JSON spells it: a number, or "NaN", "Infinity", "-Infinity"."""
        value = self._one(name)
        if value is None:
            if required:
                raise missing(name)
            return None
        return to_double(value, name)

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self._one(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"Invalid value {_show(value)} for parameter '{name}': true or false")

    def texts(self, name: str) -> list[str]:
        """A repeated string field: a JSON list, or a query parameter given 0..n times."""
        value = self.fields.get(name)
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise invalid(f"Invalid value {_show(item)} in parameter '{name}': strings")
        return values

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A repeated message field: a JSON list of objects."""
        value = self.fields.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise invalid(f"Invalid value for parameter '{name}': a list of objects")
        return value

    def run_id(self) -> str:
        """The run a run-scoped call is about: the client sends `run_id` and the older
        `run_uuid`, and either alone is accepted."""
        value = self.text("run_id") or self.text("run_uuid")
        if not value:
            raise missing("run_id")
        return value


def to_double(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise invalid(f"Invalid value {_show(value)} for parameter '{name}': a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}
        if value.strip().lower() in special:
            return special[value.strip().lower()]
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"Invalid value {_show(value)} for parameter '{name}': a number")


def double(value: float | None) -> float | str | None:
    """A double for a proto-JSON answer: JSON has no NaN or infinities, proto-JSON spells
    them as strings (which MLflow's client reads back as floats)."""
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def millis(moment: Any) -> int | None:
    """A datetime as MLflow's epoch milliseconds."""
    if moment is None:
        return None
    return int(moment.timestamp() * 1000)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _unstorable(value: Any, path: str) -> str | None:
    """The first field holding a string neither database can store (a lone surrogate from a
    JSON escape such as "\\ud800"), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(key, path) or _unstorable(item, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None


async def read_fields(request: Request, *, body: bool = True) -> dict[str, Any]:
    """The call's fields: query parameters for GET (and for a raw-body endpoint), the JSON
    body otherwise (an empty body is no fields)."""
    fields: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    if body and request.method != "GET":
        raw = await request.body()
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (ValueError, RecursionError):
                raise MlflowError("BAD_REQUEST", "the request body is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise MlflowError("BAD_REQUEST", "the request body must be a JSON object")
            # A lone surrogate can only come from a \uD8xx-\uDFxx escape or from bytes
            # ED A0-BF (json.loads passes them through): the walk over every string (about
            # as long as the parse itself for a log-batch) runs only when the body has one
            # of those. Query strings are decoded with replacement and cannot hold one.
            if b"\\ud" in raw or b"\\uD" in raw or b"\xed" in raw:
                bad = _unstorable(parsed, "")
                if bad is not None:
                    raise invalid(f"Invalid value for parameter '{bad}': a lone UTF-16 surrogate")
            fields.update(parsed)
    return fields


Handler = Callable[[Call], Awaitable[dict[str, Any] | Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    operation: str
    api: str
    service: str
    raw_body: bool
    handler: Handler

    @property
    def paths(self) -> list[str]:
        return [f"/{root}/{self.api}/{self.service}/{self.path}" for root in ("api", "ajax-api")]


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    path: str,
    *,
    operation: str,
    api: str = "2.0",
    service: str = "mlflow",
    raw_body: bool = False,
) -> Callable[[Handler], Handler]:
    """Register `handler` for `method /api/<api>/<service>/<path>` (and under /ajax-api,
    where MLflow's own UI calls). `path` may hold Starlette parameters
    ("logged-models/{model_id}"). With raw_body the body is left for the handler to
    stream, and only the query parameters become fields."""
    required_role(operation)  # an operation no role table lists fails at import

    def register(handler: Handler) -> Handler:
        ENDPOINTS.append(Endpoint(method.upper(), path, operation, api, service, raw_body, handler))
        return handler

    return register


async def _dispatch(request: Request, by_method: dict[str, Endpoint]) -> Response:
    chosen = by_method.get(request.method)
    if chosen is None and request.method == "HEAD":
        chosen = by_method.get("GET")
    if chosen is None:
        return error_response(
            MlflowError("ENDPOINT_NOT_FOUND", f"{request.method} is not served at this path")
        )
    try:
        principal: Principal = await request.app.state.access.authorize(
            request.headers.get("authorization"), chosen.operation
        )
        fields = await read_fields(request, body=not chosen.raw_body)
        answer = await chosen.handler(Call(request, principal, fields))
    except (MlflowError, DomainError) as error:
        return error_response(error)
    except Exception:
        # A bug: logged with its request id, counted, and answered in MLflow's shape.
        request_id = uuid.uuid4().hex
        request.app.state.metrics.internal_errors.inc()
        log.exception("unhandled error in %s %s (%s)", request.method, request.url.path, request_id)
        body = {"error_code": "INTERNAL_ERROR", "message": f"Internal error ({request_id})"}
        return JSONResponse(body, 500)
    if isinstance(answer, Response):
        return answer
    return JSONResponse(answer)


async def _not_found(request: Request) -> Response:
    return error_response(
        MlflowError(
            "ENDPOINT_NOT_FOUND",
            f"No API endpoint {request.method} {request.url.path} on this server",
        )
    )


def routes(endpoints: list[Endpoint]) -> list[Route]:
    """One Route per path serving every method registered for it, then a catch-all under
    each API root that answers ENDPOINT_NOT_FOUND in MLflow's shape."""
    grouped: dict[str, dict[str, Endpoint]] = {}
    for registered in endpoints:
        for path in registered.paths:
            methods = grouped.setdefault(path, {})
            if registered.method in methods:
                raise ValueError(f"{registered.method} {path} registered twice")
            methods[registered.method] = registered
    # Literal paths before parameterised ones: "logged-models/search" is not a model id.
    ordered = sorted(grouped.items(), key=lambda item: ("{" in item[0], item[0]))
    # Every method reaches the dispatcher, which answers one not served in MLflow's shape.
    served = [Route(path, _handler_for(methods), methods=_ALL) for path, methods in ordered]
    roots = sorted(
        {f"/{root}/{e.api}/{e.service}/" for e in endpoints for root in ("api", "ajax-api")}
    )
    # Any path, line breaks included: MLflow's shape for whatever no endpoint serves.
    catch_all = [Route(root + f"{{rest:{ANY_PATH}}}", _not_found, methods=_ALL) for root in roots]
    return [*served, *catch_all]


_ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _handler_for(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await _dispatch(request, methods)

    return handle
