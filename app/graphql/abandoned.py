"""Resolvers abandoned before they start are closed, not left to warn.

When a non-null field fails, graphql-core stops waiting for its siblings: the ones whose
completion already runs as a task are cancelled (`gather_with_cancel`). A task cancelled
before its first step never runs its coroutine: graphql-core's `complete_awaitable_value`
is thrown into at its first line, and the resolver's coroutine it was handed, never
started, is dropped. Python then prints "RuntimeWarning: coroutine ... was never awaited"
to the server's log for a request that was answered correctly (`data: null` and the
error), which reads like a bug to whoever runs the server (graphql-core issues #236 and
#269 describe the same for other paths).

Here each completion of an awaitable resolver result is handed out inside a small
awaitable. Awaited, it is the completion itself. Dropped without ever being awaited, it
closes the completion and the resolver's coroutine: closing a coroutine that never
started runs none of its code, so nothing the resolver would have done happens, exactly
as before, only without the warning.
"""

from collections.abc import Coroutine, Generator
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class _Completion:
    """The completion of one awaitable field result, closed if it is never awaited."""

    __slots__ = ("_completion", "_result")

    def __init__(self, completion: Coroutine[Any, Any, Any], result: Any) -> None:
        self._completion: Coroutine[Any, Any, Any] | None = completion
        self._result = result

    def __await__(self) -> Generator[Any, None, Any]:
        completion, self._completion, self._result = self._completion, None, None
        if completion is None:
            raise RuntimeError("a field's completion was awaited twice")
        return completion.__await__()

    def __del__(self) -> None:
        completion = self._completion
        if completion is None:
            return
        completion.close()
        close = getattr(self._result, "close", None)
        if close is not None and isinstance(self._result, Coroutine):
            close()


class ClosesAbandonedResolvers(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, with resolver coroutines it abandons closed."""

    def complete_awaitable_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        completion = super().complete_awaitable_value(
            return_type, field_details_list, info, path, result, position_context
        )
        return _Completion(completion, result)
