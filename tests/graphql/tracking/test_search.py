"""Run search over HTTP: Query.runs filters, orderings and keyset pages; Query.bestRun."""

import pytest

from app.tracking.models import RunStatus
from tests.graphql.tracking.test_tracking import assert_no_traceback, seed_run, walk

RUNS = """
query($experiment: String!, $filter: RunFilter, $orderBy: RunOrder, $first: Int, $after: String) {
  runs(experiment: $experiment, filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    edges { cursor node { id name startTime } }
    nodes { name }
    pageInfo { hasNextPage endCursor }
  }
}
"""

BEST_RUN = """
query(
  $experiment: String!, $metric: String!, $goal: MetricGoal!, $aggregate: MetricAggregate!,
  $filter: RunFilter
) {
  bestRun(
    experiment: $experiment, metric: $metric, goal: $goal, aggregate: $aggregate, filter: $filter
  ) {
    id name
    metric(key: $metric) { value min max }
  }
}
"""

BEST_RUN_DEFAULTS = """
query($experiment: String!, $metric: String!) {
  bestRun(experiment: $experiment, metric: $metric) { name }
}
"""


async def run_names(gql, **variables) -> list[str]:
    data = await gql(RUNS, experiment=variables.pop("experiment", "exp"), first=500, **variables)
    return [n["name"] for n in data["runs"]["nodes"]]


async def best(gql, metric="acc", goal="MAXIMIZE", aggregate="LAST", **variables):
    data = await gql(
        BEST_RUN,
        experiment=variables.pop("experiment", "exp"),
        metric=metric,
        goal=goal,
        aggregate=aggregate,
        **variables,
    )
    return data["bestRun"]


def metric_filter(op: str, value: float, metric: str = "acc", aggregate: str = "LAST") -> dict:
    return {"metrics": [{"metric": metric, "op": op, "value": value, "aggregate": aggregate}]}


# filters


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("EQ", {"mid"}),
        ("NE", {"low", "high"}),
        ("GT", {"high"}),
        ("GTE", {"mid", "high"}),
        ("LT", {"low"}),
        ("LTE", {"low", "mid"}),
    ],
)
async def test_runs_filter_compares_the_latest_metric_value(gql, db, op, expected):
    # given: histories whose earlier points would match differently than the latest
    await seed_run(db, name="low", start=0, history={"acc": [0.9, 0.1]})
    await seed_run(db, name="mid", start=1, history={"acc": [0.1, 0.5]})
    await seed_run(db, name="high", start=2, history={"acc": [0.5, 0.9]})
    await seed_run(db, name="without", start=3, history={"loss": [0.5]})
    await seed_run(db, name="elsewhere", experiment="other", history={"acc": [0.5]})

    # when
    names = await run_names(gql, filter=metric_filter(op, 0.5))

    # then
    assert set(names) == expected
    assert len(names) == len(expected)


@pytest.mark.parametrize(
    ("aggregate", "op", "value", "expected"),
    [
        ("MAX", "GTE", 0.9, {"low", "high"}),
        ("MIN", "LTE", 0.1, {"low", "mid"}),
        ("LAST", "GTE", 0.9, {"high"}),
    ],
)
async def test_runs_filter_on_a_metric_aggregate(gql, db, aggregate, op, value, expected):
    # given
    await seed_run(db, name="low", history={"acc": [0.9, 0.1]})
    await seed_run(db, name="mid", history={"acc": [0.1, 0.5]})
    await seed_run(db, name="high", history={"acc": [0.5, 0.9]})

    # when
    names = await run_names(gql, filter=metric_filter(op, value, aggregate=aggregate))

    # then
    assert set(names) == expected


async def test_runs_filter_by_param_equality(gql, db):
    # given
    await seed_run(db, name="adam", params={"opt": "adam", "lr": "0.1"})
    await seed_run(db, name="sgd", params={"opt": "sgd", "lr": "0.1"})
    await seed_run(db, name="none")

    # when
    adam = await run_names(gql, filter={"params": [{"key": "opt", "value": "adam"}]})
    both_lr = await run_names(gql, filter={"params": [{"key": "lr", "value": "0.1"}]})
    adam_and_lr = await run_names(
        gql, filter={"params": [{"key": "opt", "value": "adam"}, {"key": "lr", "value": "0.1"}]}
    )
    other_value = await run_names(gql, filter={"params": [{"key": "opt", "value": "rmsprop"}]})
    value_of_another_key = await run_names(gql, filter={"params": [{"key": "lr", "value": "adam"}]})

    # then
    assert adam == ["adam"]
    assert set(both_lr) == {"adam", "sgd"}
    assert adam_and_lr == ["adam"]
    assert other_value == []
    assert value_of_another_key == []


async def test_runs_filter_by_tag_equality(gql, db):
    # given
    await seed_run(db, name="cv", tags={"team": "cv"})
    await seed_run(db, name="nlp", tags={"team": "nlp"}, params={"team": "cv"})
    await seed_run(db, name="none")

    # when
    names = await run_names(gql, filter={"tags": [{"key": "team", "value": "cv"}]})

    # then: a param with the same key and value is not a tag
    assert names == ["cv"]


async def test_runs_filter_by_status(gql, db):
    # given
    await seed_run(db, name="running")
    await seed_run(db, name="finished", status=RunStatus.FINISHED)
    await seed_run(db, name="failed", status=RunStatus.FAILED)
    await seed_run(db, name="killed", status=RunStatus.KILLED)

    # when
    finished = await run_names(gql, filter={"status": ["FINISHED"]})
    ended_badly = await run_names(gql, filter={"status": ["FAILED", "KILLED"]})
    running = await run_names(gql, filter={"status": ["RUNNING"]})
    unfiltered = await run_names(gql, filter={"status": []})

    # then
    assert finished == ["finished"]
    assert set(ended_badly) == {"failed", "killed"}
    assert running == ["running"]
    assert len(unfiltered) == 4


async def test_runs_combined_filters_must_all_hold(gql, db):
    # given
    common = {"params": {"opt": "adam"}, "tags": {"team": "cv"}, "status": RunStatus.FINISHED}
    await seed_run(db, name="match", history={"acc": [0.9], "loss": [0.1]}, **common)
    await seed_run(db, name="low_acc", history={"acc": [0.5], "loss": [0.1]}, **common)
    await seed_run(db, name="high_loss", history={"acc": [0.9], "loss": [0.5]}, **common)
    await seed_run(
        db,
        name="wrong_param",
        history={"acc": [0.9], "loss": [0.1]},
        **{**common, "params": {"opt": "sgd"}},
    )
    await seed_run(
        db,
        name="wrong_tag",
        history={"acc": [0.9], "loss": [0.1]},
        **{**common, "tags": {"team": "nlp"}},
    )
    await seed_run(
        db,
        name="wrong_status",
        history={"acc": [0.9], "loss": [0.1]},
        **{**common, "status": RunStatus.FAILED},
    )

    # when
    names = await run_names(
        gql,
        filter={
            "metrics": [
                {"metric": "acc", "op": "GT", "value": 0.8},
                {"metric": "loss", "op": "LT", "value": 0.2},
            ],
            "params": [{"key": "opt", "value": "adam"}],
            "tags": [{"key": "team", "value": "cv"}],
            "status": ["FINISHED", "KILLED"],
        },
    )

    # then
    assert names == ["match"]


async def test_runs_of_an_experiment_with_no_runs_is_empty(gql):
    # when
    data = await gql(RUNS, experiment="Default")

    # then
    assert data["runs"] == {
        "edges": [],
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


async def test_runs_of_an_unknown_experiment_is_not_found(gql, db):
    # given
    await seed_run(db, experiment="exp")

    # when
    body = await gql.raw(RUNS, experiment="missing")

    # then
    assert_no_traceback(body)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "experiment"
    assert error["extensions"]["value"] == "missing"
    assert error["path"] == ["runs"]


# orderings


async def test_runs_default_order_is_newest_first(gql, db):
    # given: created in an order that differs from their start times
    await seed_run(db, name="middle", start=10)
    await seed_run(db, name="newest", start=20)
    await seed_run(db, name="oldest", start=0)

    # when
    default = await run_names(gql)
    explicit = await run_names(gql, orderBy={})
    oldest_first = await run_names(gql, orderBy={"direction": "ASC"})

    # then
    assert default == ["newest", "middle", "oldest"]
    assert explicit == default
    assert oldest_first == ["oldest", "middle", "newest"]


async def test_runs_order_by_metric_puts_runs_without_it_last(gql, db):
    # given
    await seed_run(db, name="r03", start=0, history={"acc": [0.3]})
    await seed_run(db, name="none_a", start=1, history={"loss": [0.1]})
    await seed_run(db, name="r07", start=2, history={"acc": [0.7]})
    await seed_run(db, name="r05", start=3, history={"acc": [0.9, 0.5]})
    await seed_run(db, name="none_b", start=4)
    await seed_run(db, name="rneg", start=5, history={"acc": [-2.0]})

    # when
    desc = await run_names(gql, orderBy={"metric": "acc", "direction": "DESC"})
    asc = await run_names(gql, orderBy={"metric": "acc", "direction": "ASC"})
    default_direction = await run_names(gql, orderBy={"metric": "acc"})

    # then
    assert desc[:4] == ["r07", "r05", "r03", "rneg"]
    assert asc[:4] == ["rneg", "r03", "r05", "r07"]
    assert set(desc[4:]) == set(asc[4:]) == {"none_a", "none_b"}
    assert default_direction == desc


async def test_runs_order_by_metric_aggregate(gql, db):
    # given: LAST, MIN and MAX each rank these runs differently
    await seed_run(db, name="a", start=0, history={"acc": [0.1, 0.99, 0.5]})
    await seed_run(db, name="b", start=1, history={"acc": [0.8, 0.6]})
    await seed_run(db, name="c", start=2, history={"acc": [0.4, 0.7]})

    # when
    by_last = await run_names(gql, orderBy={"metric": "acc", "aggregate": "LAST"})
    by_min = await run_names(gql, orderBy={"metric": "acc", "aggregate": "MIN"})
    by_max = await run_names(gql, orderBy={"metric": "acc", "aggregate": "MAX"})
    by_max_asc = await run_names(
        gql, orderBy={"metric": "acc", "aggregate": "MAX", "direction": "ASC"}
    )

    # then
    assert by_last == ["c", "b", "a"]
    assert by_min == ["b", "c", "a"]
    assert by_max == ["a", "b", "c"]
    assert by_max_asc == ["c", "b", "a"]


async def test_runs_order_by_metric_with_infinite_values(gql, db):
    # given
    await seed_run(db, name="pos_inf", start=0, history={"acc": [float("inf")]})
    await seed_run(db, name="neg_inf", start=1, history={"acc": [float("-inf")]})
    await seed_run(db, name="zero", start=2, history={"acc": [0.0]})
    await seed_run(db, name="none", start=3)

    # when
    desc = await walk(gql, RUNS, ["runs"], experiment="exp", orderBy={"metric": "acc"}, first=1)
    asc = await walk(
        gql,
        RUNS,
        ["runs"],
        experiment="exp",
        orderBy={"metric": "acc", "direction": "ASC"},
        first=1,
    )

    # then
    assert [e["node"]["name"] for e in desc] == ["pos_inf", "zero", "neg_inf", "none"]
    assert [e["node"]["name"] for e in asc] == ["neg_inf", "zero", "pos_inf", "none"]


# keyset pagination


ORDERS = [
    None,
    {"direction": "ASC"},
    {"metric": "acc", "direction": "DESC"},
    {"metric": "acc", "direction": "ASC"},
    {"metric": "acc", "aggregate": "MAX"},
    {"metric": "acc", "aggregate": "MIN", "direction": "ASC"},
]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: str(o and list(o.values())))
@pytest.mark.parametrize("page_size", [1, 2, 5])
async def test_runs_pages_yield_every_run_once_in_order(gql, db, order, page_size):
    # given: ties on start time, ties on metric value (0.0 too), runs without the metric
    specs = [
        ("a", 0, [0.5]),
        ("b", 0, [0.5]),
        ("c", 0, None),
        ("d", 1, [0.0, 0.2]),
        ("e", 1, [0.0]),
        ("f", 2, [0.9, 0.1]),
        ("g", 2, None),
        ("h", 3, [0.5]),
        ("i", 3, [-0.25]),
        ("j", 4, [0.0]),
        ("k", 4, [0.75, 0.5]),
    ]
    for name, start, values in specs:
        await seed_run(db, name=name, start=start, history={"acc": values} if values else None)

    # when
    edges = await walk(gql, RUNS, ["runs"], experiment="exp", orderBy=order, first=page_size)
    whole = await gql(RUNS, experiment="exp", orderBy=order, first=500)

    # then
    names = [e["node"]["name"] for e in edges]
    assert sorted(names) == sorted(name for name, _, _ in specs)
    assert names == [n["name"] for n in whole["runs"]["nodes"]]
    assert expected_order(specs, order, names) == names


def expected_order(specs, order, names) -> list[str]:
    """The order the API promises; ties the promise leaves open keep the API's order."""
    position = {name: i for i, name in enumerate(names)}
    order = order or {}
    sign = -1 if order.get("direction", "DESC") == "DESC" else 1
    if not order.get("metric"):
        start = {name: minute for name, minute, _ in specs}
        return sorted(names, key=lambda n: (sign * start[n], position[n]))
    pick = {"LAST": lambda v: v[-1], "MIN": min, "MAX": max}[order.get("aggregate", "LAST")]
    value = {name: pick(v) if v else None for name, _, v in specs}
    return sorted(names, key=lambda n: (value[n] is None, sign * (value[n] or 0.0), position[n]))


async def test_runs_pages_report_has_next_page(gql, db):
    # given
    for i in range(5):
        await seed_run(db, name=f"r{i}", start=i)

    after_four = (await gql(RUNS, experiment="exp", first=4))["runs"]["pageInfo"]["endCursor"]

    # when
    first = await gql(RUNS, experiment="exp", first=2)
    last = await gql(RUNS, experiment="exp", first=2, after=after_four)

    # then
    assert [n["name"] for n in first["runs"]["nodes"]] == ["r4", "r3"]
    assert first["runs"]["pageInfo"]["hasNextPage"] is True
    assert [n["name"] for n in last["runs"]["nodes"]] == ["r0"]
    assert last["runs"]["pageInfo"]["hasNextPage"] is False


async def test_runs_default_page_size_is_fifty(gql, db):
    # given
    for i in range(51):
        await seed_run(db, start=i)

    # when
    data = await gql(RUNS, experiment="exp")

    # then
    assert len(data["runs"]["nodes"]) == 50
    assert data["runs"]["pageInfo"]["hasNextPage"] is True


async def test_runs_filtered_and_ordered_pages_yield_every_match_once(gql, db):
    # given
    for i in range(12):
        await seed_run(
            db,
            name=f"r{i:02d}",
            start=i % 4,
            history={"acc": [(i % 5) / 10]},
            params={"opt": "adam" if i % 3 else "sgd"},
        )
    run_filter = {
        "params": [{"key": "opt", "value": "adam"}],
        "metrics": [{"metric": "acc", "op": "GTE", "value": 0.1}],
    }

    # when
    edges = await walk(
        gql,
        RUNS,
        ["runs"],
        experiment="exp",
        filter=run_filter,
        orderBy={"metric": "acc"},
        first=3,
    )

    # then
    names = [e["node"]["name"] for e in edges]
    expected = {f"r{i:02d}" for i in range(12) if i % 3 and i % 5 >= 1}
    assert sorted(names) == sorted(expected)
    values = [(int(n[1:]) % 5) / 10 for n in names]
    assert values == sorted(values, reverse=True)


# bestRun


async def test_best_run_maximize_and_minimize(gql, db):
    # given
    await seed_run(db, name="low", history={"acc": [0.2]})
    await seed_run(db, name="high", history={"acc": [0.8]})
    await seed_run(db, name="mid", history={"acc": [0.5]})
    await seed_run(db, name="elsewhere", experiment="other", history={"acc": [0.99]})

    # when
    maximize = await best(gql, goal="MAXIMIZE")
    minimize = await best(gql, goal="MINIMIZE")
    defaults = await gql(BEST_RUN_DEFAULTS, experiment="exp", metric="acc")

    # then
    assert maximize["name"] == "high"
    assert maximize["metric"]["value"] == 0.8
    assert minimize["name"] == "low"
    assert defaults["bestRun"] == {"name": "high"}


async def test_best_run_never_picks_a_run_without_the_metric(gql, db):
    # given
    await seed_run(db, name="with", start=5, history={"acc": [0.5]})
    await seed_run(db, name="without", start=0, history={"loss": [0.0]})
    await seed_run(db, name="empty", start=1)

    # when
    maximize = await best(gql, goal="MAXIMIZE")
    minimize = await best(gql, goal="MINIMIZE")
    min_of_min = await best(gql, goal="MINIMIZE", aggregate="MIN")

    # then
    assert maximize["name"] == minimize["name"] == min_of_min["name"] == "with"


async def test_best_run_is_null_when_no_run_has_the_metric(gql, db):
    # given
    await seed_run(db, history={"loss": [0.1]})

    # when
    result = await best(gql, metric="acc")
    empty_experiment = await best(gql, experiment="Default")

    # then
    assert result is None
    assert empty_experiment is None


async def test_best_run_never_picks_a_run_whose_latest_value_is_nan(gql, db):
    # given
    await seed_run(db, name="nan", start=0, history={"acc": [0.99, float("nan")]})
    await seed_run(db, name="real", start=1, history={"acc": [0.5]})

    # when
    maximize = await best(gql, goal="MAXIMIZE")
    minimize = await best(gql, goal="MINIMIZE")

    # then
    assert maximize["name"] == "real"
    assert minimize["name"] == "real"


async def test_best_run_tie_goes_to_the_earlier_start(gql, db):
    # given: the later-started run is created first
    await seed_run(db, name="later", start=10, history={"acc": [0.7]})
    await seed_run(db, name="earlier", start=5, history={"acc": [0.7]})
    await seed_run(db, name="worse", start=0, history={"acc": [0.6]})

    # when
    maximize = await best(gql, goal="MAXIMIZE")
    minimize_tie = await best(gql, goal="MINIMIZE", filter=metric_filter("GTE", 0.7))

    # then
    assert maximize["name"] == "earlier"
    assert minimize_tie["name"] == "earlier"


async def test_best_run_tie_on_start_time_goes_to_the_lower_id(gql, db):
    # given
    ids = [await seed_run(db, start=3, history={"acc": [0.7]}) for _ in range(6)]
    await seed_run(db, start=4, history={"acc": [0.7]})

    # when
    maximize = await best(gql, goal="MAXIMIZE")
    minimize = await best(gql, goal="MINIMIZE")

    # then
    assert maximize["id"] == min(ids)
    assert minimize["id"] == min(ids)


async def test_best_run_aggregates_pick_different_winners(gql, db):
    # given: last .5/.6/.7, min .1/.6/.4, max .99/.8/.7
    await seed_run(db, name="a", start=0, history={"acc": [0.1, 0.99, 0.5]})
    await seed_run(db, name="b", start=1, history={"acc": [0.8, 0.6]})
    await seed_run(db, name="c", start=2, history={"acc": [0.4, 0.7]})

    # when
    last = await best(gql, aggregate="LAST")
    minimum = await best(gql, aggregate="MIN")
    maximum = await best(gql, aggregate="MAX")
    lowest_last = await best(gql, aggregate="LAST", goal="MINIMIZE")
    lowest_min = await best(gql, aggregate="MIN", goal="MINIMIZE")
    lowest_max = await best(gql, aggregate="MAX", goal="MINIMIZE")

    # then
    assert last["name"] == "c"
    assert minimum["name"] == "b"
    assert maximum["name"] == "a"
    assert maximum["metric"] == {"value": 0.5, "min": 0.1, "max": 0.99}
    assert lowest_last["name"] == "a"
    assert lowest_min["name"] == "a"
    assert lowest_max["name"] == "c"


async def test_best_run_applies_the_filter(gql, db):
    # given
    await seed_run(db, name="adam_best", history={"acc": [0.9]}, params={"opt": "adam"})
    await seed_run(
        db, name="sgd_good", history={"acc": [0.8]}, params={"opt": "sgd"}, tags={"ok": "1"}
    )
    await seed_run(
        db,
        name="sgd_failed",
        history={"acc": [0.85]},
        params={"opt": "sgd"},
        status=RunStatus.FAILED,
    )
    await seed_run(db, name="sgd_untagged", history={"acc": [0.7]}, params={"opt": "sgd"})

    # when
    unfiltered = await best(gql)
    sgd = await best(gql, filter={"params": [{"key": "opt", "value": "sgd"}]})
    sgd_running = await best(
        gql, filter={"params": [{"key": "opt", "value": "sgd"}], "status": ["RUNNING"]}
    )
    tagged = await best(gql, filter={"tags": [{"key": "ok", "value": "1"}]})
    below = await best(gql, filter=metric_filter("LT", 0.8))
    nothing = await best(gql, filter={"params": [{"key": "opt", "value": "lion"}]})

    # then
    assert unfiltered["name"] == "adam_best"
    assert sgd["name"] == "sgd_failed"
    assert sgd_running["name"] == "sgd_good"
    assert tagged["name"] == "sgd_good"
    assert below["name"] == "sgd_untagged"
    assert nothing is None


async def test_best_run_filter_on_another_metric(gql, db):
    # given
    await seed_run(db, name="accurate_but_slow", history={"acc": [0.9], "latency": [300.0]})
    await seed_run(db, name="fast", history={"acc": [0.8], "latency": [20.0]})
    await seed_run(db, name="fastest_no_acc", history={"latency": [5.0]})

    # when
    result = await best(gql, filter=metric_filter("LTE", 100.0, metric="latency"))

    # then
    assert result["name"] == "fast"


async def test_best_run_of_an_unknown_experiment_is_a_not_found_error(gql, db):
    # given
    await seed_run(db, history={"acc": [0.5]})

    # when
    body = await gql.raw(
        BEST_RUN, experiment="missing", metric="acc", goal="MAXIMIZE", aggregate="LAST"
    )

    # then
    assert_no_traceback(body)
    assert body["data"] == {"bestRun": None}
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "experiment"
    assert error["extensions"]["value"] == "missing"
    assert error["path"] == ["bestRun"]
