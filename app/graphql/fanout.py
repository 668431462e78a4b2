"""Shared subscription execution: one event, executed once per distinct query, fanned out.

A thousand watchers of the same subscription would each execute the same selection set
on the same event (~0.6 ms of CPU apiece) and get the same data. Instead, each event is
executed once per (operation, the variables its selection set reads, the viewer's role)
in a process; every other watcher that shares those waits for that execution and gets
its data. What makes the result differ is all in the key:

- the operation: the same parsed document object (the document cache hands the same
  text the same object; a different object, even of equal text, is executed on its own);
- the variables read anywhere but the root field's own arguments: those only choose
  the source stream (`model`, `types`, `after`), while per event the root field is the
  event itself; a variable in a directive or a nested argument is part of the key;
- the role of the principal (nothing under an event depends on who asks beyond it);
- the event (its `fanout_key()`: the cursor; a payload without one is never shared).

Results live in the event bus's shared store, so no longer than the bus's shared loaders
(one window, at most a second): a watcher replaying older events later executes them
itself, as "the version as it is now" requires. A result with errors is not shared:
each watcher then executes on its own (its errors carry its request id). The execution
runs in a task of its own, so a watcher that disconnects mid-way cancels only its wait.
"""

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    ExecutionResult,
    FieldNode,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

STORE_SLOT = "fanout: executed events"


@dataclass
class FanoutStats:
    """Per-process counts: events executed for subscriptions, and deliveries that used
    another watcher's execution instead."""

    executed: int = 0
    shared: int = 0


STATS = FanoutStats()


class _Entry:
    __slots__ = ("operation", "result", "task")

    def __init__(
        self,
        operation: OperationDefinitionNode,
        task: "asyncio.Future[Any] | None" = None,
        result: ExecutionResult | None = None,
    ) -> None:
        self.operation = operation
        self.task = task
        self.result = result


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.names.add(node.name.value)


def selection_variables(operation: OperationDefinitionNode, fragments: dict[str, Any]) -> set[str]:
    """The variables whose values can change what one event's execution returns: all but
    those only in a root field's own arguments (every fragment counts, conservatively)."""
    parts: list[Any] = list(operation.directives or ())
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            parts.extend(selection.directives or ())
            if selection.selection_set is not None:
                parts.append(selection.selection_set)
        else:
            parts.append(selection)
    parts.extend(fragments.values())
    reader = _Variables()
    for part in parts:
        visit(part, reader)
    return reader.names


def _frozen(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Hashable):
        return (type(value).__qualname__, value)
    return repr(value)


_UNKNOWN: Any = object()


class SharedSubscriptionExecution(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with each subscription event executed once per sharing key.
    Queries and mutations run exactly as before."""

    _share: tuple[Any, ...] | None = None
    _prefix: Any = _UNKNOWN

    def _share_prefix(self) -> tuple[Any, ...] | None:
        if self._prefix is _UNKNOWN:
            self._prefix = None
            principal = getattr(self.context_value, "principal", None)
            if principal is not None and _store(self.context_value) is not None:
                names = selection_variables(self.operation, self.fragment_definitions)
                coerced = self.variable_values.coerced
                read = tuple(sorted((n, _frozen(coerced.get(n))) for n in names))
                self._prefix = (id(self.operation), read, principal.role)
        return self._prefix

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = cast("SharedSubscriptionExecution", super().build_per_event_executor(payload))
        fanout_key = getattr(payload, "fanout_key", None)
        if fanout_key is not None:
            prefix = self._share_prefix()
            if prefix is not None:
                executor._share = (*prefix, type(payload).__qualname__, fanout_key())
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._share
        store = _store(self.context_value) if key is not None and serially is False else None
        if store is None:
            return super().execute_operation(serially)
        entry = store.get(key)
        if entry is not None and entry.operation is self.operation:
            STATS.shared += 1
            return self._follow(entry)
        STATS.executed += 1
        result = super().execute_operation(serially)
        if not self.is_awaitable(result):
            store[key] = _Entry(self.operation, result=cast(ExecutionResult, result))
            return result
        task = asyncio.ensure_future(result)
        task.add_done_callback(_retrieve)
        store[key] = _Entry(self.operation, task=task)
        return asyncio.shield(task)

    async def _follow(self, entry: _Entry) -> Any:
        result = entry.result
        if entry.task is not None:
            try:
                result = await asyncio.shield(entry.task)
            except asyncio.CancelledError:
                if not entry.task.cancelled():
                    raise  # this watcher's own wait was cancelled
                result = None
            except Exception:  # the shared execution failed: try on our own
                result = None
        if result is None or result.errors:
            STATS.shared -= 1
            STATS.executed += 1
            own = super().execute_operation(False)
            return await own if self.is_awaitable(own) else own
        return ExecutionResult(result.data, None)


def _store(context: Any) -> dict[Hashable, _Entry] | None:
    bus = getattr(context, "bus", None)
    if bus is None:
        return None
    shared = bus.shared_loaders()
    store = shared.get(STORE_SLOT)
    if store is None:
        store = shared[STORE_SLOT] = {}
    return store


def _retrieve(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()  # retrieved: the watchers that awaited it handle it
