"""Scalars JSON cannot carry natively: non-finite metric values and 64-bit epoch times."""

import math
from typing import Any, NewType

import strawberry

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _serialize_metric(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _parse_metric(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("MetricValue cannot be a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise ValueError(
        f'MetricValue must be a number, "NaN", "Infinity" or "-Infinity", not {value!r}'
    )


MetricValue = NewType("MetricValue", float)
MetricValueScalar = strawberry.scalar(
    name="MetricValue",
    description='A float; NaN and infinities travel as the strings "NaN", "Infinity", "-Infinity".',
    serialize=_serialize_metric,
    parse_value=_parse_metric,
)

_INT64 = 2**63


def _int64_parser(name: str) -> Any:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
            raise ValueError(f"{name} must be a 64-bit integer, not {value!r}")
        return value

    return parse


EpochMillis = NewType("EpochMillis", int)
EpochMillisScalar = strawberry.scalar(
    name="EpochMillis",
    description="Milliseconds since 1970-01-01T00:00:00Z, as a 64-bit integer (MLflow's timestamps).",
    serialize=int,
    parse_value=_int64_parser("EpochMillis"),
)
Long = NewType("Long", int)
LongScalar = strawberry.scalar(
    name="Long",
    description="A 64-bit integer (metric steps, as MLflow's int64).",
    serialize=int,
    parse_value=_int64_parser("Long"),
)


# Packed lists for bulk ingestion: one scalar is coerced in one pass, where a GraphQL
# list of 1,000 items costs a type-system round per item (about 10x the time).


def _parse_metric_list(value: Any) -> list[float]:
    if not isinstance(value, list):
        raise ValueError("MetricValueList must be a JSON array")
    out = []
    for item in value:
        kind = type(item)
        if kind is float or kind is int:
            out.append(float(item))
        elif kind is str and item in _NON_FINITE:
            out.append(_NON_FINITE[item])
        else:
            raise ValueError(
                f"MetricValueList items must be numbers or NaN/Infinity/-Infinity, not {item!r}"
            )
    return out


def _parse_long_list(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise ValueError("LongList must be a JSON array")
    for item in value:
        if type(item) is not int or not -_INT64 <= item < _INT64:
            raise ValueError(f"LongList items must be 64-bit integers, not {item!r}")
    return value


MetricValueList = NewType("MetricValueList", list)
MetricValueListScalar = strawberry.scalar(
    name="MetricValueList",
    description='A JSON array of MetricValue (numbers, or "NaN", "Infinity", "-Infinity").',
    serialize=lambda values: [_serialize_metric(v) for v in values],
    parse_value=_parse_metric_list,
)
LongList = NewType("LongList", list)
LongListScalar = strawberry.scalar(
    name="LongList",
    description="A JSON array of 64-bit integers.",
    serialize=list,
    parse_value=_parse_long_list,
)

SCALAR_MAP = {
    MetricValue: MetricValueScalar,
    EpochMillis: EpochMillisScalar,
    Long: LongScalar,
    MetricValueList: MetricValueListScalar,
    LongList: LongListScalar,
}
