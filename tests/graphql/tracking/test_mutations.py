"""Tracking mutations over HTTP: createExperiment, startRun, logMetrics, logParams,
setRunTags, endRun; refusals come back as typed payloads and change nothing."""

from datetime import datetime

import pytest

from tests.graphql.tracking.test_tracking import (
    RUN_ID,
    UNKNOWN_RUN_ID,
    assert_no_traceback,
    at,
    iso,
    seed_experiment,
    seed_run,
)
from tests.integrity import table_counts

ERROR = "... on Error { message code }"
INVALID_INPUT = "... on InvalidInput { field limit }"
NOT_FOUND = "... on NotFound { field value }"
ALREADY_EXISTS = "... on AlreadyExists { field value }"
CONFLICT = "... on Conflict { field }"

CREATE_EXPERIMENT = f"""
mutation($input: CreateExperimentInput!) {{
  createExperiment(input: $input) {{
    __typename
    ... on CreateExperimentSuccess {{
      experiment {{ id name description createdAt runCount tags {{ key value }} }}
    }}
    {ERROR} {INVALID_INPUT} {ALREADY_EXISTS}
  }}
}}
"""

RUN_FIELDS = """
id name status startTime endTime
experiment { name }
params { key value }
tags { key value }
metrics { key value step timestamp min max }
"""

START_RUN = f"""
mutation($input: StartRunInput!) {{
  startRun(input: $input) {{
    __typename
    ... on StartRunSuccess {{ run {{ {RUN_FIELDS} }} }}
    {ERROR} {INVALID_INPUT}
  }}
}}
"""

LOG_METRICS = f"""
mutation($input: LogMetricsInput!) {{
  logMetrics(input: $input) {{
    __typename
    ... on LogMetricsSuccess {{ count run {{ id metrics {{ key value step timestamp min max }} }} }}
    {ERROR} {INVALID_INPUT} {NOT_FOUND}
  }}
}}
"""

LOG_PARAMS = f"""
mutation($input: LogParamsInput!) {{
  logParams(input: $input) {{
    __typename
    ... on LogParamsSuccess {{ run {{ id params {{ key value }} }} }}
    {ERROR} {INVALID_INPUT} {NOT_FOUND} {CONFLICT}
  }}
}}
"""

SET_RUN_TAGS = f"""
mutation($input: SetRunTagsInput!) {{
  setRunTags(input: $input) {{
    __typename
    ... on SetRunTagsSuccess {{ run {{ id tags {{ key value }} }} }}
    {ERROR} {INVALID_INPUT} {NOT_FOUND}
  }}
}}
"""

END_RUN = f"""
mutation($input: EndRunInput!) {{
  endRun(input: $input) {{
    __typename
    ... on EndRunSuccess {{ run {{ id status startTime endTime }} }}
    {ERROR} {INVALID_INPUT} {NOT_FOUND} ... on Conflict {{ field expected actual }}
  }}
}}
"""

EXPERIMENT = """
query($name: String!) {
  experiment(name: $name) { id name description runCount tags { key value } }
}
"""

RUN = f"""
query($id: ID!) {{
  run(id: $id) {{ {RUN_FIELDS} }}
}}
"""

HISTORY = """
query($id: ID!, $key: String!, $first: Int) {
  run(id: $id) {
    metricHistory(key: $key, first: $first) {
      nodes { value step timestamp }
      pageInfo { hasNextPage }
    }
    metric(key: $key) { value step timestamp min max }
  }
}
"""


def kv(**pairs: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def points(key: str, values: list[object], *, first_step: int = 0) -> list[dict[str, object]]:
    return [
        {"key": key, "value": v, "step": first_step + i, "timestamp": 1_000 + i}
        for i, v in enumerate(values)
    ]


# createExperiment


async def test_create_experiment_returns_it_and_it_can_be_read_back(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(
        CREATE_EXPERIMENT,
        input={"name": "nlp", "description": "language", "tags": kv(team="text", b="1")},
    )

    # then
    payload = data["createExperiment"]
    assert payload["__typename"] == "CreateExperimentSuccess"
    experiment = payload["experiment"]
    assert experiment["name"] == "nlp"
    assert experiment["description"] == "language"
    assert experiment["tags"] == kv(b="1", team="text")
    assert experiment["runCount"] == 0
    assert int(experiment["id"]) > 0
    assert datetime.fromisoformat(experiment["createdAt"]).tzinfo is not None
    read = await gql(EXPERIMENT, name="nlp")
    assert read["experiment"] == {
        "id": experiment["id"],
        "name": "nlp",
        "description": "language",
        "runCount": 0,
        "tags": kv(b="1", team="text"),
    }
    assert (await table_counts(db))["experiment"] == before["experiment"] + 1


async def test_create_experiment_without_description_or_tags(gql):
    # when
    data = await gql(CREATE_EXPERIMENT, input={"name": "bare"})

    # then
    experiment = data["createExperiment"]["experiment"]
    assert experiment["description"] is None
    assert experiment["tags"] == []


async def test_create_experiment_with_a_taken_name_is_already_exists(gql, db):
    # given
    await seed_experiment(db, "taken", description="original")
    before = await table_counts(db)

    # when
    data = await gql(CREATE_EXPERIMENT, input={"name": "taken", "description": "second"})

    # then
    assert data["createExperiment"] == {
        "__typename": "AlreadyExists",
        "message": data["createExperiment"]["message"],
        "code": "ALREADY_EXISTS",
        "field": "name",
        "value": "taken",
    }
    assert "taken" in data["createExperiment"]["message"]
    assert await table_counts(db) == before
    assert (await gql(EXPERIMENT, name="taken"))["experiment"]["description"] == "original"


async def test_create_experiment_named_default_is_already_exists(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(CREATE_EXPERIMENT, input={"name": "Default"})

    # then
    assert data["createExperiment"]["__typename"] == "AlreadyExists"
    assert await table_counts(db) == before


async def test_create_experiment_name_at_the_limit_is_accepted(gql):
    # when
    data = await gql(CREATE_EXPERIMENT, input={"name": "n" * 256})

    # then
    assert data["createExperiment"]["__typename"] == "CreateExperimentSuccess"
    assert data["createExperiment"]["experiment"]["name"] == "n" * 256


async def test_create_experiment_name_over_the_limit_is_invalid_input(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(CREATE_EXPERIMENT, input={"name": "n" * 257})

    # then
    payload = data["createExperiment"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "name"
    assert payload["limit"] == 256
    assert "256" in payload["message"]
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("experiment_input", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "dup-tags", "tags": kv(a="1") + kv(a="2")}, "tags"),
        ({"name": "long-description", "description": "d" * 10_001}, "description"),
    ],
    ids=["empty-name", "blank-name", "duplicate-tag", "long-description"],
)
async def test_create_experiment_bad_input_is_refused_and_writes_nothing(
    gql, db, experiment_input, field
):
    # given
    before = await table_counts(db)

    # when
    data = await gql(CREATE_EXPERIMENT, input=experiment_input)

    # then
    assert data["createExperiment"]["__typename"] == "InvalidInput"
    assert data["createExperiment"]["field"] == field
    assert await table_counts(db) == before


# startRun


async def test_start_run_creates_a_missing_experiment_with_params_and_tags(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(
        START_RUN,
        input={
            "experiment": "fresh",
            "name": "first",
            "params": kv(lr="0.01", batch="32"),
            "tags": kv(team="cv"),
            "startTime": iso(0),
        },
    )

    # then
    run = data["startRun"]["run"]
    assert RUN_ID.match(run["id"])
    assert run["name"] == "first"
    assert run["status"] == "RUNNING"
    assert datetime.fromisoformat(run["startTime"]) == at(0)
    assert run["endTime"] is None
    assert run["experiment"] == {"name": "fresh"}
    assert run["params"] == kv(batch="32", lr="0.01")
    assert run["tags"] == kv(team="cv")
    assert run["metrics"] == []
    experiment = (await gql(EXPERIMENT, name="fresh"))["experiment"]
    assert experiment["runCount"] == 1
    after = await table_counts(db)
    assert after["experiment"] == before["experiment"] + 1
    assert after["run"] == before["run"] + 1
    assert (await gql(RUN, id=run["id"]))["run"] == run


async def test_start_run_in_an_existing_experiment_adds_a_run_only(gql, db):
    # given
    await seed_run(db, experiment="exp")
    before = await table_counts(db)

    # when
    data = await gql(START_RUN, input={"experiment": "exp"})

    # then
    run = data["startRun"]["run"]
    assert run["experiment"] == {"name": "exp"}
    assert run["name"] is None
    assert run["params"] == []
    assert run["tags"] == []
    assert datetime.fromisoformat(run["startTime"]).tzinfo is not None
    after = await table_counts(db)
    assert after["experiment"] == before["experiment"]
    assert after["run"] == before["run"] + 1
    assert (await gql(EXPERIMENT, name="exp"))["experiment"]["runCount"] == 2


@pytest.mark.parametrize(
    "start", ["2024-03-01T14:00:00+02:00", "2024-03-01T12:00:00"], ids=["offset", "naive"]
)
async def test_start_run_returns_start_time_in_utc_as_queries_do(gql, start):
    # given: a start time sent with a +02:00 offset, or with none (taken as UTC)

    # when
    data = await gql(START_RUN, input={"experiment": "exp", "startTime": start})

    # then: the mutation answers in UTC, exactly as a later read does
    run = data["startRun"]["run"]
    read = await gql(RUN, id=run["id"])
    assert read["run"]["startTime"] == "2024-03-01T12:00:00+00:00"
    assert run["startTime"] == read["run"]["startTime"]


async def test_start_run_in_default_experiment(gql):
    # when
    data = await gql(START_RUN, input={"experiment": "Default"})

    # then
    assert data["startRun"]["run"]["experiment"] == {"name": "Default"}
    assert (await gql(EXPERIMENT, name="Default"))["experiment"]["runCount"] == 1


@pytest.mark.parametrize(
    ("run_input", "field", "limit"),
    [
        ({"experiment": "new", "params": kv(lr="0.1") + kv(lr="0.2")}, "params", None),
        ({"experiment": "new", "params": kv(lr="0.1") + kv(lr="0.1")}, "params", None),
        ({"experiment": "new", "tags": kv(t="a") + kv(t="b")}, "tags", None),
        ({"experiment": "e" * 257}, "experiment", 256),
        ({"experiment": ""}, "experiment", None),
        ({"experiment": "new", "name": "r" * 257}, "name", 256),
    ],
    ids=[
        "duplicate-param",
        "repeated-param",
        "duplicate-tag",
        "long-experiment",
        "empty-experiment",
        "long-name",
    ],
)
async def test_start_run_bad_input_is_refused_and_writes_nothing(gql, db, run_input, field, limit):
    # given
    before = await table_counts(db)

    # when
    data = await gql(START_RUN, input=run_input)

    # then
    payload = data["startRun"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == field
    assert payload["limit"] == limit
    assert await table_counts(db) == before
    assert (await gql(EXPERIMENT, name="new"))["experiment"] is None


# logMetrics


async def test_log_metrics_writes_a_batch_and_returns_the_summary(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={"runId": run_id, "points": points("loss", [0.9, 0.5, 0.7]) + points("acc", [0.1])},
    )

    # then
    payload = data["logMetrics"]
    assert payload["__typename"] == "LogMetricsSuccess"
    assert payload["count"] == 4
    assert payload["run"]["id"] == run_id
    assert payload["run"]["metrics"] == [
        {"key": "acc", "value": 0.1, "step": 0, "timestamp": 1000, "min": 0.1, "max": 0.1},
        {"key": "loss", "value": 0.7, "step": 2, "timestamp": 1002, "min": 0.5, "max": 0.9},
    ]
    history = (await gql(HISTORY, id=run_id, key="loss"))["run"]["metricHistory"]
    assert [n["value"] for n in history["nodes"]] == [0.9, 0.5, 0.7]


async def test_log_metrics_values_keep_full_precision(gql, db):
    # given
    run_id = await seed_run(db)
    values = [0.1, 1 / 3, 123456789.123456789, -2.5e-300, 1e300]

    # when
    await gql(LOG_METRICS, input={"runId": run_id, "points": points("x", values)})

    # then
    history = (await gql(HISTORY, id=run_id, key="x"))["run"]
    assert [n["value"] for n in history["metricHistory"]["nodes"]] == values
    assert history["metric"]["min"] == -2.5e-300
    assert history["metric"]["max"] == 1e300


async def test_log_metrics_keeps_nan_and_infinities_as_sent(gql, db):
    # given
    run_id = await seed_run(db)
    sent = ["NaN", "Infinity", "-Infinity", 1.5]

    # when
    data = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": points("x", sent)
            + points("latest_nan", [2.0, "NaN"])
            + points("only_nan", ["NaN", "NaN"])
            + points("latest_inf", [-1.0, "Infinity"]),
        },
    )

    # then
    assert data["logMetrics"]["count"] == 10
    metrics = {m["key"]: m for m in data["logMetrics"]["run"]["metrics"]}
    assert metrics["x"] == {
        "key": "x",
        "value": 1.5,
        "step": 3,
        "timestamp": 1003,
        "min": "-Infinity",
        "max": "Infinity",
    }
    assert (metrics["latest_nan"]["value"], metrics["latest_nan"]["min"]) == ("NaN", 2.0)
    assert metrics["latest_nan"]["max"] == 2.0
    assert (metrics["only_nan"]["value"], metrics["only_nan"]["min"]) == ("NaN", None)
    assert metrics["only_nan"]["max"] is None
    assert (metrics["latest_inf"]["value"], metrics["latest_inf"]["max"]) == (
        "Infinity",
        "Infinity",
    )
    assert metrics["latest_inf"]["min"] == -1.0
    history = (await gql(HISTORY, id=run_id, key="x"))["run"]
    assert [n["value"] for n in history["metricHistory"]["nodes"]] == sent
    assert history["metric"]["value"] == 1.5
    nan_history = (await gql(HISTORY, id=run_id, key="only_nan"))["run"]
    assert [n["value"] for n in nan_history["metricHistory"]["nodes"]] == ["NaN", "NaN"]
    assert nan_history["metric"] == {
        "value": "NaN",
        "step": 1,
        "timestamp": 1001,
        "min": None,
        "max": None,
    }


async def test_log_metrics_latest_is_highest_step_and_min_max_span_every_batch(gql, db):
    # given
    run_id = await seed_run(db)
    batches = [
        ([(5, 0.5), (2, 0.9)], {"value": 0.5, "step": 5, "min": 0.5, "max": 0.9}),
        ([(3, 0.1)], {"value": 0.5, "step": 5, "min": 0.1, "max": 0.9}),
        ([(7, 0.3)], {"value": 0.3, "step": 7, "min": 0.1, "max": 0.9}),
        ([(6, 2.0), (0, -1.0)], {"value": 0.3, "step": 7, "min": -1.0, "max": 2.0}),
        ([(1, "NaN")], {"value": 0.3, "step": 7, "min": -1.0, "max": 2.0}),
    ]

    for batch, expected in batches:
        # when
        data = await gql(
            LOG_METRICS,
            input={
                "runId": run_id,
                "points": [
                    {"key": "loss", "value": v, "step": s, "timestamp": 100} for s, v in batch
                ],
            },
        )

        # then
        (metric,) = data["logMetrics"]["run"]["metrics"]
        assert {k: metric[k] for k in expected} == expected, batch
    history = (await gql(HISTORY, id=run_id, key="loss"))["run"]["metricHistory"]
    assert [n["step"] for n in history["nodes"]] == [0, 1, 2, 3, 5, 6, 7]


async def test_log_metrics_same_step_latest_timestamp_wins(gql, db):
    # given
    run_id = await seed_run(db)
    await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": [
                {"key": "acc", "value": 0.2, "step": 1, "timestamp": 200},
                {"key": "acc", "value": 0.9, "step": 1, "timestamp": 100},
            ],
        },
    )

    # when: an older point at the same step arrives later, then a newer one
    older = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": [{"key": "acc", "value": 0.5, "step": 1, "timestamp": 150}],
        },
    )
    newer = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": [{"key": "acc", "value": 0.7, "step": 1, "timestamp": 300}],
        },
    )

    # then
    assert older["logMetrics"]["run"]["metrics"][0]["value"] == 0.2
    assert newer["logMetrics"]["run"]["metrics"][0]["value"] == 0.7
    assert newer["logMetrics"]["run"]["metrics"][0]["timestamp"] == 300


async def test_log_metrics_default_step_and_timestamp(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(LOG_METRICS, input={"runId": run_id, "points": [{"key": "k", "value": 1}]})

    # then
    (metric,) = data["logMetrics"]["run"]["metrics"]
    assert metric["step"] == 0
    assert isinstance(metric["timestamp"], int)
    assert metric["timestamp"] > 0
    assert metric["value"] == 1.0


async def test_log_metrics_empty_batch_writes_nothing(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(LOG_METRICS, input={"runId": run_id, "points": []})

    # then
    assert data["logMetrics"]["count"] == 0
    assert await table_counts(db) == before


async def test_log_metrics_batch_at_the_limit_is_written_whole(gql, db):
    # given
    run_id = await seed_run(db)
    batch = [{"key": "loss", "value": i / 10_000, "step": i} for i in range(10_000)]

    # when
    data = await gql(LOG_METRICS, input={"runId": run_id, "points": batch})

    # then
    assert data["logMetrics"]["count"] == 10_000
    history = (await gql(HISTORY, id=run_id, key="loss", first=10_000))["run"]
    assert len(history["metricHistory"]["nodes"]) == 10_000
    assert history["metricHistory"]["pageInfo"]["hasNextPage"] is False
    assert history["metric"]["step"] == 9_999
    assert (await table_counts(db))["metric"] == 10_000


async def test_log_metrics_batch_over_the_limit_is_refused_and_writes_nothing(gql, db):
    # given
    run_id = await seed_run(db, history={"loss": [1.0]})
    before = await table_counts(db)
    batch = [{"key": "loss", "value": float(i), "step": i + 1} for i in range(10_001)]

    # when
    data = await gql(LOG_METRICS, input={"runId": run_id, "points": batch})

    # then
    payload = data["logMetrics"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "points"
    assert payload["limit"] == 10_000
    assert "10000" in payload["message"]
    assert await table_counts(db) == before
    history = (await gql(HISTORY, id=run_id, key="loss"))["run"]
    assert [n["value"] for n in history["metricHistory"]["nodes"]] == [1.0]
    assert history["metric"]["max"] == 1.0


async def test_log_metrics_over_the_limit_on_a_fresh_run_leaves_history_empty(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={"runId": run_id, "points": [{"key": "acc", "value": 0.5}] * 10_001},
    )

    # then
    assert data["logMetrics"]["__typename"] == "InvalidInput"
    assert data["logMetrics"]["limit"] == 10_000
    history = (await gql(HISTORY, id=run_id, key="acc"))["run"]
    assert history["metricHistory"]["nodes"] == []
    assert history["metric"] is None
    assert await table_counts(db) == before


async def test_log_metrics_with_a_bad_key_writes_none_of_the_batch(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": [{"key": "ok", "value": 1.0}, {"key": "k" * 251, "value": 2.0}],
        },
    )

    # then
    payload = data["logMetrics"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["field"] == "points[1].key"
    assert payload["limit"] == 250
    assert await table_counts(db) == before


async def test_log_metrics_to_an_unknown_run_is_not_found(gql, db):
    # given
    await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_METRICS, input={"runId": UNKNOWN_RUN_ID, "points": [{"key": "k", "value": 1.0}]}
    )

    # then
    assert data["logMetrics"] == {
        "__typename": "NotFound",
        "message": data["logMetrics"]["message"],
        "code": "NOT_FOUND",
        "field": "runId",
        "value": UNKNOWN_RUN_ID,
    }
    assert await table_counts(db) == before


@pytest.mark.parametrize("value", ["nan", "inf", "abc", True, None, [1.0]])
async def test_log_metrics_with_an_unreadable_value_is_a_request_error(client, gql, db, value):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    response = await client.post(
        "/graphql",
        json={
            "query": LOG_METRICS,
            "variables": {"input": {"runId": run_id, "points": [{"key": "k", "value": value}]}},
        },
    )

    # then
    assert response.status_code < 500
    body = response.json()
    assert body["errors"]
    assert not body.get("data")
    assert_no_traceback(body)
    assert await table_counts(db) == before


# logMetrics: packed series


async def test_log_metrics_series_and_points_are_written_together(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "series": [
                {
                    "key": "loss",
                    "values": [0.9, "NaN", 0.5, "-Infinity"],
                    "steps": [10, 20, 30, 5],
                    "timestamps": [1, 2, 3, 4],
                },
                {"key": "acc", "values": [0.1, 0.2]},
            ],
            "points": [{"key": "acc", "value": 0.3, "step": 5, "timestamp": 7}],
        },
    )

    # then
    payload = data["logMetrics"]
    assert payload["count"] == 7
    metrics = {m["key"]: m for m in payload["run"]["metrics"]}
    assert metrics["loss"] == {
        "key": "loss",
        "value": 0.5,
        "step": 30,
        "timestamp": 3,
        "min": "-Infinity",
        "max": 0.9,
    }
    assert (metrics["acc"]["value"], metrics["acc"]["step"]) == (0.3, 5)
    assert (metrics["acc"]["min"], metrics["acc"]["max"]) == (0.1, 0.3)
    loss = (await gql(HISTORY, id=run_id, key="loss"))["run"]["metricHistory"]["nodes"]
    assert [(n["step"], n["value"]) for n in loss] == [
        (5, "-Infinity"),
        (10, 0.9),
        (20, "NaN"),
        (30, 0.5),
    ]
    acc = (await gql(HISTORY, id=run_id, key="acc"))["run"]["metricHistory"]["nodes"]
    assert [(n["step"], n["value"]) for n in acc] == [(0, 0.1), (1, 0.2), (5, 0.3)]
    assert all(isinstance(n["timestamp"], int) for n in acc)


async def test_log_metrics_with_neither_points_nor_series_writes_nothing(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(LOG_METRICS, input={"runId": run_id})

    # then
    assert data["logMetrics"]["count"] == 0
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("series", "field"),
    [
        ({"key": "x", "values": [1.0, 2.0], "steps": [0]}, "series[0].steps"),
        ({"key": "x", "values": [1.0], "timestamps": [1, 2]}, "series[0].timestamps"),
        ({"key": "", "values": [1.0]}, "series[0].key"),
        ({"key": "k" * 251, "values": [1.0]}, "series[0].key"),
    ],
    ids=["short-steps", "long-timestamps", "empty-key", "long-key"],
)
async def test_log_metrics_bad_series_is_invalid_input_and_writes_nothing(gql, db, series, field):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={"runId": run_id, "points": [{"key": "ok", "value": 1.0}], "series": [series]},
    )

    # then
    assert data["logMetrics"]["__typename"] == "InvalidInput"
    assert data["logMetrics"]["field"] == field
    assert await table_counts(db) == before


async def test_log_metrics_points_and_series_over_the_limit_together_write_nothing(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={
            "runId": run_id,
            "points": [{"key": "a", "value": 1.0}] * 5_000,
            "series": [{"key": "b", "values": [1.0] * 5_001}],
        },
    )

    # then
    assert data["logMetrics"]["__typename"] == "InvalidInput"
    assert data["logMetrics"]["limit"] == 10_000
    assert await table_counts(db) == before


async def test_log_metrics_series_at_the_limit_is_written_whole(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(
        LOG_METRICS,
        input={"runId": run_id, "series": [{"key": "loss", "values": [0.5] * 10_000}]},
    )

    # then
    assert data["logMetrics"]["count"] == 10_000
    assert (await table_counts(db))["metric"] == 10_000


@pytest.mark.parametrize(
    "series",
    [
        {"key": "x", "values": ["nan"]},
        {"key": "x", "values": [True]},
        {"key": "x", "values": "1.0"},
        {"key": "x", "values": [1.0], "steps": [1.5]},
        {"key": "x", "values": [1.0], "steps": [True]},
        {"key": "x", "values": [1.0], "timestamps": [2**63]},
        {"key": "x", "values": [1.0], "timestamps": "now"},
    ],
    ids=[
        "lowercase-nan",
        "bool-value",
        "values-not-a-list",
        "float-step",
        "bool-step",
        "timestamp-beyond-int64",
        "timestamps-not-a-list",
    ],
)
async def test_log_metrics_unreadable_series_is_a_request_error(client, db, series):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    response = await client.post(
        "/graphql",
        json={"query": LOG_METRICS, "variables": {"input": {"runId": run_id, "series": [series]}}},
    )

    # then
    assert response.status_code < 500
    body = response.json()
    assert body["errors"]
    assert not body.get("data")
    assert_no_traceback(body)
    assert await table_counts(db) == before


LOG_METRICS_COUNT = f"""
mutation($input: LogMetricsInput!) {{
  logMetrics(input: $input) {{
    __typename
    ... on LogMetricsSuccess {{ count }}
    {ERROR} {INVALID_INPUT} {NOT_FOUND}
  }}
}}
"""

RUN_STEPS = """
query($id: ID!) {
  run(id: $id) {
    metrics { key step }
    metric(key: "x") { step }
    metricHistory(key: "x") { nodes { step } }
    metricSeries(key: "x") { steps }
  }
}
"""


async def test_a_step_the_api_accepts_can_be_read_back(gql, db):
    # given: MLflow steps are 64-bit; the series input takes them as LongList
    run_id = await seed_run(db)
    big = 2**40

    # when
    written = await gql(
        LOG_METRICS_COUNT,
        input={"runId": run_id, "series": [{"key": "x", "values": [1.0], "steps": [big]}]},
    )

    # then: either refused up front, or stored and readable through every field
    body = await gql.raw(RUN_STEPS, id=run_id)
    assert "errors" not in body, body["errors"]
    run = body["data"]["run"]
    if written["logMetrics"]["__typename"] == "InvalidInput":
        assert written["logMetrics"]["field"].startswith("series[0].steps")
        assert run["metrics"] == []
    else:
        assert run["metrics"] == [{"key": "x", "step": big}]
        assert run["metric"] == {"step": big}
        assert run["metricHistory"]["nodes"] == [{"step": big}]
        assert run["metricSeries"]["steps"] == [big]


# logParams


async def test_log_params_adds_new_keys(gql, db):
    # given
    run_id = await seed_run(db, params={"lr": "0.1"})

    # when
    data = await gql(LOG_PARAMS, input={"runId": run_id, "params": kv(opt="adam", depth="3")})

    # then
    assert data["logParams"]["__typename"] == "LogParamsSuccess"
    expected = kv(depth="3", lr="0.1", opt="adam")
    assert data["logParams"]["run"]["params"] == expected
    assert (await gql(RUN, id=run_id))["run"]["params"] == expected


async def test_log_params_same_value_again_is_a_no_op(gql, db):
    # given
    run_id = await seed_run(db, params={"lr": "0.1"})
    before = await table_counts(db)

    # when
    data = await gql(LOG_PARAMS, input={"runId": run_id, "params": kv(lr="0.1")})

    # then
    assert data["logParams"]["__typename"] == "LogParamsSuccess"
    assert data["logParams"]["run"]["params"] == kv(lr="0.1")
    assert await table_counts(db) == before


async def test_log_params_different_value_is_a_conflict_and_writes_none_of_the_batch(gql, db):
    # given
    run_id = await seed_run(db, params={"lr": "0.1"})
    before = await table_counts(db)

    # when
    data = await gql(
        LOG_PARAMS, input={"runId": run_id, "params": kv(aaa="new", lr="0.2", zzz="new")}
    )

    # then
    payload = data["logParams"]
    assert payload["__typename"] == "Conflict"
    assert payload["code"] == "CONFLICT"
    assert payload["field"] == "params[lr]"
    assert "0.1" in payload["message"]
    assert await table_counts(db) == before
    assert (await gql(RUN, id=run_id))["run"]["params"] == kv(lr="0.1")


async def test_log_params_duplicate_key_in_the_list_is_invalid_input(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(LOG_PARAMS, input={"runId": run_id, "params": kv(a="1") + kv(a="1")})

    # then
    assert data["logParams"]["__typename"] == "InvalidInput"
    assert data["logParams"]["field"] == "params"
    assert await table_counts(db) == before


async def test_log_params_value_over_the_limit_is_invalid_input(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(LOG_PARAMS, input={"runId": run_id, "params": kv(ok="1", big="v" * 6001)})

    # then
    assert data["logParams"]["__typename"] == "InvalidInput"
    assert data["logParams"]["field"] == "params[big].value"
    assert data["logParams"]["limit"] == 6000
    assert await table_counts(db) == before


async def test_log_params_to_an_unknown_run_is_not_found(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(LOG_PARAMS, input={"runId": UNKNOWN_RUN_ID, "params": kv(a="1")})

    # then
    assert data["logParams"]["__typename"] == "NotFound"
    assert data["logParams"]["field"] == "runId"
    assert data["logParams"]["value"] == UNKNOWN_RUN_ID
    assert await table_counts(db) == before


# setRunTags


async def test_set_run_tags_adds_and_overwrites(gql, db):
    # given
    run_id = await seed_run(db, tags={"team": "a", "stage": "dev"})

    # when
    data = await gql(SET_RUN_TAGS, input={"runId": run_id, "tags": kv(team="b", new="x")})

    # then
    expected = kv(new="x", stage="dev", team="b")
    assert data["setRunTags"]["__typename"] == "SetRunTagsSuccess"
    assert data["setRunTags"]["run"]["tags"] == expected
    assert (await gql(RUN, id=run_id))["run"]["tags"] == expected


async def test_set_run_tags_duplicate_key_is_invalid_input(gql, db):
    # given
    run_id = await seed_run(db, tags={"team": "a"})
    before = await table_counts(db)

    # when
    data = await gql(SET_RUN_TAGS, input={"runId": run_id, "tags": kv(team="b") + kv(team="c")})

    # then
    assert data["setRunTags"]["__typename"] == "InvalidInput"
    assert data["setRunTags"]["field"] == "tags"
    assert await table_counts(db) == before
    assert (await gql(RUN, id=run_id))["run"]["tags"] == kv(team="a")


async def test_set_run_tags_on_an_unknown_run_is_not_found(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(SET_RUN_TAGS, input={"runId": UNKNOWN_RUN_ID, "tags": kv(a="1")})

    # then
    assert data["setRunTags"]["__typename"] == "NotFound"
    assert data["setRunTags"]["field"] == "runId"
    assert await table_counts(db) == before


# endRun


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
async def test_end_run_sets_status_and_end_time(gql, db, status):
    # given
    run_id = await seed_run(db, start=0)

    # when
    data = await gql(END_RUN, input={"runId": run_id, "status": status, "endTime": iso(30)})

    # then
    run = data["endRun"]["run"]
    assert run["status"] == status
    assert datetime.fromisoformat(run["endTime"]) == at(30)
    read = (await gql(RUN, id=run_id))["run"]
    assert read["status"] == status
    assert read["endTime"] == "2024-01-01T00:30:00+00:00"
    assert read["startTime"] == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "end", ["2024-03-01T14:00:00+02:00", "2024-03-01T12:00:00"], ids=["offset", "naive"]
)
async def test_end_run_returns_end_time_in_utc_as_queries_do(gql, db, end):
    # given
    run_id = await seed_run(db, start=0)

    # when
    data = await gql(END_RUN, input={"runId": run_id, "endTime": end})

    # then
    read = await gql(RUN, id=run_id)
    assert read["run"]["endTime"] == "2024-03-01T12:00:00+00:00"
    assert data["endRun"]["run"]["endTime"] == read["run"]["endTime"]


async def test_end_run_defaults_to_finished_now(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(END_RUN, input={"runId": run_id})

    # then
    run = data["endRun"]["run"]
    assert run["status"] == "FINISHED"
    assert datetime.fromisoformat(run["endTime"]) >= datetime.fromisoformat(run["startTime"])


async def test_end_run_with_running_is_invalid_input_and_changes_nothing(gql, db):
    # given
    run_id = await seed_run(db)
    before = await table_counts(db)

    # when
    data = await gql(END_RUN, input={"runId": run_id, "status": "RUNNING"})

    # then
    payload = data["endRun"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "status"
    read = (await gql(RUN, id=run_id))["run"]
    assert (read["status"], read["endTime"]) == ("RUNNING", None)
    assert await table_counts(db) == before


async def test_end_run_on_an_unknown_run_is_not_found(gql, db):
    # given
    before = await table_counts(db)

    # when
    data = await gql(END_RUN, input={"runId": UNKNOWN_RUN_ID, "status": "FAILED"})

    # then
    assert data["endRun"] == {
        "__typename": "NotFound",
        "message": data["endRun"]["message"],
        "code": "NOT_FOUND",
        "field": "runId",
        "value": UNKNOWN_RUN_ID,
    }
    assert await table_counts(db) == before


async def test_end_run_before_its_start_is_invalid_input_and_changes_nothing(gql, db):
    # given
    run_id = await seed_run(db, start=30)
    before = await table_counts(db)

    # when
    data = await gql(END_RUN, input={"runId": run_id, "endTime": iso(29)})

    # then
    payload = data["endRun"]
    assert (payload["__typename"], payload["code"]) == ("InvalidInput", "INVALID_INPUT")
    assert payload["field"] == "endTime"
    assert iso(30) in payload["message"]
    read = (await gql(RUN, id=run_id))["run"]
    assert (read["status"], read["endTime"]) == ("RUNNING", None)
    assert await table_counts(db) == before


async def test_end_run_at_its_start_time_is_allowed(gql, db):
    # given
    run_id = await seed_run(db, start=30)

    # when
    data = await gql(END_RUN, input={"runId": run_id, "endTime": iso(30)})

    # then
    assert data["endRun"]["run"]["endTime"] == iso(30)


@pytest.mark.parametrize(
    ("status", "end", "field"),
    [("FAILED", 40, "status"), ("FINISHED", 50, "endTime"), ("KILLED", None, "status")],
    ids=["other-status", "other-end-time", "other-status-no-time"],
)
async def test_ending_an_ended_run_differently_is_a_conflict_and_changes_nothing(
    gql, db, status, end, field
):
    # given
    run_id = await seed_run(db, start=0)
    await gql(END_RUN, input={"runId": run_id, "status": "FINISHED", "endTime": iso(40)})
    before = await table_counts(db)

    # when
    ask = {"runId": run_id, "status": status}
    if end is not None:
        ask["endTime"] = iso(end)
    data = await gql(END_RUN, input=ask)

    # then
    payload = data["endRun"]
    assert (payload["__typename"], payload["code"]) == ("Conflict", "CONFLICT")
    assert payload["field"] == field
    assert "FINISHED" in payload["message"]
    read = (await gql(RUN, id=run_id))["run"]
    assert (read["status"], read["endTime"]) == ("FINISHED", "2024-01-01T00:40:00+00:00")
    assert await table_counts(db) == before


@pytest.mark.parametrize("end", [40, None], ids=["same-time", "time-omitted"])
async def test_ending_an_ended_run_again_the_same_way_returns_it_unchanged(gql, db, end):
    # given
    run_id = await seed_run(db, start=0)
    first = await gql(END_RUN, input={"runId": run_id, "status": "FAILED", "endTime": iso(40)})
    before = await table_counts(db)

    # when
    ask = {"runId": run_id, "status": "FAILED"}
    if end is not None:
        ask["endTime"] = iso(end)
    again = await gql(END_RUN, input=ask)

    # then
    assert again["endRun"] == first["endRun"]
    assert await table_counts(db) == before
