"""The points of a logMetrics batch coerced by app/graphql/tracking/fast_points.py are what
graphql-core would make of them, or left to graphql-core: generated points of every kind
(valid, wrong types, missing and unknown fields, nulls, out-of-range numbers) are compared
with graphql-core's own coercion of the same list."""

import math
from typing import Any

import pytest
from graphql import GraphQLError, GraphQLList, GraphQLNonNull, coerce_input_value
from graphql.pyutils import Undefined
from hypothesis import given, settings
from hypothesis import strategies as st

from app.graphql.schema import schema
from app.graphql.tracking.fast_points import (
    MIN_POINTS,
    FastPointsExecutionContext,
    _batch_variables,
    _rules,
)

GRAPHQL = schema._schema
POINT = GRAPHQL.type_map["MetricPointInput"]
POINTS = GraphQLList(GraphQLNonNull(POINT))  # type: ignore[arg-type]
RULES = _rules(GRAPHQL)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "loss", ""]),
    st.lists(st.integers(), max_size=2),
)
points = st.one_of(
    st.fixed_dictionaries(
        {"key": st.text(max_size=5), "value": st.floats(allow_nan=True)},
        optional={
            "step": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "timestamp": st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
        },
    ),
    st.dictionaries(
        st.sampled_from(["key", "value", "step", "timestamp", "other"]), scalars, max_size=5
    ),
    scalars,
)


def graphql_core(value: list[Any]) -> list[dict[str, Any]] | None:
    out = coerce_input_value(value, POINTS)
    return None if out is Undefined else out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and type(a) is type(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.lists(points, max_size=6))
def test_fast_coercion_is_graphql_cores_or_none(value):
    assert RULES is not None
    fast = RULES.coerce(value)
    expected = graphql_core(value)
    if fast is not None:
        # never accepts what graphql-core refuses, never coerces differently
        assert expected is not None, value
        assert same(fast, expected), (fast, expected)


def test_plain_points_take_the_fast_path():
    assert RULES is not None
    value = [
        {"key": "loss", "value": 0.5, "step": 3, "timestamp": 1_700_000_000_000},
        {"key": "loss", "value": 1},
        {"key": "acc", "value": "NaN", "timestamp": None},
    ]
    fast = RULES.coerce(value)
    assert fast is not None
    assert same(fast, graphql_core(value))


def test_only_a_lone_log_metrics_input_variable_is_taken():
    from graphql import parse

    one = parse("mutation($input: LogMetricsInput!, $x: Int) { __typename }")
    assert _batch_variables(one) == ["input"]
    two_operations = parse(
        "mutation A($input: LogMetricsInput!) { __typename } query B { __typename }"
    )
    assert _batch_variables(two_operations) == []


async def test_a_batch_through_the_fast_path_stores_what_graphql_core_would(gql, db, app):
    # given: the app's schema executing with the fast path, and a batch above its threshold
    # with every optional form (int value, no step, null timestamp, non-finite values)
    assert issubclass(schema.execution_context_class, FastPointsExecutionContext)
    run = (
        await gql(
            'mutation { startRun(input: {experiment: "e"}) { ... on StartRunSuccess { run { id } } } }'
        )
    )["startRun"]["run"]["id"]
    sent = [
        {"key": "loss", "value": float(i), "step": i, "timestamp": 1000 + i}
        for i in range(MIN_POINTS)
    ]
    sent += [
        {"key": "loss", "value": 7, "step": 100},
        {"key": "loss", "value": "Infinity", "step": 101, "timestamp": None},
        {"key": "loss", "value": "NaN", "step": 102},
    ]

    # when
    logged = (
        await gql(
            "mutation($input: LogMetricsInput!) { logMetrics(input: $input) { __typename ... on LogMetricsSuccess { count } } }",
            input={"runId": run, "points": sent},
        )
    )["logMetrics"]
    series = (
        await gql(
            'query($id: ID!) { run(id: $id) { metricSeries(key: "loss", first: 100) { steps values } } }',
            id=run,
        )
    )["run"]["metricSeries"]

    # then
    assert logged == {"__typename": "LogMetricsSuccess", "count": MIN_POINTS + 3}
    assert series["steps"] == [*range(MIN_POINTS), 100, 101, 102]
    assert series["values"] == [*map(float, range(MIN_POINTS)), 7.0, "Infinity", "NaN"]


async def test_a_bad_point_in_a_big_batch_gets_graphql_cores_error(client, db):
    # given: a batch above the threshold whose last point has a boolean value
    sent = [{"key": "loss", "value": 0.5, "step": i} for i in range(MIN_POINTS)]
    sent.append({"key": "loss", "value": True})

    # when
    body = (
        await client.post(
            "/graphql",
            json={
                "query": "mutation($input: LogMetricsInput!) { logMetrics(input: $input) { __typename } }",
                "variables": {"input": {"runId": "0" * 32, "points": sent}},
            },
        )
    ).json()

    # then: graphql-core's refusal, naming the point
    [error] = body["errors"]
    assert error["message"] == (
        f"Variable '$input' has invalid value at .points[{MIN_POINTS}].value: "
        "MetricValue cannot be a boolean"
    )
    assert body.get("data") is None


def test_graphql_errors_are_what_the_parsers_raise():
    # The fast path calls the schema's own scalar parsers; they refuse with GraphQLError.
    assert RULES is not None
    with pytest.raises(GraphQLError, match="64-bit integer"):
        RULES.parse_step(2**63)
