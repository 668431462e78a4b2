"""Inputs that used to reach the database as bugs are refused as typed errors."""

import asyncio
import base64
import json

from tests.factories import make_run

RUNS = 'query($after: String) { runs(experiment: "exp", after: $after) { nodes { id } } }'
START = """
mutation($start: DateTime) {
  startRun(input: {experiment: "exp", startTime: $start}) {
    __typename ... on InvalidInput { field }
  }
}
"""
CREATE = """
mutation($name: String!) {
  createExperiment(input: {name: $name}) { __typename ... on InvalidInput { field message } }
}
"""
EXPERIMENT = "query($name: String!) { experiment(name: $name) { name } }"
LOG_POINTS = """
mutation($run: ID!, $points: [MetricPointInput!]!) {
  logMetrics(input: {runId: $run, points: $points}) { __typename }
}
"""


def cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def test_a_cursor_with_a_datetime_outside_utc_is_invalid_input(db, gql):
    await make_run(db)
    error = await gql.error(RUNS, after=cursor(["0001-01-01T00:00:00+14:00", "x"]))
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "after"


async def test_a_start_time_outside_utc_is_invalid_input(gql):
    data = await gql(START, start="0001-01-01T00:00:00+14:00")
    assert data["startRun"] == {"__typename": "InvalidInput", "field": "startTime"}


async def test_a_nul_character_is_refused_with_the_field_named(gql):
    data = await gql(CREATE, name="bad\u0000name")
    assert data["createExperiment"]["__typename"] == "InvalidInput"
    assert data["createExperiment"]["field"] == "name"


async def test_a_nul_character_in_a_lookup_is_never_an_internal_error(gql):
    body = await gql.raw(EXPERIMENT, name="bad\u0000name")
    codes = [e["extensions"]["code"] for e in body.get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes
    assert body.get("data") in (None, {"experiment": None})


async def test_concurrent_batches_with_keys_in_opposite_orders_all_commit(db, gql):
    # given one run that two writers log to, naming the same keys in opposite orders
    run = await make_run(db)
    forward = [{"key": k, "value": 1.0, "step": 1} for k in ("a", "b", "c", "d")]
    backward = list(reversed(forward))

    # when they race, many times
    results = await asyncio.gather(
        *(gql(LOG_POINTS, run=run.id, points=forward if i % 2 else backward) for i in range(20))
    )

    # then every batch committed: no deadlock surfaced as an error
    assert {r["logMetrics"]["__typename"] for r in results} == {"LogMetricsSuccess"}
