"""Tracking queries over HTTP: experiments, experiment, run, and the fields of Experiment and Run.

The helpers at the top are shared by the other modules of tests/graphql/tracking.
"""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import Database
from app.registry.stages import Stage
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus
from tests.factories import ACTOR, make_version

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
UNKNOWN_RUN_ID = "0" * 32


def at(minutes: int) -> datetime:
    """A fixed start time, `minutes` after T0: tests never depend on the wall clock."""
    return T0 + timedelta(minutes=minutes)


def iso(minutes: int) -> str:
    return at(minutes).isoformat()


async def seed_run(
    db: Database,
    *,
    experiment: str = "exp",
    name: str | None = None,
    start: int | None = None,
    history: dict[str, list[Any]] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    status: RunStatus | None = None,
) -> str:
    """A run whose metrics have the given histories (one point per step 0, 1, 2...)."""
    async with db.unit_of_work() as session:
        run = await tracking_service.start_run(
            session,
            experiment=experiment,
            name=name,
            params=params,
            tags=tags,
            start_time=None if start is None else at(start),
            actor=ACTOR,
        )
        points = [
            tracking_metrics.MetricPoint(key, float(value), step, 1_000 + step)
            for key, values in (history or {}).items()
            for step, value in enumerate(values)
        ]
        if points:
            await tracking_metrics.log_metrics(session, actor="test", run_id=run.id, points=points)
        if status is not None:
            await tracking_service.end_run(session, run_id=run.id, status=status, actor=ACTOR)
    return run.id


async def seed_experiment(db: Database, name: str, **kwargs: Any) -> None:
    async with db.unit_of_work() as session:
        await tracking_service.create_experiment(session, name=name, actor=ACTOR, **kwargs)


def assert_no_traceback(body: Any) -> None:
    text = json.dumps(body)
    assert "Traceback" not in text, text
    assert "INTERNAL_SERVER_ERROR" not in text, text


async def walk(gql: Any, query: str, path: list[str], **variables: Any) -> list[dict[str, Any]]:
    """Every edge of a connection, page after page, following endCursor."""
    edges: list[dict[str, Any]] = []
    after = None
    for _ in range(1_000):
        data = await gql(query, after=after, **variables)
        for key in path:
            data = data[key]
        edges.extend(data["edges"])
        if not data["pageInfo"]["hasNextPage"]:
            assert data["pageInfo"]["endCursor"] == (edges[-1]["cursor"] if edges else None)
            return edges
        after = data["pageInfo"]["endCursor"]
        assert after == data["edges"][-1]["cursor"]
    raise AssertionError("pagination did not end")


EXPERIMENTS = """
query($first: Int, $after: String) {
  experiments(first: $first, after: $after) {
    edges { cursor node { id name } }
    nodes { id name }
    pageInfo { hasNextPage endCursor }
  }
}
"""

EXPERIMENT = """
query($name: String!) {
  experiment(name: $name) {
    id name description createdAt runCount
    tags { key value }
  }
}
"""

CREATE_EXPERIMENT = """
mutation($input: CreateExperimentInput!) {
  createExperiment(input: $input) {
    __typename
    ... on CreateExperimentSuccess { experiment { id name } }
  }
}
"""

RUN = """
query($id: ID!) {
  run(id: $id) {
    id name status startTime endTime
    experiment { id name }
    params { key value }
    tags { key value }
    metrics { key value step timestamp min max }
  }
}
"""

RUN_METRIC = """
query($id: ID!, $key: String!) {
  run(id: $id) {
    metric(key: $key) { key value step timestamp min max }
  }
}
"""

METRIC_HISTORY = """
query($id: ID!, $key: String!, $first: Int, $after: String) {
  run(id: $id) {
    metricHistory(key: $key, first: $first, after: $after) {
      edges { cursor node { key value step timestamp } }
      nodes { value step timestamp }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

RUN_MODEL_VERSIONS = """
query($id: ID!) {
  run(id: $id) {
    modelVersions { version stage model { name } run { id } }
  }
}
"""

EXPERIMENT_RUNS_AND_BEST = """
query($name: String!, $filter: RunFilter, $orderBy: RunOrder, $first: Int, $after: String) {
  experiment(name: $name) {
    runCount
    runs(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
      edges { cursor node { name } }
      pageInfo { hasNextPage endCursor }
    }
    highest: bestRun(metric: "acc") { name }
    lowest: bestRun(metric: "acc", goal: MINIMIZE) { name }
    highestEver: bestRun(metric: "acc", aggregate: MAX) { name }
    bestSgd: bestRun(metric: "acc", filter: {params: [{key: "opt", value: "sgd"}]}) { name }
    noSuchMetric: bestRun(metric: "nope") { name }
  }
}
"""

RUNS_SCREEN = """
query($experiment: String!) {
  runs(experiment: $experiment, first: 100) {
    nodes {
      id name status
      experiment { name runCount }
      params { key value }
      tags { key value }
      metrics { key value min max }
      acc: metric(key: "acc") { value }
      modelVersions { version }
    }
  }
}
"""


# experiments


async def test_experiments_pages_through_every_experiment_in_creation_order(gql, db):
    # given: names created out of alphabetical order, after the Default experiment
    for name in ["zeta", "alpha", "mid", "beta"]:
        await seed_experiment(db, name)

    # when
    edges = await walk(gql, EXPERIMENTS, ["experiments"], first=2)

    # then
    assert [e["node"]["name"] for e in edges] == ["Default", "zeta", "alpha", "mid", "beta"]
    assert edges[0]["node"]["id"] == "0"
    assert len({e["cursor"] for e in edges}) == 5


async def test_experiments_nodes_mirror_edges_and_last_page_has_no_next(gql, db):
    # given
    await seed_experiment(db, "one")

    # when
    data = await gql(EXPERIMENTS, first=5)

    # then
    page = data["experiments"]
    assert page["nodes"] == [e["node"] for e in page["edges"]]
    assert [n["name"] for n in page["nodes"]] == ["Default", "one"]
    assert page["pageInfo"] == {"hasNextPage": False, "endCursor": page["edges"][-1]["cursor"]}


async def test_experiments_exact_page_size_then_empty_last_page(gql, db):
    # given: Default plus one: exactly two experiments
    await seed_experiment(db, "one")

    # when
    first = (await gql(EXPERIMENTS, first=1))["experiments"]
    second = (await gql(EXPERIMENTS, first=1, after=first["pageInfo"]["endCursor"]))["experiments"]
    third = (await gql(EXPERIMENTS, first=1, after=second["pageInfo"]["endCursor"]))["experiments"]

    # then
    assert [n["name"] for n in first["nodes"]] == ["Default"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [n["name"] for n in second["nodes"]] == ["one"]
    assert second["pageInfo"]["hasNextPage"] is False
    assert third == {
        "edges": [],
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


# experiment


async def test_experiment_by_name_has_its_fields(gql, db):
    # given
    created = await gql(
        CREATE_EXPERIMENT,
        input={
            "name": "vision",
            "description": "image models",
            "tags": [{"key": "team", "value": "cv"}, {"key": "area", "value": "img"}],
        },
    )
    await seed_run(db, experiment="vision")
    await seed_run(db, experiment="vision")
    await seed_run(db, experiment="other")

    # when
    data = await gql(EXPERIMENT, name="vision")

    # then
    experiment = data["experiment"]
    assert experiment["id"] == created["createExperiment"]["experiment"]["id"]
    assert experiment["name"] == "vision"
    assert experiment["description"] == "image models"
    assert experiment["tags"] == [
        {"key": "area", "value": "img"},
        {"key": "team", "value": "cv"},
    ]
    assert experiment["runCount"] == 2
    assert datetime.fromisoformat(experiment["createdAt"]).utcoffset() == timedelta(0)


async def test_default_experiment_is_found_by_name_with_no_runs(gql):
    # when
    data = await gql(EXPERIMENT, name="Default")

    # then
    assert data["experiment"]["id"] == "0"
    assert data["experiment"]["runCount"] == 0
    assert data["experiment"]["tags"] == []


async def test_unknown_experiment_is_null(gql, db):
    # given
    await seed_experiment(db, "known")

    # when
    data = await gql(EXPERIMENT, name="unknown")

    # then
    assert data == {"experiment": None}


# run


async def test_run_has_its_fields(gql, db):
    # given
    run_id = await seed_run(
        db,
        experiment="exp",
        name="baseline",
        start=5,
        history={"loss": [0.9, 0.4, 0.6], "acc": [0.5]},
        params={"lr": "0.01", "opt": "adam"},
        tags={"team": "cv"},
    )

    # when
    data = await gql(RUN, id=run_id)

    # then
    run = data["run"]
    assert RUN_ID.match(run["id"])
    assert run["id"] == run_id
    assert run["name"] == "baseline"
    assert run["status"] == "RUNNING"
    assert datetime.fromisoformat(run["startTime"]) == at(5)
    assert run["endTime"] is None
    assert run["experiment"]["name"] == "exp"
    assert run["params"] == [{"key": "lr", "value": "0.01"}, {"key": "opt", "value": "adam"}]
    assert run["tags"] == [{"key": "team", "value": "cv"}]
    assert run["metrics"] == [
        {"key": "acc", "value": 0.5, "step": 0, "timestamp": 1000, "min": 0.5, "max": 0.5},
        {"key": "loss", "value": 0.6, "step": 2, "timestamp": 1002, "min": 0.4, "max": 0.9},
    ]


async def test_run_start_time_is_returned_in_utc(gql, db):
    # given
    run_id = await seed_run(db, start=0)

    # when
    data = await gql(RUN, id=run_id)

    # then
    assert data["run"]["startTime"] == "2024-01-01T00:00:00+00:00"


async def test_unknown_run_is_null(gql, db):
    # given
    await seed_run(db)

    # when
    unknown = await gql(RUN, id=UNKNOWN_RUN_ID)
    not_an_id = await gql(RUN, id="not-a-run-id")

    # then
    assert unknown == {"run": None}
    assert not_an_id == {"run": None}


async def test_run_metric_by_key_or_null(gql, db):
    # given
    run_id = await seed_run(db, history={"loss": [3.0, 1.0, 2.0]})

    # when
    loss = await gql(RUN_METRIC, id=run_id, key="loss")
    missing = await gql(RUN_METRIC, id=run_id, key="accuracy")

    # then
    assert loss["run"]["metric"] == {
        "key": "loss",
        "value": 2.0,
        "step": 2,
        "timestamp": 1002,
        "min": 1.0,
        "max": 3.0,
    }
    assert missing["run"]["metric"] is None


async def test_run_without_metrics_params_or_tags_has_empty_lists(gql, db):
    # given
    run_id = await seed_run(db)

    # when
    data = await gql(RUN, id=run_id)

    # then
    assert data["run"]["metrics"] == []
    assert data["run"]["params"] == []
    assert data["run"]["tags"] == []
    assert data["run"]["name"] is None


# metricHistory


async def test_metric_history_is_ordered_by_step_then_timestamp(gql, db):
    # given: points sent out of order, and another key that must not appear
    run_id = await seed_run(db)
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session,
            actor="test",
            run_id=run_id,
            points=[
                tracking_metrics.MetricPoint("loss", 5.0, 2, 100),
                tracking_metrics.MetricPoint("loss", 2.0, 0, 300),
                tracking_metrics.MetricPoint("acc", 0.1, 0, 50),
                tracking_metrics.MetricPoint("loss", 4.0, 1, 50),
                tracking_metrics.MetricPoint("loss", 3.0, 1, 20),
                tracking_metrics.MetricPoint("loss", 1.0, 0, 100),
            ],
        )

    # when
    data = await gql(METRIC_HISTORY, id=run_id, key="loss")

    # then
    history = data["run"]["metricHistory"]
    assert [(n["step"], n["timestamp"], n["value"]) for n in history["nodes"]] == [
        (0, 100, 1.0),
        (0, 300, 2.0),
        (1, 20, 3.0),
        (1, 50, 4.0),
        (2, 100, 5.0),
    ]
    assert {e["node"]["key"] for e in history["edges"]} == {"loss"}
    assert history["pageInfo"]["hasNextPage"] is False


async def test_metric_history_pages_yield_every_point_once_in_order(gql, db):
    # given: 25 points, two per step for some steps
    run_id = await seed_run(db)
    points = [tracking_metrics.MetricPoint("loss", float(i), i // 2, 1_000 + i) for i in range(25)]
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session, actor="test", run_id=run_id, points=list(reversed(points))
        )

    # when
    edges = await walk(
        gql, METRIC_HISTORY, ["run", "metricHistory"], id=run_id, key="loss", first=7
    )

    # then
    assert [e["node"]["value"] for e in edges] == [float(i) for i in range(25)]
    assert len({e["cursor"] for e in edges}) == 25


async def test_metric_history_of_unknown_key_is_empty(gql, db):
    # given
    run_id = await seed_run(db, history={"loss": [1.0]})

    # when
    data = await gql(METRIC_HISTORY, id=run_id, key="nope")

    # then
    assert data["run"]["metricHistory"] == {
        "edges": [],
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


METRIC_SERIES = """
query($id: ID!, $key: String!, $first: Int, $after: String) {
  run(id: $id) {
    metricSeries(key: $key, first: $first, after: $after) {
      key steps values timestamps
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def test_metric_series_gives_the_history_as_columns(gql, db):
    # given: points sent out of order, non-finite values among them
    run_id = await seed_run(db)
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session,
            actor="test",
            run_id=run_id,
            points=[
                tracking_metrics.MetricPoint("loss", float("inf"), 2, 100),
                tracking_metrics.MetricPoint("loss", float("nan"), 0, 300),
                tracking_metrics.MetricPoint("acc", 0.1, 0, 50),
                tracking_metrics.MetricPoint("loss", 0.25, 1, 50),
                tracking_metrics.MetricPoint("loss", 1.0, 0, 100),
            ],
        )

    # when
    data = await gql(METRIC_SERIES, id=run_id, key="loss")
    history = await gql(METRIC_HISTORY, id=run_id, key="loss")

    # then
    series = data["run"]["metricSeries"]
    assert series["key"] == "loss"
    assert series["steps"] == [0, 0, 1, 2]
    assert series["timestamps"] == [100, 300, 50, 100]
    assert series["values"] == [1.0, "NaN", 0.25, "Infinity"]
    assert series["pageInfo"]["hasNextPage"] is False
    nodes = history["run"]["metricHistory"]["nodes"]
    assert [[n["step"] for n in nodes], [n["value"] for n in nodes]] == [
        series["steps"],
        series["values"],
    ]


async def test_metric_series_pages_yield_every_point_once_in_order(gql, db):
    # given
    run_id = await seed_run(db)
    points = [tracking_metrics.MetricPoint("loss", float(i), i // 3, 1_000 + i) for i in range(20)]
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(
            session, actor="test", run_id=run_id, points=list(reversed(points))
        )

    # when
    values: list[float] = []
    after = None
    while True:
        page = (await gql(METRIC_SERIES, id=run_id, key="loss", first=6, after=after))["run"][
            "metricSeries"
        ]
        values += page["values"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then
    assert values == [float(i) for i in range(20)]


async def test_metric_series_of_unknown_key_is_empty(gql, db):
    # given
    run_id = await seed_run(db, history={"loss": [1.0]})

    # when
    data = await gql(METRIC_SERIES, id=run_id, key="nope")

    # then
    assert data["run"]["metricSeries"] == {
        "key": "nope",
        "steps": [],
        "values": [],
        "timestamps": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


# modelVersions


async def test_run_model_versions_lists_versions_made_from_it(gql, db):
    # given
    run_id = await seed_run(db)
    other_id = await seed_run(db)
    await make_version(db, model="clf", run_id=run_id)
    await make_version(db, model="clf", run_id=other_id)
    await make_version(db, model="clf", run_id=run_id, stage=Stage.STAGING)
    await make_version(db, model="det", run_id=run_id)

    # when
    data = await gql(RUN_MODEL_VERSIONS, id=run_id)
    other = await gql(RUN_MODEL_VERSIONS, id=other_id)
    bare = await gql(RUN_MODEL_VERSIONS, id=await seed_run(db))

    # then
    versions = data["run"]["modelVersions"]
    assert sorted((v["model"]["name"], v["version"], v["stage"]) for v in versions) == [
        ("clf", 1, "DEVELOPMENT"),
        ("clf", 3, "STAGING"),
        ("det", 1, "DEVELOPMENT"),
    ]
    assert {v["run"]["id"] for v in versions} == {run_id}
    assert [(v["model"]["name"], v["version"]) for v in other["run"]["modelVersions"]] == [
        ("clf", 2)
    ]
    assert bare["run"]["modelVersions"] == []


# Experiment.runs and Experiment.bestRun


async def test_experiment_runs_and_best_run_fields(gql, db):
    # given
    await seed_run(db, name="a", start=0, history={"acc": [0.9, 0.2]}, params={"opt": "adam"})
    await seed_run(db, name="b", start=1, history={"acc": [0.6]}, params={"opt": "sgd"})
    await seed_run(db, name="c", start=2, history={"acc": [0.4]}, params={"opt": "sgd"})
    await seed_run(db, name="d", start=3)
    await seed_run(db, name="elsewhere", experiment="other", history={"acc": [1.0]})

    # when
    newest_first = await gql(EXPERIMENT_RUNS_AND_BEST, name="exp")
    by_acc = await gql(
        EXPERIMENT_RUNS_AND_BEST,
        name="exp",
        orderBy={"metric": "acc", "direction": "ASC"},
        filter={"metrics": [{"metric": "acc", "op": "GT", "value": 0.3}]},
    )

    # then
    experiment = newest_first["experiment"]
    assert experiment["runCount"] == 4
    assert [e["node"]["name"] for e in experiment["runs"]["edges"]] == ["d", "c", "b", "a"]
    assert experiment["highest"] == {"name": "b"}
    assert experiment["lowest"] == {"name": "a"}
    assert experiment["highestEver"] == {"name": "a"}
    assert experiment["bestSgd"] == {"name": "b"}
    assert experiment["noSuchMetric"] is None
    assert [e["node"]["name"] for e in by_acc["experiment"]["runs"]["edges"]] == ["c", "b"]


async def test_experiment_runs_pages_walk_every_run_once(gql, db):
    # given
    for i in range(7):
        await seed_run(db, name=f"r{i}", start=i % 3)

    # when
    edges = await walk(gql, EXPERIMENT_RUNS_AND_BEST, ["experiment", "runs"], name="exp", first=3)
    whole = await gql(EXPERIMENT_RUNS_AND_BEST, name="exp", first=500)

    # then
    names = [e["node"]["name"] for e in edges]
    assert sorted(names) == [f"r{i}" for i in range(7)]
    assert names == [e["node"]["name"] for e in whole["experiment"]["runs"]["edges"]]


# loaders: one screen, a fixed number of statements


async def test_runs_screen_statement_count_does_not_grow_with_runs(gql, db, sql_counter):
    # given
    async def seed(experiment: str, count: int) -> None:
        for i in range(count):
            run_id = await seed_run(
                db,
                experiment=experiment,
                history={"acc": [0.1 * i], "loss": [1.0]},
                params={"lr": "0.1"},
                tags={"i": str(i)},
            )
            await make_version(db, model=f"m-{experiment}", run_id=run_id)

    await seed("small", 2)
    await seed("large", 8)

    # when
    sql_counter.reset()
    small = await gql(RUNS_SCREEN, experiment="small")
    small_statements = sql_counter.count
    sql_counter.reset()
    large = await gql(RUNS_SCREEN, experiment="large")
    large_statements = sql_counter.count

    # then
    assert len(small["runs"]["nodes"]) == 2
    assert len(large["runs"]["nodes"]) == 8
    assert all(len(n["metrics"]) == 2 and n["modelVersions"] for n in large["runs"]["nodes"])
    assert large_statements == small_statements


EXPERIMENTS_SCREEN = """
query {
  experiments(first: 100) {
    nodes {
      name
      runCount
      recent: runs(first: 2) {
        nodes { name experiment { name } }
        pageInfo { hasNextPage }
      }
      good: runs(
        first: 5, orderBy: {metric: "acc"}, filter: {metrics: [{metric: "acc", op: GTE, value: 0.5}]}
      ) {
        nodes { name }
      }
    }
  }
}
"""

EXPERIMENTS_BEST_RUN_SCREEN = """
query {
  experiments(first: 100) {
    nodes { name bestRun(metric: "acc") { name } }
  }
}
"""


async def seed_experiments_with_runs(db: Database, numbers: range) -> None:
    """Experiments e<n>, where e<n> has n % 4 runs (none at all when n % 4 == 0)."""
    for e in numbers:
        for r, acc in enumerate([0.2, 0.6, 0.9][: e % 4]):
            await seed_run(
                db, experiment=f"e{e}", name=f"e{e}-r{r}", start=r, history={"acc": [acc]}
            )
        if e % 4 == 0:
            await seed_experiment(db, f"e{e}")


async def test_experiments_screen_gives_each_experiment_its_own_runs_page(gql, db):
    # given: e0 has no runs, e1 one, e2 two, e3 three
    await seed_experiments_with_runs(db, range(4))

    # when
    data = await gql(EXPERIMENTS_SCREEN)

    # then
    by_name = {n["name"]: n for n in data["experiments"]["nodes"]}
    assert [by_name[f"e{e}"]["runCount"] for e in range(4)] == [0, 1, 2, 3]
    recent = {name: [r["name"] for r in n["recent"]["nodes"]] for name, n in by_name.items()}
    assert recent == {
        "Default": [],
        "e0": [],
        "e1": ["e1-r0"],
        "e2": ["e2-r1", "e2-r0"],
        "e3": ["e3-r2", "e3-r1"],
    }
    assert [by_name[f"e{e}"]["recent"]["pageInfo"]["hasNextPage"] for e in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    assert all(
        r["experiment"]["name"] == name for name, n in by_name.items() for r in n["recent"]["nodes"]
    )
    good = {name: [r["name"] for r in n["good"]["nodes"]] for name, n in by_name.items()}
    assert good == {"Default": [], "e0": [], "e1": [], "e2": ["e2-r1"], "e3": ["e3-r2", "e3-r1"]}


async def test_experiments_screen_statement_count_does_not_grow_with_experiments(
    gql, db, sql_counter
):
    # given
    await seed_experiments_with_runs(db, range(3))
    sql_counter.reset()
    few = await gql(EXPERIMENTS_SCREEN)
    few_statements = sql_counter.count
    await seed_experiments_with_runs(db, range(3, 15))

    # when
    sql_counter.reset()
    many = await gql(EXPERIMENTS_SCREEN)

    # then
    assert len(few["experiments"]["nodes"]) == 4
    assert len(many["experiments"]["nodes"]) == 16
    assert sql_counter.count == few_statements


async def test_experiments_best_run_statement_count_does_not_grow_with_experiments(
    gql, db, sql_counter
):
    # given
    await seed_experiments_with_runs(db, range(3))
    sql_counter.reset()
    await gql(EXPERIMENTS_BEST_RUN_SCREEN)
    few_statements = sql_counter.count
    await seed_experiments_with_runs(db, range(3, 15))

    # when
    sql_counter.reset()
    many = await gql(EXPERIMENTS_BEST_RUN_SCREEN)

    # then
    best = {n["name"]: n["bestRun"] for n in many["experiments"]["nodes"]}
    assert best["e3"] == {"name": "e3-r2"}
    assert best["e0"] is None
    assert sql_counter.count == few_statements
