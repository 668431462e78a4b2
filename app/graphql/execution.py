"""A faster completion for lists of plain objects, such as a metric's history.

graphql-core completes every field of every object on its own: a resolve-info object,
a resolver call, a completion and a serialisation per field, ~4 µs each. A 10,000-point
`metricHistory { nodes { step value timestamp } }` is 30,000 of them, most of the
request (docs/BENCHMARKS.md, "read path"). When every field a list's items are asked
for is a scalar or enum read straight off the object (a strawberry field without a
resolver, arguments or extensions, or `__typename`), each item's answer is built here in
one loop: the attribute, then the type's own serialisation, as graphql-core would.

Anything out of the ordinary (a null where the schema says non-null, a value the scalar
refuses, an awaitable item, `@stream` or `@defer`) sends the whole list back through
graphql-core's own completion, so errors, their paths and null propagation are exactly
what they were: reading a plain attribute twice changes nothing.
"""

from collections.abc import Callable, Iterable
from typing import Any

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    is_leaf_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

DEFINITION = "strawberry-definition"

# (response key, attribute or None for __typename, serialise, non-null)
Column = tuple[str, str | None, Callable[[Any], Any], bool]
Plan = tuple[tuple[Column, ...], bool, str]  # columns, items nullable, type name


class _Fallback(Exception):
    """This list needs graphql-core's own completion."""


def _column(parent: GraphQLObjectType, key: str, details: Any) -> Column | None:
    node = details[0].node
    name = node.name.value
    if name == "__typename":
        return (key, None, str, True)
    if node.arguments or node.selection_set is not None:
        return None
    field = parent.fields.get(name)
    if field is None or field.args or not getattr(field.resolve, "_is_default", False):
        return None
    definition = (field.extensions or {}).get(DEFINITION)
    if definition is None or definition.default_resolver is not getattr:
        return None
    type_ = field.type
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    if not is_leaf_type(type_):
        return None
    return (key, definition.python_name, type_.coerce_output_value, non_null)


def _build(
    columns: tuple[Column, ...], typename: str, items: Iterable[Any], nullable: bool
) -> list[Any]:
    out: list[Any] = []
    append = out.append
    for item in items:
        if item is None:
            if not nullable:
                raise _Fallback
            append(None)
            continue
        answer: dict[str, Any] = {}
        for key, attribute, serialise, non_null in columns:
            if attribute is None:
                answer[key] = typename
                continue
            value = getattr(item, attribute)
            if value is None:
                if non_null:
                    raise _Fallback
                answer[key] = None
                continue
            coerced = serialise(value)
            if coerced is None or coerced is Undefined:
                raise _Fallback
            answer[key] = coerced
        append(answer)
    return out


class LeafListExecution(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, with lists of plain objects completed in one loop."""

    def _plan(self, item_type: GraphQLOutputType, field_details_list: Any) -> Plan | None:
        # Memoized like collect_subfields: by the identity of the field list, kept alive.
        plans: dict[int, tuple[Any, Plan | None]] = self.__dict__.setdefault("_leaf_plans", {})
        cached = plans.get(id(field_details_list))
        if cached is not None:
            return cached[1]
        plan = self._make_plan(item_type, field_details_list)
        plans[id(field_details_list)] = (field_details_list, plan)
        return plan

    def _make_plan(self, item_type: GraphQLOutputType, field_details_list: Any) -> Plan | None:
        nullable = not isinstance(item_type, GraphQLNonNull)
        named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(named, GraphQLObjectType) or named.is_type_of is not None:
            return None
        grouped, defers, _forbidden = self.collect_subfields(named, field_details_list)
        if defers:
            return None
        columns = []
        for key, details in grouped.items():
            if any(d.defer_usage is not None for d in details):
                return None
            column = _column(named, key, details)
            if column is None:
                return None
            columns.append(column)
        # An item that is an awaitable shows by lacking the attributes; with nothing but
        # __typename asked for, it would not.
        if all(attribute is None for _key, attribute, _s, _n in columns):
            return None
        return tuple(columns), nullable, named.name

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        if isinstance(items, list | tuple) and (
            self.get_stream_usage(field_details_list, path) is None
        ):
            plan = self._plan(item_type, field_details_list)
            if plan is not None:
                columns, nullable, typename = plan
                try:
                    return _build(columns, typename, items, nullable)
                except Exception:  # graphql-core's completion below reports it
                    pass
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )
