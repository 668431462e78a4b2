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


def _parse_millis(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise ValueError(f"EpochMillis must be a 64-bit integer, not {value!r}")
    return value


EpochMillis = NewType("EpochMillis", int)
EpochMillisScalar = strawberry.scalar(
    name="EpochMillis",
    description="Milliseconds since 1970-01-01T00:00:00Z, as a 64-bit integer (MLflow's timestamps).",
    serialize=int,
    parse_value=_parse_millis,
)

SCALAR_MAP = {MetricValue: MetricValueScalar, EpochMillis: EpochMillisScalar}
