"""Junk thrown at every registry endpoint of the MLflow face: always MLflow's error shape
with a 4xx (or a 200), never a 5xx the client would retry for minutes."""

import random
from typing import Any

import httpx

from app.mlflow import registry as _registry  # noqa: F401  (registers the endpoints)
from app.mlflow.wire import ENDPOINTS

FIELDS = [
    "name",
    "new_name",
    "version",
    "stage",
    "alias",
    "key",
    "value",
    "description",
    "source",
    "run_id",
    "model_id",
    "run_link",
    "tags",
    "stages",
    "filter",
    "order_by",
    "max_results",
    "page_token",
    "archive_existing_versions",
]
JUNK: list[Any] = [
    None,
    "",
    " ",
    "m",
    "1",
    "-1",
    "0",
    "99999999999999999999999",
    "Production",
    "x" * 5000,
    "\u202e",
    "a\x00b",
    "name = 'm' OR 1=1",
    "tags.`x` = 'y'",
    "runs:/nope/model",
    "models:/m-zz",
    "models:/m-0123456789abcdef0123456789abcdef",
    "eyJvZmZzZXQiOiAtMX0=",
    0,
    -5,
    2**63,
    1.5,
    True,
    [],
    ["Production", 3],
    [{"key": "k", "value": "v"}],
    [{"key": 1}],
    {"a": 1},
]


def junk(rng: random.Random) -> dict[str, Any]:
    return {f: rng.choice(JUNK) for f in rng.sample(FIELDS, rng.randint(0, len(FIELDS)))}


def test_registry_endpoints_never_answer_5xx(mlflow_server):
    rng = random.Random(1212)
    mine = [e for e in ENDPOINTS if e.handler.__module__ == "app.mlflow.registry"]
    assert len(mine) == 22
    # Some state for the junk to hit: a model with versions in two stages and an alias.
    mlflow_server.gql(
        'mutation { a: registerModelVersion(input: {model: "m"}) { __typename } '
        'b: registerModelVersion(input: {model: "m"}) { __typename } }'
    )
    mlflow_server.gql(
        'mutation { transitionModelVersion(input: {model: "m", version: 1, stage: STAGING}) '
        '{ __typename } setModelAlias(input: {model: "m", alias: "a", version: 2}) '
        "{ __typename } }"
    )
    answers: dict[int, int] = {}
    with httpx.Client(
        base_url=f"{mlflow_server.url}/api/2.0/mlflow",
        headers={"Authorization": f"Bearer {mlflow_server.token}"},
        timeout=30,
    ) as http:
        for endpoint in mine:
            for _ in range(25):
                fields = junk(rng)
                if endpoint.method == "GET":
                    params = {
                        k: v if isinstance(v, list) else str(v)
                        for k, v in fields.items()
                        if v is not None and not isinstance(v, dict)
                    }
                    params = {
                        k: [str(i) for i in v] if isinstance(v, list) else v
                        for k, v in params.items()
                    }
                    response = http.get(endpoint.path, params=params)
                else:
                    response = http.request(endpoint.method, endpoint.path, json=fields)
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                assert response.status_code < 500, (endpoint.path, fields, response.text)
                if response.status_code != 200:
                    body = response.json()
                    assert set(body) >= {"error_code", "message"}, body
    assert answers.get(400, 0) > 0
