"""The points of a `logMetrics` batch, coerced in one tight loop instead of by graphql-core.

graphql-core coerces a variable of input-object type field by field through its type
system (and first walks it to check its nesting depth): for a 1,000-point LogMetricsInput
that is ~10,000 generic steps, about a third of the server's CPU per point. This execution
context takes the `points` list out of each LogMetricsInput variable before graphql-core
sees it, coerces it here by exactly the rules graphql-core applies (an object; only the
fields MetricPointInput has; `key` a String; `value`, `step` and `timestamp` read by the
schema's own scalar parsers, with the schema's defaults), and puts the result where
graphql-core would have. Anything this loop does not recognise as valid, it leaves to
graphql-core, untouched: errors, and their messages, are graphql-core's own."""

from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    get_nullable_type,
)
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

BATCH_INPUT = "LogMetricsInput"
POINT_INPUT = "MetricPointInput"
# Small batches are not worth a second path: graphql-core coerces them as ever.
MIN_POINTS = 32

Parse = Callable[[Any], Any]


class _PointRules:
    """MetricPointInput's fields as the schema defines them."""

    def __init__(self, point: GraphQLInputObjectType) -> None:
        fields = point.fields
        self.names = frozenset(fields)
        if self.names != {"key", "value", "step", "timestamp"}:
            raise TypeError(f"{POINT_INPUT} has fields {sorted(self.names)}: update fast_points")
        self.parse_value: Parse = get_nullable_type(fields["value"].type).parse_value
        self.parse_step: Parse = get_nullable_type(fields["step"].type).parse_value
        self.parse_timestamp: Parse = get_nullable_type(fields["timestamp"].type).parse_value
        self.step_default = fields["step"].default_value
        self.timestamp_default = fields["timestamp"].default_value
        if self.step_default is Undefined or self.timestamp_default is Undefined:
            raise TypeError(f"{POINT_INPUT}.step and .timestamp have defaults: update fast_points")

    def coerce(self, points: list[Any]) -> list[dict[str, Any]] | None:
        """The points as graphql-core would coerce them, or None if any is not plainly
        valid (graphql-core then coerces the whole list and reports what is wrong)."""
        names, parse_value, parse_step, parse_timestamp = (
            self.names,
            self.parse_value,
            self.parse_step,
            self.parse_timestamp,
        )
        out = []
        try:
            for point in points:
                if type(point) is not dict or not names.issuperset(point):
                    return None
                key = point.get("key")
                if type(key) is not str:
                    return None
                value = point.get("value")
                if value is None:
                    return None
                step = point.get("step", Undefined)
                if step is Undefined:
                    step = self.step_default
                elif step is None:
                    return None
                else:
                    step = parse_step(step)
                stamp = point.get("timestamp", Undefined)
                if stamp is Undefined:
                    stamp = self.timestamp_default
                elif stamp is not None:
                    stamp = parse_timestamp(stamp)
                out.append(
                    {
                        "key": key,
                        "value": value if type(value) is float else parse_value(value),
                        "step": step,
                        "timestamp": stamp,
                    }
                )
        except (GraphQLError, ValueError, TypeError, OverflowError):
            return None
        return out


_RULES: dict[int, _PointRules | None] = {}


def _rules(schema: GraphQLSchema) -> _PointRules | None:
    found = _RULES.get(id(schema), Undefined)
    if found is Undefined:
        point = schema.type_map.get(POINT_INPUT)
        found = _PointRules(point) if isinstance(point, GraphQLInputObjectType) else None
        _RULES[id(schema)] = found
    return found  # type: ignore[return-value]


def _batch_variables(document: DocumentNode) -> list[str]:
    """The variables of type LogMetricsInput (or LogMetricsInput!) of a one-operation document."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return []
    names = []
    for definition in operations[0].variable_definitions or ():
        kind = definition.type
        if isinstance(kind, NonNullTypeNode):
            kind = kind.type
        if isinstance(kind, NamedTypeNode) and kind.name.value == BATCH_INPUT:
            names.append(definition.variable.name.value)
    return names


class FastPointsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the points of LogMetricsInput variables
    coerced by `_PointRules` (see the module docstring)."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        taken: list[tuple[str, list[dict[str, Any]]]] = []
        rules = _rules(schema) if raw_variable_values else None
        if raw_variable_values and rules is not None:
            for name in _batch_variables(document):
                batch = raw_variable_values.get(name)
                if type(batch) is not dict:
                    continue
                points = batch.get("points")
                if type(points) is not list or len(points) < MIN_POINTS:
                    continue
                coerced = rules.coerce(points)
                if coerced is None:
                    continue
                # graphql-core coerces the rest of the input (an empty list of points).
                raw_variable_values = {**raw_variable_values, name: {**batch, "points": []}}
                taken.append((name, coerced))
        built = super().build(
            schema, document, root_value, context_value, raw_variable_values, *args, **kwargs
        )
        if taken and not isinstance(built, list):
            coerced_values = built.variable_values.coerced
            for name, points in taken:
                batch = coerced_values.get(name)
                if isinstance(batch, dict):
                    batch["points"] = points
        return built
