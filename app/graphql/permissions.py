"""Every root field checks the caller's role before it runs (app/auth/roles.py's table).

Only root fields carry the check, so nested fields cost nothing extra. A root field
missing from the table stops the schema from being built: nothing is reachable by
default."""

import inspect
from collections.abc import Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from app.auth.roles import required_role


class RequireRole(FieldExtension):
    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.role = required_role(operation)

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        info.context.authorize(info.field_name, self.role)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        info.context.authorize(info.field_name, self.role)
        result = next_(source, info, **kwargs)
        # A subscription's resolver gives an async generator, not an awaitable.
        return await result if inspect.isawaitable(result) else result


def guard_root_fields(*root_types: type) -> None:
    """Give each root field its RequireRole (once; the types are module-level)."""
    for root in root_types:
        for field in get_object_definition(root, strict=True).fields:
            if not any(isinstance(e, RequireRole) for e in field.extensions):
                field.extensions.append(RequireRole(field.python_name))
