"""Query limits as validation rules, built once per set of limits so the validation cache
keeps working (NOTES.md "Making strawberry fast"): depth, aliases and total cost. Tokens
are limited by the parser itself (max_tokens), introspection nesting by graphql-core's
MaxIntrospectionDepthRule; `limit_error_facts` gives their errors our codes.

Each operation is walked once with its fragments expanded, so a fragment cannot hide
depth, aliases or cost from the count.

Cost is the number of objects a query could return: an object field counts once per
parent, a paged field (`first`) counts its page size per parent and multiplies what is
under it, a list without `first` counts LIST_ITEMS per parent. `first` given as a
variable counts as its cap (variables are unknown at validation), omitted as its default.
"""

from dataclasses import dataclass
from typing import Any

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

HISTORY_FIELDS = {"metricHistory", "metricSeries"}
LIST_ITEMS = 10
# Far past any limit: counts stop growing here, so huge literals stay cheap to count.
CEILING = 10**15


@dataclass(frozen=True)
class QueryLimits:
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


class _Walk:
    """One operation's depth, aliases, cost and introspection nesting, fragments expanded."""

    def __init__(self, context: ValidationContext, limits: QueryLimits) -> None:
        self.context = context
        self.limits = limits
        self.depth = 0
        self.aliases = 0
        self.cost = 0
        # Where each limit was first broken, for the error's location.
        self.nodes: dict[str, Any] = {}

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

    def selections(
        self,
        selection_set: SelectionSetNode | None,
        parent: Any,
        *,
        items: int,
        depth: int,
        spreads: frozenset[str],
    ) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                self.field(selection, parent, items=items, depth=depth, spreads=spreads)
                continue
            fragment: Any = selection
            inside = spreads
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.context.get_fragment(name)
                if fragment is None or name in spreads:
                    continue  # unknown or cyclic: other rules report it
                inside = spreads | {name}
            target = parent
            if fragment.type_condition is not None:
                target = self.context.schema.get_type(fragment.type_condition.name.value)
            self.selections(
                fragment.selection_set, target, items=items, depth=depth, spreads=inside
            )

    def field(
        self,
        node: FieldNode,
        parent: Any,
        *,
        items: int,
        depth: int,
        spreads: frozenset[str],
    ) -> None:
        name = node.name.value
        if node.alias is not None:
            self.aliases += 1
            self._mark("aliases", self.aliases > self.limits.aliases, node)
        definition = _definition(parent, name)
        if definition is None:
            return  # unknown (another rule reports it) or __typename
        if not (name.startswith("__") or parent.name.startswith("__")):
            # Introspection is bounded by the schema's size, and its nesting by
            # graphql-core's own rule.
            depth += 1
            self.depth = max(self.depth, depth)
            self._mark("depth", depth > self.limits.depth, node)
            if is_composite_type(get_named_type(definition.type)):
                if "first" in definition.args:
                    items = min(items * self.page_size(node), CEILING)
                    self.cost += items
                elif not _is_list(definition.type):
                    self.cost += items
                elif not parent.name.endswith("Connection"):  # a page's nodes are counted
                    items = min(items * LIST_ITEMS, CEILING)
                    self.cost += items
                self._mark("cost", self.cost > self.limits.cost, node)
        self.selections(
            node.selection_set,
            get_named_type(definition.type),
            items=items,
            depth=depth,
            spreads=spreads,
        )

    def _mark(self, limit: str, broken: bool, node: Any) -> None:
        if broken and limit not in self.nodes:
            self.nodes[limit] = node


def _definition(parent: Any, name: str) -> Any:
    if name == "__schema":
        return SchemaMetaFieldDef
    if name == "__type":
        return TypeMetaFieldDef
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields is not None else None


def _error(limits: QueryLimits, walk: _Walk, limit: str) -> GraphQLError:
    node = walk.nodes[limit]
    if limit == "depth":
        message = f"this query is nested deeper than the limit of {limits.depth} levels"
        facts = {"code": "QUERY_TOO_DEEP", "limit": limits.depth}
    elif limit == "aliases":
        message = f"this query uses more than {limits.aliases} aliases"
        facts = {"code": "TOO_MANY_ALIASES", "limit": limits.aliases}
    else:
        message = (
            f"this query could return {min(walk.cost, CEILING)} objects; the limit is {limits.cost}: "
            "ask for smaller pages or fewer fields"
        )
        facts = {"code": "QUERY_TOO_COSTLY", "limit": limits.cost, "cost": min(walk.cost, CEILING)}
    return GraphQLError(message, node, extensions=facts)


def validation_rules(limits: QueryLimits) -> list[type[ValidationRule]]:
    """The rules for `limits`: build once per schema, never per request."""

    class QueryLimitsRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            schema = self.context.schema
            root: GraphQLObjectType | None = schema.get_root_type(node.operation)
            if root is None:
                return
            walk = _Walk(self.context, limits)
            walk.selections(node.selection_set, root, items=1, depth=0, spreads=frozenset())
            for limit in ("depth", "aliases", "cost"):
                if limit in walk.nodes:
                    self.report_error(_error(limits, walk, limit))

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
