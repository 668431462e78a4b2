"""The logged-model endpoints and the artifact proxy fuzzed: well-shaped and ill-shaped
requests never make the server fail badly. Every answer is below 500; a refusal is
MLflow's `{"error_code", "message"}` with the status MLflow gives its code and no internal
detail; the server logs no error; afterwards the database passes the integrity check.

Requests go in process to the ASGI app (the `client` fixture) from Hypothesis's worker
thread onto the test's event loop. Values mix the ids of seeded rows (so requests reach
the services) with junk of every JSON type."""

import asyncio
import os
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from app.db import Database
from app.tracking import logged_models
from app.tracking.logged_model_models import LoggedModelStatus
from tests.factories import make_run
from tests.integrity import integrity_problems
from tests.mlflow.fuzzing import ErrorLog, encode, problems, query_params

pytestmark = pytest.mark.slow

SEED = os.environ.get("MODELGRAPH_FUZZ_SEED")
SCALE = float(os.environ.get("MODELGRAPH_FUZZ_SCALE", "1"))

# (method, path with {model_id} / {key} / {path}, fields it reads)
ENDPOINTS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "POST",
        "/api/2.0/mlflow/logged-models",
        ("experiment_id", "name", "source_run_id", "model_type", "params", "tags"),
    ),
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}", ("allow_deleted",)),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}", ("model_id", "status")),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}", ("model_id",)),
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}/tags", ("tags",)),
    ("DELETE", "/api/2.0/mlflow/logged-models/{model_id}/tags/{key}", ()),
    ("POST", "/api/2.0/mlflow/logged-models/{model_id}/params", ("params",)),
    (
        "POST",
        "/api/2.0/mlflow/logged-models/search",
        ("experiment_ids", "filter", "datasets", "max_results", "order_by", "page_token"),
    ),
    ("POST", "/api/2.0/mlflow/runs/outputs", ("run_id", "models")),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts", ("path",)),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{path}", ()),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{path}", ()),
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{path}", ()),
    ("GET", "/api/3.0/mlflow/server-info", ()),
]

KNOWN: dict[str, list[Any]] = {"run_id": [], "experiment_id": ["0"], "model_id": []}
FILTERS = [
    "name = 'model'",
    "metrics.acc > 0.5 AND params.C = '1'",
    "tags.team LIKE 'a%'",
    "status IN ('LOGGED_MODEL_READY', 'LOGGED_MODEL_PENDING')",
    "creation_timestamp > 1e30",
    "creation_timestamp < nan",
    "name = 'a' OR name = 'b'",
    "metrics.acc >",
    "model_type NOT ILIKE '%x%'",
    "tags.`mlflow.modelVersions` != 'x''y'",
]
ORDER_FIELDS = ["name", "creation_timestamp", "metrics.acc", "params.C", "bogus", ""]
STATUSES = ["LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_PENDING", 2, 7]

texts = st.text(max_size=40) | st.text(max_size=400)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["NaN", "Infinity", "1e999", "12abc"])
)
scalars = st.none() | st.booleans() | numbers | texts
junk = scalars | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=2)
key_values = st.lists(
    st.fixed_dictionaries({"key": scalars, "value": scalars})
    | st.fixed_dictionaries({"key": st.sampled_from(["C", "team", "a.b", "x/y"]), "value": texts}),
    max_size=4,
)
orders = st.lists(
    st.fixed_dictionaries(
        {"field_name": st.sampled_from(ORDER_FIELDS) | scalars},
        optional={"ascending": scalars, "dataset_name": scalars},
    ),
    max_size=3,
)


def model_ids() -> st.SearchStrategy[Any]:
    return st.sampled_from(KNOWN["model_id"]) | st.sampled_from(["m-" + "0" * 32, "m-x", ""])


def value_for(field: str) -> st.SearchStrategy[Any]:
    known: dict[str, st.SearchStrategy[Any]] = {
        "experiment_id": st.sampled_from(KNOWN["experiment_id"]),
        "experiment_ids": st.lists(st.sampled_from(KNOWN["experiment_id"]), max_size=3),
        "source_run_id": st.sampled_from(KNOWN["run_id"]),
        "run_id": st.sampled_from(KNOWN["run_id"]),
        "model_id": model_ids(),
        "params": key_values,
        "tags": key_values,
        "status": st.sampled_from(STATUSES),
        "filter": st.sampled_from(FILTERS),
        "order_by": orders,
        "max_results": st.integers(min_value=-5, max_value=2000),
        "page_token": st.sampled_from(["eyJvZmZzZXQiOiAxfQ==", "eyJvZmZzZXQiOiAtMX0=", "%%"]),
        "models": st.lists(
            st.fixed_dictionaries({"model_id": model_ids() | scalars, "step": numbers}),
            max_size=3,
        ),
        "path": st.sampled_from(KNOWN["path"]) if KNOWN.get("path") else texts,
    }
    return known[field] | junk if field in known else junk


def artifact_paths() -> st.SearchStrategy[str]:
    shapes = st.sampled_from(KNOWN["path"])
    tails = st.sampled_from(["", "MLmodel", "a/b.txt", "a", "%2E%2E/x", "a%0Ab", "a//b"])
    return st.tuples(shapes, tails).map(lambda p: f"{p[0]}/{p[1]}".strip("/")) | st.text(
        min_size=1, max_size=60
    ).map(lambda t: quote(t, safe="/"))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], bytes | None]:
    method, path, fields = draw(st.sampled_from(ENDPOINTS))
    if "{model_id}" in path:
        path = path.replace("{model_id}", quote(draw(model_ids()), safe="") or "x")
    if "{key}" in path:
        path = path.replace("{key}", quote(draw(st.sampled_from(["team", "x/y"]) | texts)) or "k")
    if "{path}" in path:
        path = path.replace("{path}", draw(artifact_paths()))
    chosen = (
        draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields))) if fields else []
    )
    values = {name: draw(value_for(name)) for name in chosen}
    body = draw(st.binary(max_size=64)) if method == "PUT" else None
    return method, path, values, body


async def seed_rows(db: Database) -> None:
    run = await make_run(db, experiment="exp", metrics={"acc": 0.9})
    async with db.unit_of_work() as session:
        ready = await logged_models.create_logged_model(
            session,
            experiment_id=run.experiment_id,
            name="model",
            source_run_id=run.id,
            params={"C": "1"},
            tags={"team": "a"},
            actor="t",
        )
        await logged_models.log_outputs(session, run_id=run.id, outputs=[(ready.id, 0)], actor="t")
        await logged_models.finalize_logged_model(
            session, model_id=ready.id, status=LoggedModelStatus.READY, actor="t"
        )
        pending = await logged_models.create_logged_model(
            session, experiment_id=run.experiment_id, name="pending", actor="t"
        )
    exp = run.experiment_id
    KNOWN["run_id"] = [run.id, "f" * 32, ""]
    KNOWN["experiment_id"] = ["0", str(exp), "999999", "-1", "x"]
    KNOWN["model_id"] = [ready.id, pending.id]
    KNOWN["path"] = [
        f"{exp}/{run.id}/artifacts",
        f"{exp}/models/{ready.id}/artifacts",
        f"{exp}/models/{pending.id}/artifacts",
        f"999/models/{ready.id}/artifacts",
        "registry/1/1/artifacts",
        f"registry/{2**40}/1/artifacts",
        str(exp),
    ]


async def test_logged_model_and_artifact_endpoints_never_fail_badly(
    db: Database, client: httpx.AsyncClient, errors: ErrorLog
) -> None:
    await seed_rows(db)
    loop = asyncio.get_running_loop()
    sent = 0

    async def exchange(
        method: str, path: str, fields: dict[str, Any], body: bytes | None
    ) -> httpx.Response:
        if method == "GET":
            return await client.get(path, params=query_params(fields))
        if method == "PUT":
            return await client.put(path, content=body or b"")
        return await client.request(
            method, path, content=encode(fields), headers={"Content-Type": "application/json"}
        )

    def example(case: tuple[str, str, dict[str, Any], bytes | None]) -> None:
        nonlocal sent
        errors.records.clear()
        response = asyncio.run_coroutine_threadsafe(exchange(*case), loop).result(timeout=120)
        sent += 1
        found = problems(response, bytes_ok=True) + [
            f"logged: {r.getMessage()}" for r in errors.records
        ]
        assert not found, f"{case!r} -> {response.status_code} {response.text[:300]}"

    prop = settings(
        max_examples=max(1, round(500 * SCALE)),
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(calls())(example))
    if SEED is not None:
        prop = seed(int(SEED))(prop)
    await asyncio.to_thread(prop)

    assert sent >= 500 * SCALE
    assert await integrity_problems(db) == []
