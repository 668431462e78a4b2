"""The retry-safe mechanism takes a keyed call's identity from the function's signature."""

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ConflictError
from app.registry.idempotency import Replay, retry_safe

CALLS: list[dict[str, Any]] = []


async def _load(session: AsyncSession, stored: dict[str, Any]) -> int:
    return int(stored["n"])


@retry_safe("probe", Replay(dump=lambda n: {"n": n}, load=_load))
async def probe(
    session: AsyncSession,
    *,
    n: int,
    label: str = "a",
    idempotency_key: str | None = None,
    actor: str,
) -> int:
    """Count the call and answer `n`."""
    CALLS.append({"n": n, "label": label})
    return n


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


async def test_a_retry_with_the_same_arguments_answers_the_first_result_without_running(db):
    async with db.unit_of_work() as session:
        assert await probe(session, n=1, idempotency_key="k", actor="t") == 1
    async with db.unit_of_work() as session:
        assert await probe(session, n=1, label="a", idempotency_key="k", actor="t") == 1
    assert CALLS == [{"n": 1, "label": "a"}]


async def test_calls_differing_only_in_one_parameter_are_different_requests(db):
    # `label` is in no hand-kept list: being a parameter of the keyed function is enough
    async with db.unit_of_work() as session:
        await probe(session, n=1, label="a", idempotency_key="k", actor="t")
    with pytest.raises(ConflictError) as refused:
        async with db.unit_of_work() as session:
            await probe(session, n=1, label="b", idempotency_key="k", actor="t")
    assert refused.value.field == "idempotencyKey"
    assert CALLS == [{"n": 1, "label": "a"}]


async def test_the_actor_and_the_key_are_not_part_of_the_request(db):
    async with db.unit_of_work() as session:
        await probe(session, n=1, idempotency_key="k", actor="t")
    async with db.unit_of_work() as session:
        # another caller's key of the same name is its own: it runs
        assert await probe(session, n=2, idempotency_key="k", actor="u") == 2
    assert CALLS == [{"n": 1, "label": "a"}, {"n": 2, "label": "a"}]


def test_a_function_without_a_key_parameter_cannot_be_made_retry_safe():
    async def keyless(session: AsyncSession, *, n: int, actor: str) -> int:
        return n

    with pytest.raises(TypeError, match="idempotency_key"):
        retry_safe("keyless", Replay(dump=lambda n: {"n": n}, load=_load))(keyless)


@retry_safe("bag", Replay(dump=lambda n: {"n": n}, load=_load), unordered=("items",))
async def bag(
    session: AsyncSession,
    *,
    items: list[tuple[str, str]] | None,
    idempotency_key: str | None = None,
    actor: str,
) -> int:
    CALLS.append({"items": items})
    return len(items or [])


async def test_an_unordered_parameter_is_the_same_request_in_any_order(db):
    async with db.unit_of_work() as session:
        await bag(session, items=[("a", "1"), ("b", "2")], idempotency_key="k", actor="t")
    async with db.unit_of_work() as session:
        assert await bag(session, items=[("b", "2"), ("a", "1")], idempotency_key="k", actor="t")
    assert len(CALLS) == 1
    # other items are another request
    with pytest.raises(ConflictError):
        async with db.unit_of_work() as session:
            await bag(session, items=[("b", "2"), ("a", "9")], idempotency_key="k", actor="t")


def test_an_unordered_name_must_be_a_parameter():
    async def fn(session: AsyncSession, *, idempotency_key: str | None, actor: str) -> int:
        return 0

    with pytest.raises(TypeError, match="items"):
        retry_safe("x", Replay(dump=lambda n: {"n": n}, load=_load), unordered=("items",))(fn)
