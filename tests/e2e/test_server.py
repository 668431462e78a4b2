"""The real thing: `python -m app serve` under uvicorn on 127.0.0.1, spoken to over TCP."""

import httpx

from app.db import migrate
from app.graphql.schema import export_sdl
from tests.e2e.conftest import auth_headers, cli
from tests.e2e.conftest import gql as post

FLOW = """
mutation($run: ID!) {
  logMetrics(input: {runId: $run, points: [
    {key: "acc", value: 0.5, step: 0}, {key: "acc", value: "NaN", step: 1},
    {key: "acc", value: 0.75, step: 2}
  ]}) { __typename ... on LogMetricsSuccess { count } }
}
"""


def test_served_over_tcp_log_a_run_and_read_it_back(server):
    # given a run started over HTTP on the real server
    run = post(
        server,
        'mutation { startRun(input: {experiment: "e2e"}) { ... on StartRunSuccess { run { id } } } }',
    )
    run_id = run["startRun"]["run"]["id"]

    # when metrics with a NaN are logged
    logged = post(server, FLOW, run=run_id)

    # then the history keeps the NaN and the latest value is the highest step's
    assert logged["logMetrics"] == {"__typename": "LogMetricsSuccess", "count": 3}
    data = post(
        server,
        'query($id: ID!) { run(id: $id) { metric(key: "acc") { value min max } '
        'metricHistory(key: "acc") { nodes { step value } } } }',
        id=run_id,
    )
    assert data["run"]["metric"] == {"value": 0.75, "min": 0.5, "max": 0.75}
    assert [n["value"] for n in data["run"]["metricHistory"]["nodes"]] == [0.5, "NaN", 0.75]


def test_graphiql_is_served_to_a_browser(server):
    response = httpx.get(f"{server}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_a_malformed_request_is_a_400_not_a_500(server):
    response = httpx.post(
        f"{server}/graphql",
        content=b"{not json",
        timeout=10,
        headers={"content-type": "application/json", **auth_headers()},
    )
    assert response.status_code == 400
    response = httpx.post(
        f"{server}/graphql", json={"query": "{ nope }"}, headers=auth_headers(), timeout=10
    )
    assert response.status_code == 200
    assert "Traceback" not in response.text


def test_cli_export_schema_prints_the_live_sdl(server_env):
    result = cli("export-schema", env=server_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == export_sdl()


def test_cli_db_upgrade_is_idempotent(server_env):
    for _ in range(2):
        result = cli("db", "upgrade", env=server_env)
        assert result.returncode == 0, result.stderr
    current = cli("db", "current", env=server_env)
    assert migrate.head_revision() in current.stdout + current.stderr
