"""Query limits as validation rules, built once per set of limits so the validation cache
keeps working (NOTES.md "Making strawberry fast"): depth, aliases and total cost. Tokens
are limited by the parser itself (max_tokens), introspection nesting by graphql-core's
MaxIntrospectionDepthRule; `limit_error_facts` gives their errors our codes.

Each operation is summarised with its fragments expanded (each fragment summarised once,
however often it is spread), so a fragment cannot hide depth, aliases or cost.

Cost is the number of objects a query could return: an object field counts once per
parent, a paged field (`first`) counts its page size per parent and multiplies what is
under it, a list without `first` counts LIST_ITEMS per parent. `first` given as a
variable counts as its cap (variables are unknown at validation), omitted as its default.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    is_composite_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules.max_introspection_depth_rule import MAX_LIST_DEPTH
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

HISTORY_FIELDS = {"metricHistory", "metricSeries"}
LIST_ITEMS = 10
# Far past any limit: counts stop growing here, so huge literals stay cheap to count.
CEILING = 10**15


@dataclass(frozen=True)
class QueryLimits:
    # Characters of the document itself: comments and spaces are not tokens, yet fill the
    # parser and validation caches (bounded in entries, not in bytes).
    size: int = 100_000
    depth: int = 12
    aliases: int = 30
    tokens: int = 5_000
    cost: int = 500_000
    page_default: int = 50
    page_cap: int = 500
    history_cap: int = 10_000
    introspection: bool = True


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


@dataclass
class Summary:
    """What a selection set asks for, per parent object: its deepest nesting, the aliases
    in it, and the objects it could return. A fragment's summary is the same wherever it
    is spread, so it is computed once: a document of nested spreads cannot make the walk
    exponential."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0

    def add(self, other: "Summary", *, times: int = 1, deeper: int = 0) -> None:
        self.depth = max(self.depth, deeper + other.depth)
        self.aliases = min(self.aliases + other.aliases, CEILING)
        self.cost = min(self.cost + times * other.cost, CEILING)


class _Walk:
    """One operation's summary, fragments expanded (each once)."""

    def __init__(self, context: ValidationContext, limits: QueryLimits) -> None:
        self.context = context
        self.limits = limits
        self.fragments: dict[str, Summary] = {}
        self.entered: set[str] = set()

    def page_size(self, node: FieldNode) -> int:
        history = node.name.value in HISTORY_FIELDS
        cap = self.limits.history_cap if history else self.limits.page_cap
        for argument in node.arguments or ():
            if argument.name.value == "first":
                if isinstance(argument.value, IntValueNode):
                    # A literal of thousands of digits is refused by the cost anyway;
                    # reading it whole would fail.
                    text = argument.value.value
                    return max(int(text), 1) if len(text) <= 12 else CEILING
                return cap
        return cap if history else self.limits.page_default

    def selections(self, selection_set: SelectionSetNode | None, parent: Any) -> Summary:
        summary = Summary()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                summary.add(self.field(selection, parent))
            elif isinstance(selection, FragmentSpreadNode):
                summary.add(self.spread(selection.name.value))
            else:
                target = parent
                if selection.type_condition is not None:
                    target = self.context.schema.get_type(selection.type_condition.name.value)
                summary.add(self.selections(selection.selection_set, target))
        return summary

    def spread(self, name: str) -> Summary:
        if name in self.fragments:
            return self.fragments[name]
        fragment = self.context.get_fragment(name)
        if fragment is None or name in self.entered:
            return Summary()  # unknown or cyclic: other rules report it
        self.entered.add(name)
        target = self.context.schema.get_type(fragment.type_condition.name.value)
        self.fragments[name] = summary = self.selections(fragment.selection_set, target)
        return summary

    def field(self, node: FieldNode, parent: Any) -> Summary:
        summary = Summary(aliases=1 if node.alias is not None else 0)
        definition = _definition(parent, node.name.value)
        if definition is None:
            return summary  # unknown (another rule reports it) or __typename
        inner = self.selections(node.selection_set, get_named_type(definition.type))
        if node.name.value.startswith("__") or parent.name.startswith("__"):
            # Introspection is bounded by the schema's size, and its nesting by
            # graphql-core's own rule: only its aliases count.
            summary.aliases = min(summary.aliases + inner.aliases, CEILING)
            return summary
        times, own = 1, 0
        if is_composite_type(get_named_type(definition.type)):
            if "first" in definition.args:
                times = own = self.page_size(node)
            elif not _is_list(definition.type):
                own = 1
            elif not parent.name.endswith("Connection"):  # a page's nodes are counted
                times = own = LIST_ITEMS
        summary.cost = own
        summary.add(inner, times=times, deeper=1)
        summary.depth = max(summary.depth, 1)
        return summary


def _definition(parent: Any, name: str) -> Any:
    if name == "__schema":
        return SchemaMetaFieldDef
    if name == "__type":
        return TypeMetaFieldDef
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields is not None else None


def _errors(limits: QueryLimits, summary: Summary, node: Any) -> list[GraphQLError]:
    errors = []
    if summary.depth > limits.depth:
        message = f"this query is nested deeper than the limit of {limits.depth} levels"
        facts = {"code": "QUERY_TOO_DEEP", "limit": limits.depth}
        errors.append(GraphQLError(message, node, extensions=facts))
    if summary.aliases > limits.aliases:
        message = f"this query uses more than {limits.aliases} aliases"
        facts = {"code": "TOO_MANY_ALIASES", "limit": limits.aliases}
        errors.append(GraphQLError(message, node, extensions=facts))
    if summary.cost > limits.cost:
        message = (
            f"this query could return {summary.cost} objects; the limit is {limits.cost}: "
            "ask for smaller pages or fewer fields"
        )
        facts = {"code": "QUERY_TOO_COSTLY", "limit": limits.cost, "cost": summary.cost}
        errors.append(GraphQLError(message, node, extensions=facts))
    return errors


def validation_rules(limits: QueryLimits) -> list[type[ValidationRule]]:
    """The rules for `limits`: build once per schema, never per request."""

    class QueryLimitsRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            schema = self.context.schema
            root: GraphQLObjectType | None = schema.get_root_type(node.operation)
            if root is None:
                return
            summary = _Walk(self.context, limits).selections(node.selection_set, root)
            for error in _errors(limits, summary, node):
                self.report_error(error)

    rules: list[type[ValidationRule]] = [QueryLimitsRule]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


# graphql-core's messages for the limits it enforces itself, and our codes for them.
_TOKENS = "tokens. Parsing aborted."
_INTROSPECTION = "Maximum introspection depth exceeded"


def limit_error_facts(message: str, limits: QueryLimits) -> dict[str, Any] | None:
    """`extensions` for an error graphql-core raised at one of our limits, else None."""
    if _TOKENS in message:
        return {"code": "TOO_MANY_TOKENS", "limit": limits.tokens}
    if message.startswith(_INTROSPECTION):
        return {"code": "INTROSPECTION_TOO_DEEP", "limit": MAX_LIST_DEPTH}
    return None


class QuerySizeLimit(SchemaExtension):
    """Refuses a document longer than the limit before it is parsed or cached."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def on_operation(self) -> Iterator[None]:
        query = self.execution_context.query or ""
        if len(query) > self.limit:
            raise GraphQLError(
                f"the query is {len(query)} characters; the limit is {self.limit}",
                extensions={"code": "QUERY_TOO_LARGE", "limit": self.limit},
            )
        yield


class Budget:
    """Objects an operation may still return through lists without `first` (a run's
    metrics, params and tags; a version's transitions): validation priced them at
    LIST_ITEMS each, so what they really hold is counted as they resolve."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise GraphQLError(
                f"this query returned more than {self.limit} objects: "
                "ask for fewer runs, versions or fields",
                extensions={"code": "QUERY_TOO_COSTLY", "limit": self.limit},
            )


_BUDGET: ContextVar[Budget | None] = ContextVar("modelgraph_result_budget", default=None)
T = TypeVar("T")


def charged(items: list[T]) -> list[T]:
    """`items`, counted against the running query's budget (none for subscriptions)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(len(items))
    return items


class ResultBudget(SchemaExtension):
    """Gives each query and mutation its own Budget. A context variable, not the GraphQL
    context: a WebSocket's context is shared by all operations on it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def on_execute(self) -> Iterator[None]:
        streaming = self.execution_context.operation_type == OperationType.SUBSCRIPTION
        token = _BUDGET.set(None if streaming else Budget(self.limit))
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # reset from another context
                _BUDGET.reset(token)
