"""Bad input on tracking queries: one top-level error naming the field and the limit,
never a 500 and never a stack trace."""

import base64
import json

import pytest

from tests.graphql.tracking.test_tracking import assert_no_traceback, seed_run
from tests.integrity import table_counts

EXPERIMENTS = """
query($first: Int, $after: String) {
  experiments(first: $first, after: $after) {
    nodes { name }
    pageInfo { endCursor }
  }
}
"""

RUNS = """
query($experiment: String!, $filter: RunFilter, $orderBy: RunOrder, $first: Int, $after: String) {
  runs(experiment: $experiment, filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    nodes { name }
    pageInfo { endCursor }
  }
}
"""

EXPERIMENT_RUNS = """
query($experiment: String!, $orderBy: RunOrder, $first: Int, $after: String) {
  experiment(name: $experiment) {
    runs(orderBy: $orderBy, first: $first, after: $after) {
      nodes { name }
      pageInfo { endCursor }
    }
  }
}
"""

METRIC_HISTORY = """
query($id: ID!, $first: Int, $after: String) {
  run(id: $id) {
    metricHistory(key: "loss", first: $first, after: $after) {
      nodes { value }
      pageInfo { endCursor }
    }
  }
}
"""

BEST_RUN = """
query($experiment: String!, $metric: String!, $filter: RunFilter) {
  bestRun(experiment: $experiment, metric: $metric, filter: $filter) { name }
}
"""

EXPERIMENT_BEST_RUN = """
query($experiment: String!, $metric: String!) {
  experiment(name: $experiment) { bestRun(metric: $metric) { name } }
}
"""


def cursor(values: object) -> str:
    """A cursor in the server's encoding holding arbitrary values: a forged one."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Each list with its query, variables, where its connection sits, and its cap on `first`.
LISTS = {
    "experiments": (EXPERIMENTS, {}, ["experiments"], 500),
    "runs": (RUNS, {"experiment": "exp"}, ["runs"], 500),
    "runs-by-metric": (RUNS, {"experiment": "exp", "orderBy": {"metric": "acc"}}, ["runs"], 500),
    "experiment.runs": (EXPERIMENT_RUNS, {"experiment": "exp"}, ["experiment", "runs"], 500),
    "metricHistory": (METRIC_HISTORY, {}, ["run", "metricHistory"], 10_000),
}


@pytest.fixture
async def seeded(db) -> dict[str, object]:
    """One experiment with two runs, each with a short loss history and an acc value."""
    run_id = await seed_run(db, start=0, history={"loss": [0.5, 0.4], "acc": [0.9]})
    await seed_run(db, start=1, history={"loss": [0.6], "acc": [0.8]})
    return {"id": run_id}


def list_case(
    name: str, seeded: dict[str, object]
) -> tuple[str, dict[str, object], list[str], int]:
    query, variables, path, cap = LISTS[name]
    if name == "metricHistory":
        variables = {**variables, "id": seeded["id"]}
    return query, dict(variables), path, cap


async def assert_single_error(
    gql, query: str, *, code: str, field: str, limit: int | None = None, **variables
) -> dict:
    body = await gql.raw(query, **variables)
    assert_no_traceback(body)
    assert len(body.get("errors") or []) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["field"] == field, error
    if limit is not None:
        assert error["extensions"]["limit"] == limit, error
    return error


async def end_cursor(gql, query: str, path: list[str], **variables) -> str:
    data = await gql(query, first=1, **variables)
    for key in path:
        data = data[key]
    return data["pageInfo"]["endCursor"]


# after


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("after", ["garbage", "", "!!!", "bm90IGpzb24", cursor({"a": 1})])
async def test_malformed_after_is_one_invalid_input_error(gql, db, seeded, name, after):
    # given
    query, variables, _, _ = list_case(name, seeded)
    before = await table_counts(db)

    # when
    error = await assert_single_error(
        gql, query, code="INVALID_INPUT", field="after", after=after, **variables
    )

    # then
    assert "after" in error["message"]
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("experiments", "runs"),
        ("runs", "runs-by-metric"),
        ("runs-by-metric", "runs"),
        ("runs", "metricHistory"),
        ("metricHistory", "experiments"),
    ],
)
async def test_cursor_from_another_list_is_invalid_input(gql, seeded, source, target):
    # given
    query, variables, path, _ = list_case(source, seeded)
    foreign = await end_cursor(gql, query, path, **variables)

    # when / then
    target_query, target_variables, _, _ = list_case(target, seeded)
    await assert_single_error(
        gql, target_query, code="INVALID_INPUT", field="after", after=foreign, **target_variables
    )


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("experiments", ["not-an-id"]),
        ("experiments", [1.5]),
        ("experiments", [2**70]),
        ("runs", ["2024-01-01T00:00:00+00:00", 7]),
        ("runs", [12, "abc"]),
        ("runs", ["yesterday", "abc"]),
        ("runs-by-metric", [0, "high", "2024-01-01T00:00:00+00:00", "abc"]),
        ("runs-by-metric", [0, 0.5, "2024-01-01T00:00:00+00:00", 7]),
        ("metricHistory", ["one", 0, 0]),
        ("metricHistory", [0, 2**70, 0]),
    ],
    ids=[
        "experiments-str-id",
        "experiments-float-id",
        "experiments-huge-id",
        "runs-int-run-id",
        "runs-int-start-time",
        "runs-bad-start-time",
        "runs-by-metric-str-value",
        "runs-by-metric-int-run-id",
        "history-str-step",
        "history-huge-timestamp",
    ],
)
async def test_forged_cursor_with_wrong_types_is_invalid_input(gql, seeded, name, values):
    # given: the right shape, values of the wrong type or range
    query, variables, _, _ = list_case(name, seeded)

    # when / then
    await assert_single_error(
        gql, query, code="INVALID_INPUT", field="after", after=cursor(values), **variables
    )


# first


@pytest.mark.parametrize("name", LISTS)
async def test_first_over_the_cap_is_invalid_input_naming_the_limit(gql, seeded, name):
    # given
    query, variables, _, cap = list_case(name, seeded)

    # when
    error = await assert_single_error(
        gql, query, code="INVALID_INPUT", field="first", limit=cap, first=cap + 1, **variables
    )

    # then
    assert str(cap) in error["message"]


@pytest.mark.parametrize("name", LISTS)
async def test_first_at_the_cap_is_accepted(gql, seeded, name):
    # given
    query, variables, path, cap = list_case(name, seeded)

    # when
    data = await gql(query, first=cap, **variables)

    # then
    for key in path:
        data = data[key]
    assert data["nodes"]


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("first", [-1, -500])
async def test_negative_first_is_invalid_input(gql, seeded, name, first):
    # given
    query, variables, _, _ = list_case(name, seeded)

    # when / then
    await assert_single_error(
        gql, query, code="INVALID_INPUT", field="first", first=first, **variables
    )


# metricSeries: the same limits as metricHistory

METRIC_SERIES = """
query($id: ID!, $first: Int, $after: String) {
  run(id: $id) {
    metricSeries(key: "loss", first: $first, after: $after) { values pageInfo { endCursor } }
  }
}
"""


@pytest.mark.parametrize(
    ("variables", "field", "limit"),
    [
        ({"first": 10_001}, "first", 10_000),
        ({"first": -1}, "first", None),
        ({"after": "garbage"}, "after", None),
        ({"after": cursor(["one", 0, 0])}, "after", None),
        ({"after": cursor([0, 2**70, 0])}, "after", None),
    ],
    ids=["first-over-cap", "negative-first", "garbage-after", "str-step", "huge-timestamp"],
)
async def test_bad_metric_series_arguments_are_invalid_input(gql, seeded, variables, field, limit):
    # when / then
    await assert_single_error(
        gql,
        METRIC_SERIES,
        code="INVALID_INPUT",
        field=field,
        limit=limit,
        id=seeded["id"],
        **variables,
    )


async def test_metric_series_first_at_the_cap_is_accepted(gql, seeded):
    # when
    data = await gql(METRIC_SERIES, id=seeded["id"], first=10_000)

    # then
    assert data["run"]["metricSeries"]["values"] == [0.5, 0.4]


# other arguments


async def test_duplicate_key_in_a_filter_is_invalid_input(gql, seeded):
    # when / then
    await assert_single_error(
        gql,
        RUNS,
        code="INVALID_INPUT",
        field="filter.params",
        experiment="exp",
        filter={"params": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]},
    )
    await assert_single_error(
        gql,
        BEST_RUN,
        code="INVALID_INPUT",
        field="filter.tags",
        experiment="exp",
        metric="acc",
        filter={"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "1"}]},
    )


@pytest.mark.parametrize(
    ("metric", "limit"), [("", None), ("m" * 251, 250)], ids=["empty", "too-long"]
)
async def test_bad_best_run_metric_is_invalid_input(gql, seeded, metric, limit):
    # when / then
    await assert_single_error(
        gql,
        BEST_RUN,
        code="INVALID_INPUT",
        field="metric",
        limit=limit,
        experiment="exp",
        metric=metric,
    )
    await assert_single_error(
        gql,
        EXPERIMENT_BEST_RUN,
        code="INVALID_INPUT",
        field="metric",
        limit=limit,
        experiment="exp",
        metric=metric,
    )


async def test_unknown_experiment_in_best_run_and_runs_is_not_found(gql, seeded):
    # when / then
    await assert_single_error(
        gql, BEST_RUN, code="NOT_FOUND", field="experiment", experiment="nope", metric="acc"
    )
    await assert_single_error(gql, RUNS, code="NOT_FOUND", field="experiment", experiment="nope")


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (RUNS, {"experiment": "exp", "orderBy": {"direction": "SIDEWAYS"}}),
        (RUNS, {"experiment": "exp", "filter": {"status": ["DONE"]}}),
        (
            RUNS,
            {
                "experiment": "exp",
                "filter": {"metrics": [{"metric": "acc", "op": "LIKE", "value": 1}]},
            },
        ),
        (
            RUNS,
            {
                "experiment": "exp",
                "filter": {"metrics": [{"metric": "acc", "op": "GT", "value": "high"}]},
            },
        ),
        (RUNS, {"experiment": "exp", "first": 2**40}),
        (RUNS, {"experiment": None}),
        (EXPERIMENTS, {"first": "ten"}),
        ("{ runs { nodes { id } } }", {}),
        ("{ experiments { nodes { nope } } }", {}),
        ("{ experiments ", {}),
    ],
    ids=[
        "bad-direction",
        "bad-status",
        "bad-op",
        "non-numeric-filter-value",
        "first-beyond-int32",
        "null-experiment",
        "string-first",
        "missing-argument",
        "unknown-field",
        "syntax-error",
    ],
)
async def test_malformed_requests_are_refused_without_a_server_error(
    client, seeded, query, variables
):
    # when
    response = await client.post("/graphql", json={"query": query, "variables": variables})

    # then
    assert response.status_code < 500, response.text
    body = response.json()
    assert body["errors"]
    assert not body.get("data")
    assert_no_traceback(body)


async def test_request_that_is_not_json_is_refused_without_a_server_error(client):
    # when
    response = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )

    # then
    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text
