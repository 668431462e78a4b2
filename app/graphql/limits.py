"""Query limits as validation rules, built once per set of limits so the validation cache
keeps working (docs/ARCHITECTURE.md, "The GraphQL face"): depth, aliases and total cost.
Tokens are limited by the parser itself (max_tokens), introspection nesting by graphql-core's
MaxIntrospectionDepthRule; `limit_error_facts` gives their errors our codes.

Validation runs in two passes (`Checks`): our rules alone first, each a linear walk, and
graphql-core's rules only for a document they let through, so a document that breaks a
limit is refused before any costly rule sees it. The one quadratic rule
(OverlappingFieldsCanBeMerged: every pair of same-named fields is compared, recursively)
runs on a budget of its own, far below graphql-core's, and the field count bounds how much
any document can ask of it. Parsed and validated documents are cached by their text in an
LRU bounded by an estimate of their memory (`DocumentCache`).

Each operation is summarised with its fragments expanded (each fragment summarised once,
however often it is spread), so a fragment cannot hide depth, aliases or cost.

Cost is the number of objects a query could return: an object field counts once per
parent, a paged field (`first`) counts its page size per parent and multiplies what is
under it, a list without `first` counts LIST_ITEMS per parent. `first` given as a
variable counts as its cap (variables are unknown at validation), omitted as its default.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    is_composite_type,
    specified_rules,
    validate,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import (
    NoSchemaIntrospectionCustomRule,
    OverlappingFieldsCanBeMergedRule,
)
from graphql.validation.rules.max_introspection_depth_rule import MAX_LIST_DEPTH
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

HISTORY_FIELDS = {"metricHistory", "metricSeries"}
LIST_ITEMS = 10
# Far past any limit: counts stop growing here, so huge literals stay cheap to count.
CEILING = 10**15
# graphql-core's own cap on the errors of one validation, named in TOO_MANY_ERRORS.
MAX_ERRORS = 100
# Units of work (a field collected or a pair compared) OverlappingFieldsCanBeMerged may
# spend on one document; graphql-core's own budget is 500,000, which took ~1.4 s here.
# Measured with scripts/validation_cost.py on documents shaped to make the rule quadratic,
# within the other limits: refused at this budget after at most ~35 ms, the slowest one
# accepted 15 ms. Real queries spend none (the standard introspection query, a dashboard
# query: no field name repeats in a selection set); 10,000 is ~100 fields of one name in
# one selection set.
MERGE_BUDGET = 10_000
# The memory a cached document keeps (its text, its syntax tree with every token's
# location, its validation errors) per character of its text. Measured with tracemalloc
# (scripts/validation_cost.py):
# ~130 for ordinary queries, 393 for the densest text (one-character tokens, `a{b}a{b}`),
# 510 for a 17-character query, whose fixed costs dominate (ENTRY_BYTES covers those).
BYTES_PER_CHARACTER = 512
ENTRY_BYTES = 8_192


@dataclass(frozen=True)
class QueryLimits:
    # Characters of the document itself: comments and spaces are not tokens, yet cost
    # parsing time and cache memory.
    size: int = 100_000
    depth: int = 12
    aliases: int = 30
    tokens: int = 5_000
    cost: int = 500_000
    page_default: int = 50
    page_cap: int = 500
    history_cap: int = 10_000
    introspection: bool = True
    # Fields written in a document (a fragment's once): bounds the work of every rule.
    fields: int = 500
    # Estimated bytes of parsed and validated documents kept for reuse.
    cache_bytes: int = 64 * 1024 * 1024


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
            elif isinstance(selection, InlineFragmentNode):
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

    class FieldCountRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fields = 0

        def enter_field(self, *_: Any) -> None:
            self.fields += 1

        def leave_document(self, node: DocumentNode, *_: Any) -> None:
            if self.fields > limits.fields:
                message = (
                    f"this document selects {self.fields} fields; the limit is {limits.fields}"
                )
                facts = {"code": "TOO_MANY_FIELDS", "limit": limits.fields, "fields": self.fields}
                self.report_error(GraphQLError(message, extensions=facts))

    rules: list[type[ValidationRule]] = [QueryLimitsRule, FieldCountRule]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


class MergeBudgetExceeded(ValidationAbortedError):
    """OverlappingFieldsCanBeMerged spent MERGE_BUDGET on one document."""


class BoundedMergeRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's rule on our budget, and saying so when it runs out."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = MERGE_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            raise MergeBudgetExceeded(
                "this query is too costly to check: too many fields of the same name, "
                "or fragments selecting them, in one selection set",
                extensions={"code": "QUERY_TOO_COMPLEX", "limit": MERGE_BUDGET},
            ) from None


class Checks:
    """Validation for one set of limits: its rules built once (the cache relies on it)."""

    def __init__(self, limits: QueryLimits) -> None:
        self.limits = limits
        self.cheap = tuple(validation_rules(limits))
        merged = (
            BoundedMergeRule if r is OverlappingFieldsCanBeMergedRule else r
            for r in specified_rules
        )
        # strawberry's own rules, as its validation would add them
        self.full = (*merged, MaybeNullValidationRule, OneOfInputValidationRule)

    def validate(self, schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
        errors = validate(schema, document, self.cheap, max_errors=MAX_ERRORS)
        if not errors:
            errors = validate(schema, document, self.full, max_errors=MAX_ERRORS)
        return [self.coded(error) for error in errors]

    def coded(self, error: GraphQLError) -> GraphQLError:
        if isinstance(error, ValidationAbortedError) and not isinstance(error, MergeBudgetExceeded):
            if error.message.startswith(_TOO_MANY_ERRORS):
                return GraphQLError(
                    f"more than {MAX_ERRORS} errors: validation stopped there",
                    extensions={"code": "TOO_MANY_ERRORS", "limit": MAX_ERRORS},
                )
            # The other abort: fragments spread within each other past graphql-core's
            # nesting limit, which is far past ours.
            limit = self.limits.depth
            return GraphQLError(
                f"this query is nested deeper than the limit of {limit} levels",
                extensions={"code": "QUERY_TOO_DEEP", "limit": limit},
            )
        if (error.extensions or {}).get("code") is None:
            facts = limit_error_facts(error.message, self.limits) or {
                "code": "GRAPHQL_VALIDATION_FAILED"
            }
            error.extensions = {**(error.extensions or {}), **facts}
        return error


@dataclass
class CachedDocument:
    document: DocumentNode
    size: int
    errors: list[GraphQLError] | None = None  # None until validated


class DocumentCache:
    """Parsed documents and their validation errors by text, least recently used first
    out, their estimated memory at most `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, CachedDocument] = OrderedDict()

    @staticmethod
    def estimate(text: str) -> int:
        return ENTRY_BYTES + BYTES_PER_CHARACTER * len(text)

    def get(self, text: str) -> CachedDocument | None:
        entry = self._entries.get(text)
        if entry is not None:
            self._entries.move_to_end(text)
        return entry

    def put(self, text: str, document: DocumentNode) -> CachedDocument | None:
        size = self.estimate(text)
        if size > self.max_bytes:
            return None
        old = self._entries.pop(text, None)
        if old is not None:
            self.size -= old.size
        self._entries[text] = entry = CachedDocument(document, size)
        self.size += size
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= evicted.size
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        return text in self._entries


class CachedValidation(SchemaExtension):
    """Parsing and validation through a DocumentCache, validation by `Checks`. Strawberry
    parses (inside its own error handling) what the cache does not hold."""

    def __init__(self, documents: DocumentCache, checks: Checks) -> None:
        self.documents = documents
        self.checks = checks

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        entry = self.documents.get(context.query) if context.query else None
        if entry is not None:
            context.graphql_document = entry.document
        yield
        if entry is None and context.query and context.graphql_document is not None:
            self.documents.put(context.query, context.graphql_document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        entry = self.documents.get(context.query) if context.query else None
        if entry is None or entry.document is not document:
            entry = None  # a document given already parsed, or evicted meanwhile
        if entry is not None and entry.errors is not None:
            errors = entry.errors
        elif document is None:  # strawberry validates parsed documents only
            errors = []
        else:
            errors = self.checks.validate(context.schema._schema, document)
            if entry is not None:
                entry.errors = errors
        context.pre_execution_errors = list(errors)
        yield


# graphql-core's messages for the limits it enforces itself, and our codes for them.
_TOKENS = "tokens. Parsing aborted."
_INTROSPECTION = "Maximum introspection depth exceeded"
_SYNTAX = "Syntax Error:"
_VARIABLE = "Variable '$"
_TOO_MANY_ERRORS = "Too many validation errors"


def limit_error_facts(message: str, limits: QueryLimits) -> dict[str, Any] | None:
    """`extensions` for an error graphql-core raised without a code (at one of our limits,
    or in reading the document or the variables), else None."""
    if _TOKENS in message:
        return {"code": "TOO_MANY_TOKENS", "limit": limits.tokens}
    if message.startswith(_INTROSPECTION):
        return {"code": "INTROSPECTION_TOO_DEEP", "limit": MAX_LIST_DEPTH}
    if message.startswith(_SYNTAX):
        return {"code": "GRAPHQL_PARSE_FAILED"}
    if message.startswith(_VARIABLE):
        return {"code": "INVALID_INPUT"}
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
