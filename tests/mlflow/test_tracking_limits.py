"""MLflow's limits and refusals on the tracking face, over plain HTTP to the app: each a
4xx in MLflow's shape naming the field and the limit, and nothing written."""

import httpx
import pytest

from app.auth.roles import Role
from app.db import Database
from tests.conftest import asgi_client, make_token
from tests.factories import make_run
from tests.integrity import snapshot

ROOT = "/api/2.0/mlflow/"


async def post(client: httpx.AsyncClient, path: str, body: dict) -> httpx.Response:
    return await client.post(ROOT + path, json=body)


@pytest.mark.parametrize(
    ("what", "count", "limit"),
    [("metrics", 1001, 1000), ("params", 101, 100), ("tags", 101, 100)],
)
async def test_a_batch_over_mlflows_limits_is_refused_naming_it(
    db: Database, client: httpx.AsyncClient, what: str, count: int, limit: int
) -> None:
    run = await make_run(db)
    if what == "metrics":
        items = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(count)]
    else:
        items = [{"key": f"k{i}", "value": "v"} for i in range(count)]
    before = await snapshot(db)

    response = await post(client, "runs/log-batch", {"run_id": run.id, what: items})

    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"at most {limit} {what}" in body["message"]
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    ("path", "body", "field", "limit"),
    [
        ("runs/log-parameter", {"key": "p", "value": "x" * 6001}, "params[p].value", "6000"),
        ("runs/set-tag", {"key": "t", "value": "x" * 8001}, "tags[t].value", "8000"),
        ("runs/log-metric", {"key": "k" * 251, "value": 1, "timestamp": 1}, "points[0].key", "250"),
    ],
)
async def test_over_long_values_are_refused_naming_the_field_and_limit(
    db: Database, client: httpx.AsyncClient, path: str, body: dict, field: str, limit: str
) -> None:
    run = await make_run(db)
    before = await snapshot(db)

    response = await post(client, path, {"run_id": run.id, **body})

    assert response.status_code == 400
    message = response.json()["message"]
    assert field in message
    assert limit in message
    assert await snapshot(db) == before


async def test_a_batch_is_one_transaction(db: Database, client: httpx.AsyncClient) -> None:
    run = await make_run(db, params={"p": "1"})
    before = await snapshot(db)

    # The metrics are fine; the param contradicts a stored one: nothing is written.
    response = await post(
        client,
        "runs/log-batch",
        {
            "run_id": run.id,
            "metrics": [{"key": "m", "value": 1.0, "timestamp": 1}],
            "params": [{"key": "p", "value": "2"}],
        },
    )

    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert await snapshot(db) == before


async def test_ending_an_ended_run_differently_is_invalid_state(
    db: Database, client: httpx.AsyncClient
) -> None:
    run = await make_run(db)
    ended = await post(client, "runs/update", {"run_id": run.id, "status": "FINISHED"})

    same = await post(
        client, "runs/update", {"run_id": run.id, "status": "FINISHED", "end_time": 2**40}
    )
    again = await post(client, "runs/update", {"run_id": run.id, "status": "FAILED"})
    scheduled = await post(client, "runs/update", {"run_id": run.id, "status": "SCHEDULED"})

    assert ended.status_code == 200
    assert ended.json()["run_info"]["status"] == "FINISHED"
    assert same.status_code == 200
    assert same.json()["run_info"]["end_time"] == ended.json()["run_info"]["end_time"]
    assert again.status_code == 400
    assert again.json()["error_code"] == "INVALID_STATE"
    assert scheduled.json()["error_code"] == "INVALID_PARAMETER_VALUE"


async def test_the_default_experiment_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    response = await post(client, "experiments/delete", {"experiment_id": "0"})

    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


async def test_a_page_token_not_given_out_is_refused(
    db: Database, client: httpx.AsyncClient
) -> None:
    run = await make_run(db)

    runs = await post(
        client,
        "runs/search",
        {"experiment_ids": [str(run.experiment_id)], "page_token": "bogus"},
    )
    history = await client.get(
        ROOT + "metrics/get-history",
        params={"run_id": run.id, "metric_key": "m", "page_token": "bogus"},
    )
    experiments = await post(client, "experiments/search", {"page_token": "bogus"})

    for response in (runs, history, experiments):
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "page token" in response.json()["message"]


async def test_a_reader_token_cannot_log(db: Database, app, client: httpx.AsyncClient) -> None:
    run = await make_run(db)
    secret = await make_token(db, "reader", Role.READER)
    async with asgi_client(app, secret) as reader:
        read = await reader.get(ROOT + "runs/get", params={"run_id": run.id})
        write = await reader.post(ROOT + "runs/delete", json={"run_id": run.id})

    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json()["error_code"] == "PERMISSION_DENIED"
