"""Scalars JSON cannot carry natively: non-finite metric values and 64-bit epoch times."""

import base64
import binascii
import math
import sys
from array import array
from collections.abc import Callable
from typing import Any, NewType

import strawberry
from graphql import GraphQLError, ValueNode, value_from_ast_untyped
from strawberry.types.scalar import ScalarDefinition

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _serialize_metric(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _refuse(message: str) -> GraphQLError:
    # A GraphQLError is the client's mistake to graphql-core (reported as is, for literals
    # and variables alike); any other exception would be taken for a bug and masked.
    return GraphQLError(message)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _literal(parse: Callable[[Any], Any]) -> Callable[..., Any]:
    """parse_literal for a scalar: the literal as a plain value, then `parse`. A literal
    Python cannot read (an integer of thousands of digits) is refused, not a bug."""

    def parse_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
        try:
            value = value_from_ast_untyped(node, variables)
        except (ValueError, OverflowError):
            raise _refuse("the literal cannot be read: a number with too many digits") from None
        return parse(value)

    return parse_literal


def _parse_metric(value: Any) -> float:
    if isinstance(value, bool):
        raise _refuse("MetricValue cannot be a boolean")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            raise _refuse("MetricValue is out of the range of a 64-bit float") from None
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise _refuse(
        f'MetricValue must be a number, "NaN", "Infinity" or "-Infinity", not {_shown(value)}'
    )


MetricValue = NewType("MetricValue", float)
MetricValueScalar = strawberry.scalar(
    name="MetricValue",
    description='A float; NaN and infinities travel as the strings "NaN", "Infinity", "-Infinity".',
    serialize=_serialize_metric,
    parse_value=_parse_metric,
    parse_literal=_literal(_parse_metric),
)

_INT64 = 2**63


def _int64_parser(name: str) -> Any:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
            raise _refuse(f"{name} must be a 64-bit integer, not {_shown(value)}")
        return value

    return parse


EpochMillis = NewType("EpochMillis", int)
EpochMillisScalar = strawberry.scalar(
    name="EpochMillis",
    description="Milliseconds since 1970-01-01T00:00:00Z, as a 64-bit integer (MLflow's timestamps).",
    serialize=int,
    parse_value=_int64_parser("EpochMillis"),
    parse_literal=_literal(_int64_parser("EpochMillis")),
)
Long = NewType("Long", int)
LongScalar = strawberry.scalar(
    name="Long",
    description="A 64-bit integer (metric steps, as MLflow's int64).",
    serialize=int,
    parse_value=_int64_parser("Long"),
    parse_literal=_literal(_int64_parser("Long")),
)


# Packed lists for bulk ingestion: one scalar is coerced in one pass, where a GraphQL
# list of 1,000 items costs a type-system round per item (about 10x the time).


def _parse_metric_list(value: Any) -> list[float]:
    if not isinstance(value, list):
        raise _refuse("MetricValueList must be a JSON array")
    out = []
    for item in value:
        kind = type(item)
        if kind is float:
            out.append(item)
        elif kind is int:
            out.append(_parse_metric(item))
        elif kind is str and item in _NON_FINITE:
            out.append(_NON_FINITE[item])
        else:
            raise _refuse(
                "MetricValueList items must be numbers or NaN/Infinity/-Infinity, "
                f"not {_shown(item)}"
            )
    return out


def _parse_long_list(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise _refuse("LongList must be a JSON array")
    for item in value:
        if type(item) is not int or not -_INT64 <= item < _INT64:
            raise _refuse(f"LongList items must be 64-bit integers, not {_shown(item)}")
    return value


def _serialize_metric_list(values: list[float]) -> list[float | str]:
    # One C-level pass decides: most series hold no NaN or infinity to spell out.
    if all(map(math.isfinite, values)):
        return list(values)
    return [_serialize_metric(v) for v in values]


MetricValueList = NewType("MetricValueList", list)
MetricValueListScalar = strawberry.scalar(
    name="MetricValueList",
    description='A JSON array of MetricValue (numbers, or "NaN", "Infinity", "-Infinity").',
    serialize=lambda values: _serialize_metric_list(values),
    parse_value=_parse_metric_list,
    parse_literal=_literal(_parse_metric_list),
)
LongList = NewType("LongList", list)
LongListScalar = strawberry.scalar(
    name="LongList",
    description="A JSON array of 64-bit integers.",
    serialize=list,
    parse_value=_parse_long_list,
    parse_literal=_literal(_parse_long_list),
)


# Packed columns for bulk reads: a whole column is one base64 string of little-endian
# 64-bit numbers, so a 10,000-point series is three values to serialise and for the client
# to parse (numpy.frombuffer(base64.b64decode(s), "<f8") or "<i8"), not 30,000 numbers.


def _pack(values: array) -> str:
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _unpacker(name: str, typecode: str) -> Callable[[Any], list[Any]]:
    def parse(value: Any) -> list[Any]:
        if not isinstance(value, str):
            raise _refuse(f"{name} must be a base64 string, not {_shown(value)}")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _refuse(f"{name} must be standard base64 (RFC 4648, padded)") from None
        if len(raw) % 8:
            raise _refuse(f"{name} must decode to a multiple of 8 bytes, not {len(raw)}")
        values = array(typecode)
        values.frombytes(raw)
        if sys.byteorder != "little":
            values.byteswap()
        return values.tolist()

    return parse


def _packer(typecode: str) -> Callable[[Any], str]:
    def serialize(values: Any) -> str:
        return _pack(values if isinstance(values, array) else array(typecode, values))

    return serialize


Float64Array = NewType("Float64Array", array)
Float64ArrayScalar = strawberry.scalar(
    name="Float64Array",
    description="A column of 64-bit floats packed in one string: standard base64 (RFC 4648, "
    "padded) of the values as little-endian IEEE 754 binary64, 8 bytes each, in order. NaN "
    "and infinities are their own bit patterns. Decode with numpy.frombuffer(base64.b64decode"
    '(s), "<f8") or struct.unpack(f"<{len(raw) // 8}d", raw).',
    serialize=_packer("d"),
    parse_value=_unpacker("Float64Array", "d"),
    parse_literal=_literal(_unpacker("Float64Array", "d")),
)
Int64Array = NewType("Int64Array", array)
Int64ArrayScalar = strawberry.scalar(
    name="Int64Array",
    description="A column of 64-bit integers packed in one string: standard base64 (RFC 4648, "
    "padded) of the values as little-endian two's complement, 8 bytes each, in order. "
    'Decode with numpy.frombuffer(base64.b64decode(s), "<i8").',
    serialize=_packer("q"),
    parse_value=_unpacker("Int64Array", "q"),
    parse_literal=_literal(_unpacker("Int64Array", "q")),
)

# Keyed by NewType, which is not a class: StrawberryConfig takes any hashable key.
SCALAR_MAP: dict[object, ScalarDefinition] = {
    MetricValue: MetricValueScalar,
    EpochMillis: EpochMillisScalar,
    Long: LongScalar,
    MetricValueList: MetricValueListScalar,
    LongList: LongListScalar,
    Float64Array: Float64ArrayScalar,
    Int64Array: Int64ArrayScalar,
}
