"""The MLflow face's conventions, on endpoints registered for this test alone: how fields
are read, how refusals and bugs are answered, and who may call what."""

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.auth.roles import Role
from app.errors import AlreadyExistsError, NotFoundError, ValidationError
from app.mlflow import wire
from app.mlflow.wire import Call, Endpoint
from tests.conftest import asgi_client, make_token


async def _echo(call: Call) -> dict[str, Any]:
    return {
        "fields": call.fields,
        "name": call.text("name"),
        "count": call.integer("count"),
        "value": wire.double(call.number("value")),
        "flag": call.boolean("flag"),
        "ids": call.texts("ids"),
        "actor": call.principal.actor,
    }


async def _required(call: Call) -> dict[str, Any]:
    return {"run_id": call.run_id(), "name": call.required_text("name")}


async def _refuse(call: Call) -> dict[str, Any]:
    kind = call.required_text("kind")
    if kind == "missing":
        raise NotFoundError("Experiment", "experiment_id", "42")
    if kind == "exists":
        raise AlreadyExistsError("Experiment", "name", "a")
    raise ValidationError("key", "must be at most 250 characters", limit=250)


async def _bug(call: Call) -> dict[str, Any]:
    raise RuntimeError("secret internals")


def _endpoints() -> list[Endpoint]:
    made = []
    for method in ("GET", "POST", "DELETE"):
        made.append(Endpoint(method, "echo", "experiment", "2.0", "mlflow", False, _echo))
    made += [
        Endpoint("POST", "required", "experiment", "2.0", "mlflow", False, _required),
        Endpoint("POST", "refuse", "experiment", "2.0", "mlflow", False, _refuse),
        Endpoint("POST", "write", "create_experiment", "2.0", "mlflow", False, _echo),
        Endpoint("POST", "bug", "experiment", "2.0", "mlflow", False, _bug),
    ]
    return made


@pytest.fixture
async def face(app: Any, admin_secret: str) -> AsyncIterator[httpx.AsyncClient]:
    app.router.routes[0:0] = wire.routes(_endpoints())
    async with asgi_client(app, admin_secret) as http:
        yield http


async def test_get_reads_query_parameters_and_repeats_as_lists(face: httpx.AsyncClient) -> None:
    response = await face.get(
        "/api/2.0/mlflow/echo",
        params=[("name", "a"), ("count", "7"), ("flag", "true"), ("ids", "1"), ("ids", "2")],
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "a"
    assert body["count"] == 7
    assert body["flag"] is True
    assert body["ids"] == ["1", "2"]
    assert body["actor"] == "test-admin"


async def test_post_and_delete_read_the_json_body(face: httpx.AsyncClient) -> None:
    body = {"name": "b", "count": "12", "value": "NaN", "ids": ["x"]}
    posted = (await face.post("/api/2.0/mlflow/echo", json=body)).json()
    assert (posted["name"], posted["count"], posted["value"], posted["ids"]) == (
        "b",
        12,
        "NaN",
        ["x"],
    )
    deleted = await face.request("DELETE", "/api/2.0/mlflow/echo", json={"name": "c"})
    assert deleted.json()["name"] == "c"
    # The same endpoints answer under /ajax-api, where MLflow's own UI calls them.
    assert (await face.post("/ajax-api/2.0/mlflow/echo", json={"name": "d"})).json()["name"] == "d"


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"name": "x"}, 400, "INVALID_PARAMETER_VALUE", "'run_id'"),
        ({"run_uuid": "r"}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ({"run_id": "r", "name": 5.5}, 200, None, None),
        ({"run_id": ["r"], "name": "x"}, 400, "INVALID_PARAMETER_VALUE", "'run_id'"),
    ],
)
async def test_required_and_typed_fields(
    face: httpx.AsyncClient, body: dict[str, Any], status: int, code: str | None, words: str | None
) -> None:
    response = await face.post("/api/2.0/mlflow/required", json=body)
    assert response.status_code == status
    if code:
        assert response.json()["error_code"] == code
        assert words in response.json()["message"]


async def test_numbers_and_booleans_are_checked(face: httpx.AsyncClient) -> None:
    for body, field in [
        ({"count": "seven"}, "count"),
        ({"count": True}, "count"),
        ({"value": "high"}, "value"),
        ({"flag": "yes"}, "flag"),
        ({"ids": [1]}, "ids"),
    ]:
        response = await face.post("/api/2.0/mlflow/echo", json=body)
        assert response.status_code == 400, body
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert f"'{field}'" in response.json()["message"]


async def test_malformed_bodies_are_bad_requests(face: httpx.AsyncClient) -> None:
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"[" * 100_000):
        response = await face.post(
            "/api/2.0/mlflow/echo", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"tags": [{"key": "a", "value": "\\ud800"}]}',
        b'{"tags": [{"key": "a", "value": "x\\uDFFF"}]}',
        # the surrogate's own bytes, which json.loads lets through
        b'{"tags": [{"key": "a", "value": "\xed\xa0\x80"}]}',
    ],
)
async def test_a_lone_surrogate_is_refused_by_field(face: httpx.AsyncClient, raw: bytes) -> None:
    response = await face.post(
        "/api/2.0/mlflow/echo", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "tags[0].value" in response.json()["message"]


async def test_escapes_and_hangul_that_are_no_surrogates_pass(face: httpx.AsyncClient) -> None:
    raw = '{"name": "\\ud7ff \\u00e9 \ud55c"}'.encode()
    response = await face.post(
        "/api/2.0/mlflow/echo", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "\ud7ff \u00e9 \ud55c"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("missing", 404, "RESOURCE_DOES_NOT_EXIST"),
        # MLflow answers an existing resource with 400, and its client relies on the code.
        ("exists", 400, "RESOURCE_ALREADY_EXISTS"),
        ("limit", 400, "INVALID_PARAMETER_VALUE"),
    ],
)
async def test_domain_refusals_keep_mlflows_codes(
    face: httpx.AsyncClient, kind: str, status: int, code: str
) -> None:
    response = await face.post("/api/2.0/mlflow/refuse", json={"kind": kind})
    assert response.status_code == status
    assert response.json()["error_code"] == code


async def test_unknown_endpoints_and_methods(face: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/2.0/mlflow/nothing/here"),
        ("PUT", "/api/2.0/mlflow/echo"),
        ("GET", "/api/2.0/mlflow/required"),
        ("POST", "/api/2.0/mlflow/line%0Abreak"),
    ]:
        response = await face.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


async def test_a_bug_is_an_internal_error_without_details(
    app: Any, face: httpx.AsyncClient
) -> None:
    before = app.state.metrics.internal_errors._value.get()
    response = await face.post("/api/2.0/mlflow/bug", json={})
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "secret" not in response.text
    assert app.state.metrics.internal_errors._value.get() == before + 1


async def test_tokens_and_roles_apply(app: Any, face: httpx.AsyncClient, db: Any) -> None:
    async with asgi_client(app) as anonymous:
        response = await anonymous.post("/api/2.0/mlflow/echo", json={})
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    reader = await make_token(app.state.db, "reader", Role.READER)
    async with asgi_client(app, reader) as http:
        assert (await http.post("/api/2.0/mlflow/echo", json={})).status_code == 200
        refused = await http.post("/api/2.0/mlflow/write", json={})
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"


def test_doubles_out_follow_proto_json() -> None:
    assert wire.double(math.nan) == "NaN"
    assert wire.double(math.inf) == "Infinity"
    assert wire.double(-math.inf) == "-Infinity"
    assert wire.double(0.5) == 0.5


def test_an_operation_no_role_table_lists_fails_at_registration() -> None:
    with pytest.raises(KeyError):
        wire.endpoint("GET", "x", operation="no_such_operation")
