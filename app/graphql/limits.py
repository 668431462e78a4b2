"""Validation rules built once (so the validation cache keeps working, NOTES.md): depth,
aliases, and the number of list items a query could ask for."""

from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    IntValueNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

MAX_DEPTH = 12
MAX_ALIASES = 30
# Items a query may ask for at most: the product of `first` down each path of lists.
MAX_ITEMS = 200_000
# A page's size: `first` when written in the query, its cap when a variable (unknown at
# validation), its default when omitted. History pages default to their cap.
HISTORY_FIELDS = {"metricHistory", "metricSeries"}
PAGE_DEFAULT, PAGE_CAP, HISTORY_CAP = 50, 500, 10_000


def _first(node: FieldNode) -> int:
    history = node.name.value in HISTORY_FIELDS
    for argument in node.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                return max(int(argument.value.value), 1)
            return HISTORY_CAP if history else PAGE_CAP
    return HISTORY_CAP if history else PAGE_DEFAULT


class ItemsLimit(ValidationRule):
    """Refuses a query whose nested pages could multiply into more than MAX_ITEMS items."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.stack: list[int] = [1]
        self.reported = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        field = self.context.get_field_def()
        items = self.stack[-1]
        if field is not None and "first" in field.args:
            items *= _first(node)
            if items > MAX_ITEMS and not self.reported:
                self.reported = True
                self.report_error(
                    GraphQLError(
                        f"this query could return {items} items through {node.name.value}; "
                        f"the limit is {MAX_ITEMS}: ask for smaller pages",
                        node,
                        extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_ITEMS},
                    )
                )
        self.stack.append(items)

    def leave_field(self, *_: Any) -> None:
        self.stack.pop()


VALIDATION_RULES = [depth_rule(MAX_DEPTH, None), alias_rule(MAX_ALIASES), ItemsLimit]
