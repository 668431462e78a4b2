"""Lists of plain objects completed in one loop (app/graphql/execution.py) answer exactly
what graphql-core's own completion answers: data, errors, their paths and null
propagation alike."""

import asyncio
import enum
from typing import Any

import pytest
import strawberry

from app.graphql.execution import LeafListExecution
from app.graphql.schema import schema as app_schema


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Point:
    step: int
    value: float
    label: str | None
    color: Color
    required: str

    @strawberry.field
    def doubled(self) -> int:
        return self.step * 2


def point(step: int, **overrides: Any) -> Point:
    values: dict[str, Any] = {
        "step": step,
        "value": step / 2,
        "label": None if step % 2 else f"p{step}",
        "color": Color.RED if step % 3 else Color.BLUE,
        "required": "x",
    }
    values.update(overrides)
    return Point(**values)


@strawberry.type
class Query:
    @strawberry.field
    def points(self) -> list[Point]:
        return [point(i) for i in range(5)]

    @strawberry.field
    def maybe_points(self) -> list[Point | None]:
        return [point(0), None, point(2)]

    @strawberry.field
    def broken(self) -> list[Point]:
        # A null where the schema says non-null, in the middle of the list.
        return [point(0), point(1, required=None), point(2)]

    @strawberry.field
    def broken_nullable(self) -> list[Point | None] | None:
        return [point(0), point(1, required=None)]

    @strawberry.field
    def unserialisable(self) -> list[Point]:
        return [point(0), point(1, step="not a number")]

    @strawberry.field
    async def awaited(self) -> list[Point]:
        async def one(i: int) -> Point:
            await asyncio.sleep(0)
            return point(i)

        return [one(i) for i in range(3)]  # type: ignore[misc]


fast = strawberry.Schema(query=Query, execution_context_class=LeafListExecution)
plain = strawberry.Schema(query=Query)

QUERIES = [
    "{ points { step value label color required } }",
    "{ points { __typename s: step again: step v: value } }",
    "{ points { step doubled } }",
    "{ maybePoints { step label } }",
    "{ broken { step required } }",
    "{ brokenNullable { step required } }",
    "{ unserialisable { step } }",
    "{ awaited { step } }",
    "{ awaited { __typename } }",
    "query ($s: Boolean!) { points { step @skip(if: $s) value @include(if: $s) } }",
    "{ points { ... on Point { step } ...F } } fragment F on Point { label color }",
]


def _answer(result: Any) -> tuple[Any, Any]:
    errors = [(e.message, e.path) for e in result.errors or ()]
    return result.data, errors


@pytest.mark.parametrize("query", QUERIES)
async def test_the_same_answer_as_graphql_core(query):
    variables = {"s": True}
    got = await fast.execute(query, variable_values=variables)
    want = await plain.execute(query, variable_values=variables)
    assert _answer(got) == _answer(want)


async def test_a_null_in_a_non_null_field_is_an_error_at_its_path():
    result = await fast.execute("{ broken { step required } }")
    assert result.data is None
    assert [e.path for e in result.errors or ()] == [["broken", 1, "required"]]


def test_the_app_schema_uses_it():
    assert issubclass(app_schema.execution_context_class, LeafListExecution)


async def test_plain_lists_skip_the_per_item_completion(monkeypatch):
    calls: list[Any] = []
    original = LeafListExecution.complete_list_item_value

    def counted(self: Any, *args: Any) -> Any:
        calls.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(LeafListExecution, "complete_list_item_value", counted)
    await fast.execute("{ points { step label color } }")
    assert calls == []
    await fast.execute("{ points { step doubled } }")  # a resolver: graphql-core's way
    assert len(calls) == 5
