"""Watchers of one event share its execution when, and only when, nothing they asked for
or are allowed to see differs: the same document, the variables it reads, the role."""

import asyncio
from typing import Any

from app.auth.roles import Principal, Role
from app.events import service as events_service
from app.events.models import EventType
from app.events.replay import WAKE_PER_TURN
from app.graphql import fanout
from app.graphql.events.types import event_cursor
from app.graphql.schema import schema
from tests.conftest import subscription_context

WATCH = """
subscription($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) { cursor type model actor }
}"""

WATCH_MAYBE_VERSION = """
subscription($after: String, $withVersion: Boolean!) {
  lifecycleEvents(after: $after) {
    cursor type model
    version @include(if: $withVersion) { version }
  }
}"""


def principal(role: Role, name: str = "watcher") -> Principal:
    return Principal(name=name, role=role)


async def write_events(db, *models: str) -> None:
    async with db.unit_of_work() as session:
        for model in models:
            await events_service.record_event(
                session, type=EventType.MODEL_UPDATED, actor="t", model=model
            )


async def newest_cursor(db) -> str:
    async with db.read() as session:
        return event_cursor(await events_service.last_seq(session))


async def watch(app, role: Role, query: str = WATCH, **variables: Any):
    return await schema.subscribe(
        query, variable_values=variables, context_value=subscription_context(app, principal(role))
    )


async def next_of_each(streams) -> list[dict[str, Any]]:
    results = await asyncio.gather(*(s.__anext__() for s in streams))
    for result in results:
        assert result.errors is None, result.errors
    return [r.data for r in results]


def counts() -> tuple[int, int]:
    return fanout.STATS.executed, fanout.STATS.shared


def since(before: tuple[int, int]) -> tuple[int, int]:
    executed, shared = counts()
    return executed - before[0], shared - before[1]


async def close(streams) -> None:
    for stream in streams:
        await stream.aclose()


async def test_watchers_of_the_same_query_share_one_execution_per_event(app):
    # given three readers watching model "m" with the same document and variables
    db = app.state.db
    after = await newest_cursor(db)
    streams = [await watch(app, Role.READER, model="m", after=after) for _ in range(3)]
    before = counts()

    # when one event commits
    await write_events(db, "m")
    payloads = await next_of_each(streams)

    # then it was executed once and all three got the same payload
    assert since(before) == (1, 2)
    assert payloads[0] == payloads[1] == payloads[2]
    assert payloads[0]["lifecycleEvents"]["model"] == "m"
    await close(streams)


async def test_watchers_with_different_roles_never_share_an_execution(app):
    db = app.state.db
    after = await newest_cursor(db)
    readers = [await watch(app, Role.READER, model="m", after=after) for _ in range(2)]
    admins = [await watch(app, Role.ADMIN, model="m", after=after) for _ in range(2)]
    before = counts()

    await write_events(db, "m")
    payloads = await next_of_each([*readers, *admins])

    # one execution per role, each shared by its own kind only
    assert since(before) == (2, 2)
    assert payloads[0] == payloads[1]
    assert payloads[2] == payloads[3]
    await close([*readers, *admins])


async def test_variables_the_selection_reads_keep_results_apart(app):
    # given watchers that differ only in a variable of a directive inside the selection
    db = app.state.db
    after = await newest_cursor(db)
    with_version = [
        await watch(app, Role.READER, WATCH_MAYBE_VERSION, after=after, withVersion=True)
        for _ in range(2)
    ]
    without = [
        await watch(app, Role.READER, WATCH_MAYBE_VERSION, after=after, withVersion=False)
        for _ in range(2)
    ]
    before = counts()

    await write_events(db, "m")
    payloads = [p["lifecycleEvents"] for p in await next_of_each([*with_version, *without])]

    # then each kind got its own result: the field only where it was asked for
    assert since(before) == (2, 2)
    assert ["version" in p for p in payloads] == [True, True, False, False]
    assert len({p["cursor"] for p in payloads}) == 1
    await close([*with_version, *without])


async def test_a_model_filter_keeps_each_watcher_to_its_own_events(app):
    # given watchers of model "a" and of model "b" (the filter only chooses the stream)
    db = app.state.db
    after = await newest_cursor(db)
    on_a = [await watch(app, Role.READER, model="a", after=after) for _ in range(2)]
    on_b = [await watch(app, Role.READER, model="b", after=after) for _ in range(2)]

    # when events on both commit
    await write_events(db, "a", "b", "a")
    first = await next_of_each([*on_a, *on_b])
    second = await next_of_each(on_a)

    # then every watcher saw only its model, and both "a" watchers the same two events
    assert [p["lifecycleEvents"]["model"] for p in first] == ["a", "a", "b", "b"]
    assert [p["lifecycleEvents"]["model"] for p in second] == ["a", "a"]
    assert first[0] == first[1]
    assert second[0] == second[1]
    assert first[0] != second[0]
    await close([*on_a, *on_b])


async def test_a_watcher_back_with_its_cursor_misses_nothing_and_shares_what_is_live(app):
    # given a watcher that saw one event and left, and one that stayed
    db = app.state.db
    start = await newest_cursor(db)
    staying = await watch(app, Role.READER, model="m", after=start)
    leaving = await watch(app, Role.READER, model="m", after=start)
    await write_events(db, "m")
    seen, _ = await next_of_each([leaving, staying])
    await leaving.aclose()

    # when two events commit while it is away, and it comes back with its last cursor
    await write_events(db, "m", "m")
    back = await watch(app, Role.READER, model="m", after=seen["lifecycleEvents"]["cursor"])
    missed = [await next_of_each([back, staying]) for _ in range(2)]

    # then it gets both, in order, the same as the watcher that stayed
    for mine, theirs in missed:
        assert mine == theirs
    assert missed[0][0] != missed[1][0]

    # and a live event after that is executed once for both of them (their `after`
    # variables differ, but `after` only chooses where the stream starts)
    before = counts()
    await write_events(db, "m")
    mine, theirs = await next_of_each([back, staying])
    assert mine == theirs
    assert since(before) == (1, 1)
    await close([back, staying])


async def test_a_watcher_that_leaves_mid_execution_does_not_break_the_others(app):
    db = app.state.db
    after = await newest_cursor(db)
    leaving = await watch(app, Role.READER, model="m", after=after)
    staying = await watch(app, Role.READER, model="m", after=after)
    await write_events(db, "m")
    first = asyncio.ensure_future(leaving.__anext__())
    second = asyncio.ensure_future(staying.__anext__())
    await asyncio.sleep(0)
    first.cancel()
    result = await second
    assert result.errors is None
    assert result.data["lifecycleEvents"]["model"] == "m"
    await staying.aclose()


async def test_more_watchers_than_wake_in_one_turn_all_get_the_event_from_one_execution(app):
    # given more watchers than go on in one turn of the event loop
    db = app.state.db
    after = await newest_cursor(db)
    count = 2 * WAKE_PER_TURN + 50
    streams = [await watch(app, Role.READER, model="m", after=after) for _ in range(count)]
    before = counts()

    # when two events commit
    await write_events(db, "m", "m")
    first = await next_of_each(streams)
    second = await next_of_each(streams)

    # then every watcher got both, in order, each executed once for all of them
    assert all(p == first[0] for p in first)
    assert all(p == second[0] for p in second)
    assert first[0]["lifecycleEvents"]["cursor"] != second[0]["lifecycleEvents"]["cursor"]
    assert since(before) == (2, 2 * (count - 1))
    await close(streams)
