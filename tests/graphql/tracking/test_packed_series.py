"""metricSeries { packed }: the page's columns as base64 little-endian 64-bit arrays, equal
to what was logged (NaN, infinities, subnormals, the float and int64 extremes) and bit for
bit to the JSON columns of the same answer."""

import base64
import math
import struct
from typing import Any

import pytest
from graphql import GraphQLError

from app.graphql.scalars import Float64ArrayScalar, Int64ArrayScalar
from app.tracking import metrics as tracking_metrics
from tests.graphql.tracking.test_tracking import seed_run

PACKED = """
query($id: ID!, $key: String!, $first: Int, $after: String) {
  run(id: $id) {
    metricSeries(key: $key, first: $first, after: $after) {
      key steps values timestamps
      packed { steps values timestamps }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
VALUES = [
    0.1,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    5e-324,
    1.7976931348623157e308,
    -2.2250738585072014e-308,
    1 / 3,
]


def floats(text: str) -> list[float]:
    raw = base64.b64decode(text, validate=True)
    return list(struct.unpack(f"<{len(raw) // 8}d", raw))


def ints(text: str) -> list[int]:
    raw = base64.b64decode(text, validate=True)
    return list(struct.unpack(f"<{len(raw) // 8}q", raw))


def same_bits(a: list[float], b: list[float]) -> bool:
    """The same 64-bit values (any NaN is NaN)."""
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or struct.pack("<d", x) == struct.pack("<d", y)
        for x, y in zip(a, b, strict=True)
    )


def from_json(values: list[Any]) -> list[float]:
    named = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return [named[v] if isinstance(v, str) else float(v) for v in values]


async def log(db: Any, run_id: str, points: list[tracking_metrics.MetricPoint]) -> None:
    async with db.unit_of_work() as session:
        await tracking_metrics.log_metrics(session, actor="test", run_id=run_id, points=points)


async def test_packed_columns_round_trip_exactly(gql, db):
    # given: every kind of float, steps and timestamps at the int64 extremes
    run_id = await seed_run(db)
    steps = [INT64_MIN, -1, 0, 1, 2, 3, 2**53 + 1, 2**62, INT64_MAX]
    stamps = [0, 1, INT64_MAX, 1_700_000_000_000, 5, 6, 7, 8, INT64_MIN]
    await log(
        db,
        run_id,
        [
            tracking_metrics.MetricPoint("loss", v, s, t)
            for v, s, t in zip(VALUES, steps, stamps, strict=True)
        ],
    )

    # when
    series = (await gql(PACKED, id=run_id, key="loss"))["run"]["metricSeries"]

    # then: the packed columns are the points, in the order of the JSON columns
    packed = series["packed"]
    assert ints(packed["steps"]) == steps == series["steps"]
    assert ints(packed["timestamps"]) == stamps == series["timestamps"]
    assert same_bits(floats(packed["values"]), from_json(series["values"]))
    # As logged (SQLite keeps -0.0 as 0.0, PostgreSQL as -0.0: equal either way).
    assert all(
        (math.isnan(x) and math.isnan(y)) or x == y
        for x, y in zip(floats(packed["values"]), VALUES, strict=True)
    )
    assert series["values"][2:5] == ["NaN", "Infinity", "-Infinity"]


async def test_packed_pages_follow_the_cursor(gql, db):
    # given
    run_id = await seed_run(db)
    await log(
        db,
        run_id,
        [tracking_metrics.MetricPoint("loss", i / 7, i, 1_000 + i) for i in reversed(range(25))],
    )

    # when
    steps: list[int] = []
    values: list[float] = []
    after = None
    for _ in range(10):
        page = (await gql(PACKED, id=run_id, key="loss", first=10, after=after))["run"][
            "metricSeries"
        ]
        steps += ints(page["packed"]["steps"])
        values += floats(page["packed"]["values"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then
    assert steps == list(range(25))
    assert values == [i / 7 for i in range(25)]


async def test_packed_columns_of_an_unknown_key_are_empty(gql, db):
    # given
    run_id = await seed_run(db, history={"loss": [1.0]})

    # when
    series = (await gql(PACKED, id=run_id, key="nope"))["run"]["metricSeries"]

    # then
    assert series["packed"] == {"steps": "", "values": "", "timestamps": ""}


def test_packed_scalars_read_back_what_they_write():
    # Read as well as written, for a client sending them back (and for the schema's sake).
    text = Float64ArrayScalar.serialize(VALUES)
    assert same_bits(Float64ArrayScalar.parse_value(text), VALUES)
    assert Int64ArrayScalar.parse_value(Int64ArrayScalar.serialize([INT64_MIN, 7])) == [
        INT64_MIN,
        7,
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (123, "must be a base64 string"),
        ("not base64!", "standard base64"),
        (base64.b64encode(b"1234567").decode(), "multiple of 8 bytes, not 7"),
    ],
)
def test_packed_scalars_refuse_what_is_not_a_packed_column(value, message):
    with pytest.raises(GraphQLError, match=message):
        Float64ArrayScalar.parse_value(value)
