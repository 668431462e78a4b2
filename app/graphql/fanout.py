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
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    ExecutionResult,
    FieldNode,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.events.replay import pace

STORE_SLOT = "fanout: executed events"

A = TypeVar("A")
T = TypeVar("T")


@dataclass
class FanoutStats:
    """Per-process counts: events executed for subscriptions, and deliveries that used
    another watcher's execution instead."""

    executed: int = 0
    shared: int = 0


STATS = FanoutStats()


def _count(context: Any, outcome: str) -> None:
    """In STATS, and in the app's /metrics (modelgraph_subscription_executions)."""
    setattr(STATS, outcome, getattr(STATS, outcome) + 1)
    metrics = getattr(context, "metrics", None)
    if metrics is not None:
        metrics.subscription_executions.labels(outcome).inc()


class _Entry:
    __slots__ = ("operation", "result", "task", "waiters")

    def __init__(
        self,
        operation: OperationDefinitionNode,
        task: "asyncio.Future[Any] | None" = None,
        result: ExecutionResult | None = None,
    ) -> None:
        self.operation = operation
        self.task = task
        self.result = result
        # One future per waiting watcher: cancelling one (a watcher leaving) cancels
        # neither the execution nor the others' waits. Cheaper than a shield each.
        self.waiters: list[asyncio.Future[None]] = []

    def finished(self, task: "asyncio.Future[Any]") -> None:
        """Later watchers take a shareable result without waiting, the waiting ones are
        woken; a failure is retrieved here (each watcher then executes on its own)."""
        self.result = _outcome(task)
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


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

    _prefix: Any = _UNKNOWN

    def _share_prefix(self) -> tuple[Any, ...] | None:
        """What every event's key of this subscription starts with, or None: not shared."""
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
        fanout_key = getattr(payload, "fanout_key", None)
        prefix = self._share_prefix() if fanout_key is not None else None
        if fanout_key is None or prefix is None:
            return super().build_per_event_executor(payload)
        # graphql-core only calls execute_operation(False) on what this returns; a watcher
        # whose event is already executed never needs the copy of the executor.
        return _SharedEvent(self, payload, (*prefix, type(payload).__qualname__, fanout_key()))

    def own_executor(self, payload: Any) -> Any:
        return super().build_per_event_executor(payload)


class _SharedEvent:
    """One watcher's execution of one event: another watcher's, if one ran or is running."""

    __slots__ = ("key", "parent", "payload")

    def __init__(self, parent: SharedSubscriptionExecution, payload: Any, key: Hashable) -> None:
        self.parent = parent
        self.payload = payload
        self.key = key

    def _own(self, serially: bool | None) -> Any:
        return self.parent.own_executor(self.payload).execute_operation(serially)

    def execute_operation(self, serially: bool | None = None) -> Any:
        parent = self.parent
        store = _store(parent.context_value) if serially is False else None
        if store is None:
            return self._own(serially)
        entry = store.get(self.key)
        if entry is not None and entry.operation is parent.operation:
            if entry.result is not None:  # done, and shareable
                _count(parent.context_value, "shared")
                return ExecutionResult(entry.result.data, None)
            return self._follow(entry)
        _count(parent.context_value, "executed")
        result = self._own(serially)
        if not parent.is_awaitable(result):
            store[self.key] = _Entry(parent.operation, result=_shareable(result))
            return result
        task = asyncio.ensure_future(result)
        entry = store[self.key] = _Entry(parent.operation, task=task)
        task.add_done_callback(entry.finished)
        return asyncio.shield(task)

    async def _follow(self, entry: _Entry) -> Any:
        if entry.task is not None and not entry.task.done():
            waiter = asyncio.get_running_loop().create_future()
            entry.waiters.append(waiter)
            await waiter  # a cancelled watcher cancels only this
            await pace()  # all the waiting watchers wake at once: a batch per loop turn
        result = entry.result
        if result is None and entry.task is not None:  # done, its callback not yet run
            result = _outcome(entry.task)
        if result is None:  # the shared execution failed or had errors: on our own
            _count(self.parent.context_value, "executed")
            own = self._own(False)
            return await own if self.parent.is_awaitable(own) else own
        _count(self.parent.context_value, "shared")
        return ExecutionResult(result.data, None)


def _outcome(task: "asyncio.Future[Any]") -> ExecutionResult | None:
    """A finished execution's result, if shareable (a failure is retrieved, not raised)."""
    if task.cancelled() or task.exception() is not None:
        return None
    return _shareable(task.result())


def _shareable(result: Any) -> ExecutionResult | None:
    """The result if every watcher may have its data: no errors (they carry request ids)."""
    if isinstance(result, ExecutionResult) and not result.errors:
        return result
    return None


def _store(context: Any) -> dict[Hashable, _Entry] | None:
    bus = getattr(context, "bus", None)
    if bus is None:
        return None
    shared = bus.shared_loaders()
    store = shared.get(STORE_SLOT)
    if store is None:
        store = shared[STORE_SLOT] = {}
    return store


def shared_value(bus: Any, slot: str, key: Hashable, make: Callable[[A], T], arg: A) -> T:
    """`make(arg)`, made once for every watcher in the bus's shared store (one window, at
    most a second) under (slot, key): the same root object for every watcher of an event."""
    shared = bus.shared_loaders()
    values = shared.get(slot)
    if values is None:
        values = shared[slot] = {}
    value = values.get(key)
    if value is None:
        value = values[key] = make(arg)
    return value
