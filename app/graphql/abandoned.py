"""Resolvers abandoned before they start are closed, not left to warn.

When a non-null field fails, graphql-core stops waiting for its siblings: the ones whose
completion already runs as a task are cancelled (`gather_with_cancel`). A task cancelled
before its first step never runs its coroutine: graphql-core's `complete_awaitable_value`
is thrown into at its first line, and the resolver's coroutine it was handed, never
started, is dropped. Python then prints "RuntimeWarning: coroutine ... was never awaited"
to the server's log for a request that was answered correctly (`data: null` and the
error), which reads like a bug to whoever runs the server (graphql-core issues #236 and
#269 describe the same for other paths).

Here each completion of an awaitable resolver result is handed out as a small coroutine
object of our own. Awaited, it is the completion itself. Cancelled before it starts, or
dropped without ever being awaited, it closes the completion and the resolver's
coroutine: closing a coroutine that never started runs none of its code, so nothing the
resolver would have done happens, exactly as before, only without the warning.
"""

from collections.abc import Coroutine, Generator
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class _Completion(Coroutine[Any, Any, Any]):
    """The completion of one awaitable field result, closed if it never starts.

    A coroutine object of its own, so that a task made of it is cancelled through its
    `throw`: the cancellation that arrives before the first step closes the completion and
    the resolver's coroutine there and then, not later in a finalizer (a cancelled task's
    traceback can put them in a reference cycle, whose finalizers run in any order, and a
    coroutine's own finalizer warns before ours could close it)."""

    __slots__ = ("_completion", "_result")

    def __init__(self, completion: Coroutine[Any, Any, Any], result: Any) -> None:
        self._completion = completion
        self._result = result  # None once started: the completion owns it then

    def send(self, value: Any) -> Any:
        self._result = None
        return self._completion.send(value)

    def throw(self, *exc: Any) -> Any:
        if self._result is not None:  # never started: close both, raise as a coroutine would
            self.close()
            kind, value = exc[0], exc[1] if len(exc) > 1 else None
            raise value if value is not None else kind
        return self._completion.throw(*exc)

    def close(self) -> None:
        result, self._result = self._result, None
        self._completion.close()
        if isinstance(result, Coroutine):
            result.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> "_Completion":
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __del__(self) -> None:
        if self._result is not None:
            self.close()


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
