"""The MLflow tracking face fuzzed: well-shaped and ill-shaped requests to every tracking
endpoint never make the server fail badly. Every answer is below 500; a refusal is
MLflow's `{"error_code", "message"}` with the status MLflow gives its code and no
internal detail; the server logs no error; afterwards the database passes the integrity
check.

Requests go in process to the ASGI app (the `client` fixture), from Hypothesis's worker
thread onto the test's event loop, as in tests/graphql/test_fuzz.py. Field values mix the
names and ids of seeded rows (so many requests reach the services) with junk of every
JSON type."""

import asyncio
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from app.db import Database
from tests.factories import make_run
from tests.integrity import integrity_problems
from tests.mlflow.fuzzing import ErrorLog, encode, problems, query_params

pytestmark = pytest.mark.slow

SEED = os.environ.get("MODELGRAPH_FUZZ_SEED")
SCALE = float(os.environ.get("MODELGRAPH_FUZZ_SCALE", "1"))
ROOT = "/api/2.0/mlflow/"

# Each tracking endpoint with the fields it reads.
ENDPOINTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "experiments/get-by-name", ("experiment_name",)),
    ("GET", "experiments/get", ("experiment_id",)),
    ("POST", "experiments/create", ("name", "tags", "artifact_location")),
    (
        "POST",
        "experiments/search",
        ("max_results", "filter", "order_by", "view_type", "page_token"),
    ),
    ("POST", "experiments/delete", ("experiment_id",)),
    ("POST", "experiments/restore", ("experiment_id",)),
    ("POST", "experiments/update", ("experiment_id", "new_name")),
    ("POST", "experiments/set-experiment-tag", ("experiment_id", "key", "value")),
    ("POST", "experiments/delete-experiment-tag", ("experiment_id", "key")),
    ("POST", "runs/create", ("experiment_id", "user_id", "run_name", "start_time", "tags")),
    ("GET", "runs/get", ("run_id", "run_uuid")),
    ("POST", "runs/update", ("run_id", "run_uuid", "status", "end_time", "run_name")),
    ("POST", "runs/delete", ("run_id",)),
    ("POST", "runs/restore", ("run_id",)),
    ("POST", "runs/log-parameter", ("run_id", "run_uuid", "key", "value")),
    ("POST", "runs/log-metric", ("run_id", "key", "value", "timestamp", "step")),
    ("POST", "runs/log-batch", ("run_id", "metrics", "params", "tags")),
    ("POST", "runs/set-tag", ("run_id", "key", "value")),
    ("POST", "runs/delete-tag", ("run_id", "key")),
    ("POST", "runs/log-inputs", ("run_id", "datasets")),
    (
        "POST",
        "runs/search",
        ("experiment_ids", "filter", "run_view_type", "max_results", "order_by", "page_token"),
    ),
    ("GET", "metrics/get-history", ("run_id", "metric_key", "max_results", "page_token")),
]

# Filled by the seed: ids that exist, so requests reach the services.
KNOWN: dict[str, list[Any]] = {"run_id": [], "experiment_id": ["0"]}
WORDS = ["exp", "Default", "acc", "loss", "lr", "team", "mlflow.runName", "mlflow.parentRunId"]
FILTERS = [
    "metrics.acc > 0.5",
    "params.lr = '0.01' and tags.team LIKE 'r%'",
    "attributes.status IN ('FINISHED')",
    "datasets.context = 'training'",
    "metrics.acc > 1 or params.a = 'b'",
    "name LIKE 'e%'",
    "tags.`x y` IS NULL",
    "attributes.start_time >= 1e30",
    "metrics.acc >",
    "params.x = 'it''s'",
]
ORDERS = ["metrics.acc DESC", "params.lr", "start_time", "name ASC", "tags.t", "bogus.x"]

texts = st.text(max_size=40) | st.sampled_from(WORDS) | st.text(max_size=400)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "12abc"])
)
scalars = st.none() | st.booleans() | numbers | texts
key_values = st.lists(
    st.fixed_dictionaries({"key": scalars, "value": scalars})
    | st.dictionaries(st.sampled_from(["key", "value", "x"]), scalars),
    max_size=4,
)
metrics = st.lists(
    st.fixed_dictionaries(
        {"key": texts, "value": numbers, "timestamp": numbers},
        optional={"step": numbers | st.none()},
    ),
    max_size=5,
)
dataset = st.fixed_dictionaries(
    {},
    optional={
        "name": texts,
        "digest": texts,
        "source_type": texts,
        "source": texts,
        "schema": scalars,
        "profile": scalars,
    },
)
datasets = st.lists(
    st.fixed_dictionaries({}, optional={"dataset": dataset | scalars, "tags": key_values}),
    max_size=3,
)


def value_for(field: str) -> st.SearchStrategy[Any]:
    junk = scalars | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=2)
    known: dict[str, st.SearchStrategy[Any]] = {
        "run_id": st.sampled_from(KNOWN["run_id"]),
        "run_uuid": st.sampled_from(KNOWN["run_id"]),
        "experiment_id": st.sampled_from(KNOWN["experiment_id"]),
        "experiment_ids": st.lists(st.sampled_from(KNOWN["experiment_id"]), max_size=3),
        "filter": st.sampled_from(FILTERS),
        "order_by": st.lists(st.sampled_from(ORDERS), max_size=3),
        "tags": key_values,
        "params": key_values,
        "metrics": metrics,
        "datasets": datasets,
        "status": st.sampled_from(["RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED"]),
        "view_type": st.sampled_from(["ACTIVE_ONLY", "DELETED_ONLY", "ALL", "NONE"]),
        "run_view_type": st.sampled_from(["ACTIVE_ONLY", "DELETED_ONLY", "ALL", "x"]),
        "max_results": st.integers(min_value=-5, max_value=60_000),
    }
    if field in known:
        return known[field] | junk
    return junk


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    method, path, fields = draw(st.sampled_from(ENDPOINTS))
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    return method, path, {name: draw(value_for(name)) for name in chosen}


async def seed_rows(db: Database) -> None:
    parent = await make_run(db, experiment="exp", metrics={"acc": 0.9}, params={"lr": "0.01"})
    child = await make_run(db, experiment="exp", tags={"mlflow.parentRunId": parent.id})
    KNOWN["run_id"] = [parent.id, child.id, "f" * 32, ""]
    KNOWN["experiment_id"] = ["0", str(parent.experiment_id), "999999", "-1", "x"]


async def test_tracking_endpoints_never_fail_badly(
    db: Database, client: httpx.AsyncClient, errors: ErrorLog
) -> None:
    await seed_rows(db)
    loop = asyncio.get_running_loop()
    sent = 0

    async def exchange(method: str, path: str, fields: dict[str, Any]) -> httpx.Response:
        if method == "GET":
            return await client.get(ROOT + path, params=query_params(fields))
        return await client.request(
            method,
            ROOT + path,
            content=encode(fields),
            headers={"Content-Type": "application/json"},
        )

    def example(case: tuple[str, str, dict[str, Any]]) -> None:
        nonlocal sent
        errors.records.clear()
        method, path, fields = case
        response = asyncio.run_coroutine_threadsafe(exchange(*case), loop).result(timeout=120)
        sent += 1
        found = problems(response) + [f"logged: {r.getMessage()}" for r in errors.records]
        assert not found, f"{method} {path} {fields!r} -> {response.status_code} {response.text}"

    prop = settings(
        max_examples=max(1, round(600 * SCALE)),
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(calls())(example))
    if SEED is not None:
        prop = seed(int(SEED))(prop)
    await asyncio.to_thread(prop)

    assert sent >= 600 * SCALE
    assert await integrity_problems(db) == []
