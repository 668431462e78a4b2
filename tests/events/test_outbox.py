"""The outbox: events exist iff their change committed, and are read in commit order."""

import asyncio

import pytest
from sqlalchemy import text

from app.events import service as events_service
from app.events.models import EventType


async def read_all(db, after: int = 0) -> list:
    async with db.read() as session:
        return await events_service.list_events(session, after=after, limit=100)


async def test_a_rolled_back_change_leaves_no_event(db):
    async def write_an_event_then_fail() -> None:
        async with db.unit_of_work() as session:
            await events_service.record_event(
                session, type=EventType.MODEL_CREATED, actor="t", model="m"
            )
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError, match="after its event was written"):
        await write_an_event_then_fail()
    assert await read_all(db) == []


@pytest.mark.postgres
async def test_gap_hazard_an_open_event_writer_holds_back_later_ones(db):
    # given a transaction that wrote an event and has not committed
    written, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> int:
        async with db.unit_of_work() as session:
            event = await events_service.record_event(
                session, type=EventType.STAGE_CHANGED, actor="slow", model="m"
            )
            written.set()
            await release.wait()
        return event.seq

    async def fast_writer() -> int:
        async with db.unit_of_work() as session:
            event = await events_service.record_event(
                session, type=EventType.STAGE_CHANGED, actor="fast", model="m"
            )
        return event.seq

    slow = asyncio.create_task(slow_writer())
    await written.wait()

    # when a second writer starts: it must queue behind the first, not commit a later seq
    fast = asyncio.create_task(fast_writer())
    async with db.read() as session:
        for _ in range(200):
            waiting = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                )
            ).scalar_one()
            if waiting:
                break
            await asyncio.sleep(0.05)
    assert waiting == 1
    assert not fast.done()
    # a reader moving its cursor now sees nothing to move past
    assert await read_all(db) == []

    # then once the first commits, both arrive in seq order = commit order, none skipped
    release.set()
    slow_seq, fast_seq = await slow, await fast
    assert slow_seq < fast_seq
    assert [(e.seq, e.actor) for e in await read_all(db)] == [
        (slow_seq, "slow"),
        (fast_seq, "fast"),
    ]


async def test_events_are_read_after_a_cursor_with_filters(db):
    async with db.unit_of_work() as session:
        for model, kind in [
            ("a", EventType.MODEL_CREATED),
            ("b", EventType.MODEL_CREATED),
            ("a", EventType.STAGE_CHANGED),
            (None, EventType.RUN_STARTED),
        ]:
            await events_service.record_event(session, type=kind, actor="t", model=model)
    everything = await read_all(db)
    # run events are tracking, not lifecycle: not in the stream
    assert [(e.model, e.type) for e in everything] == [
        ("a", "MODEL_CREATED"),
        ("b", "MODEL_CREATED"),
        ("a", "STAGE_CHANGED"),
    ]
    async with db.read() as session:
        after_first = await events_service.list_events(
            session, after=everything[0].seq, model="a", limit=10
        )
        typed = await events_service.list_events(
            session, after=0, types=["STAGE_CHANGED"], limit=10
        )
    assert [e.type for e in after_first] == ["STAGE_CHANGED"]
    assert [e.model for e in typed] == ["a"]
