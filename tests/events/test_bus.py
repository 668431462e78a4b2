"""The bus's window: one read per stretch of new events, shared by all watchers."""

import asyncio

from app.events import service as events_service
from app.events.bus import BusClosed, EventBus
from app.events.models import EventType


async def write(db, bus, count: int, model: str = "m") -> None:
    async with db.unit_of_work() as session:
        for _ in range(count):
            await events_service.record_event(
                session, type=EventType.MODEL_UPDATED, actor="t", model=model
            )
        seq = session.info[events_service.LAST_SEQ]
    bus.advance(seq)


async def test_window_serves_recent_events_and_sends_old_cursors_to_the_table(db):
    bus = EventBus(window=3)
    await bus.start(db)
    try:
        await write(db, bus, 4, model="a")
        await write(db, bus, 4, model="b")
        await asyncio.wait_for(bus.wait_loaded_beyond(7), 10)

        assert bus.loaded == 8
        assert bus.recent(0, model=None, types=None) is None  # older than the window
        assert [e.seq for e in bus.recent(6, model=None, types=None)] == [7, 8]
        assert [e.seq for e in bus.recent(5, model="b", types=["MODEL_UPDATED"])] == [6, 7, 8]
        assert bus.recent(5, model="a", types=None) == []
    finally:
        await bus.close()


async def test_waiters_end_when_the_bus_closes(db):
    bus = EventBus()
    await bus.start(db)
    waiter = asyncio.create_task(bus.wait_loaded_beyond(bus.loaded))
    await asyncio.sleep(0)
    await bus.close()
    try:
        await asyncio.wait_for(waiter, 10)
    except BusClosed:
        pass
    else:
        raise AssertionError("expected BusClosed")
