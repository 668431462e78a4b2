"""A failing non-null field abandons its siblings' pending resolvers: they are closed
quietly, never left for Python to report as "coroutine ... was never awaited"."""

import asyncio
import gc
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from app.graphql.abandoned import _Completion
from tests.factories import make_run, make_version

# `run` resolves, then its sub-fields' resolvers are created and queued as tasks; the
# non-null `checkPromotion` fails meanwhile, and the root's wait cancels them unstarted.
QUERY = """
query($run: ID!) {
  run(id: $run) {
    children { id }
    experiment { bestRun(metric: "auc") { id } }
    modelVersions { source }
  }
  checkPromotion(model: "no-such-model", version: 1, stage: STAGING) { allowed }
}
"""


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """What Python reports as unraisable while the test runs (an unawaited coroutine is
    one), collected here instead of by pytest's own hook."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
        gc.collect()
    finally:
        sys.unraisablehook = previous


async def test_siblings_of_a_failed_non_null_field_are_closed_quietly(db, client, unraisable):
    # given a run its sub-fields can be resolved for, with a model version of it
    run = await make_run(db, experiment="abandoned", metrics={"auc": 0.9})
    await make_version(db, model="abandoned", run_id=run.id, stage="STAGING")

    # when the query fails as a whole, again and again
    for _ in range(20):
        response = await client.post(
            "/graphql", json={"query": QUERY, "variables": {"run": run.id}}
        )
        body = response.json()
        # then each answer is the refusal and nothing else
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
        gc.collect()

    # and no resolver was left unawaited behind it
    assert [repr(u.exc_value) for u in unraisable] == []


async def _resolver(done: list[str]) -> str:
    done.append("ran")
    return "value"


async def _completion(result: Any) -> Any:
    return await result


async def test_an_awaited_completion_is_the_completion_itself():
    done: list[str] = []
    result = _resolver(done)
    assert await _Completion(_completion(result), result) == "value"
    assert done == ["ran"]


async def cancelled_unstarted(awaitable: Any) -> bool:
    task = asyncio.ensure_future(awaitable)
    task.cancel()
    await asyncio.wait([task])
    return task.cancelled()


async def test_a_completion_dropped_unawaited_closes_both_coroutines_unrun(unraisable):
    done: list[str] = []
    result = _resolver(done)
    completion = _completion(result)
    wrapper = _Completion(completion, result)

    # a task cancelled before its first step never awaits what it was given
    assert await cancelled_unstarted(wrapper)
    del wrapper
    gc.collect()

    assert inspect.getcoroutinestate(completion) == inspect.CORO_CLOSED
    assert inspect.getcoroutinestate(result) == inspect.CORO_CLOSED
    assert done == []
    assert unraisable == []
