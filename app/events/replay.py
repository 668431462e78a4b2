"""Following the lifecycle stream: replay from a cursor, then live, no gap, no duplicate."""

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence

from app.db import Database
from app.db.pagination import encode_cursor
from app.db.types import stored
from app.errors import DomainError, ErrorCode, ValidationError
from app.events import service as events_service
from app.events.bus import BusClosed, EventBus
from app.events.models import Event

BATCH = 500
# Watchers woken by one commit that go on per turn of the event loop; the others wait for
# later turns, so other requests (a /healthz, a mutation) are served between the batches
# of a 20,000-watcher burst instead of after all of it.
WAKE_PER_TURN = 100


class SlowConsumerError(DomainError):
    code = ErrorCode.SLOW_CONSUMER

    def __init__(self, behind: int, cursor: int) -> None:
        encoded = event_cursor(cursor)
        super().__init__(
            f"this watcher is more than {behind} events behind; reconnect with "
            f"after: {encoded!r} to resume without loss",
            cursor=encoded,
        )


def event_cursor(seq: int) -> str:
    """The opaque cursor of the event with this seq."""
    return encode_cursor([seq])


async def follow(
    db: Database,
    bus: EventBus,
    *,
    after: int | None,
    model: str | None = None,
    types: Sequence[str] | None = None,
    max_lag: int,
) -> AsyncIterator[Event]:
    """Matching lifecycle events after `after` (or from now), in commit order, forever.

    Events up to the bus's loaded mark are committed and in its window (lifecycle commit
    order is seq order), so the cursor may move there even when nothing matched. A watcher
    that falls more than `max_lag` matching events behind once live gets SlowConsumerError
    with the cursor to resume from; the server never buffers for it."""
    if after is not None and after <= bus.head:
        cursor = after  # committed: no need to ask the table
    else:
        newest = await _newest(db, bus)
        if after is None:
            cursor = newest
        elif after > max(newest, bus.head):
            raise ValidationError(
                "after", "is beyond the newest event: not a cursor of this stream"
            )
        else:
            cursor = after
    caught_up = False
    try:
        while True:
            # Raw seqs bound the backlog from above; count precisely only past the limit.
            if caught_up and bus.head - cursor > max_lag:
                behind = await _backlog(db, bus, cursor, model, types, max_lag)
                if behind > max_lag:
                    raise SlowConsumerError(max_lag, cursor)
            upto, more = bus.loaded, False
            events = bus.recent(cursor, model=model, types=types)
            if events is None:  # older than the window: read the table
                async with db.read() as session:
                    events = await events_service.list_events(
                        session, after=cursor, upto=upto, model=model, types=types, limit=BATCH
                    )
                if len(events) == BATCH:
                    upto, more = stored(events[-1].seq), True
            for event in events:
                yield event
            cursor, caught_up = max(cursor, upto), not more
            if cursor >= bus.loaded:
                await bus.wait_loaded_beyond(cursor)
                await pace()
    except BusClosed:
        return


_READING_NEWEST: "weakref.WeakKeyDictionary[EventBus, asyncio.Future[int]]" = (
    weakref.WeakKeyDictionary()
)


async def _newest(db: Database, bus: EventBus) -> int:
    """The newest seq in the table. Watchers starting together share one read (a
    thousand subscribing at once would otherwise queue for the connection pool); one
    that began before a watcher subscribed may give it an event from just before: never
    one missed."""
    reading = _READING_NEWEST.get(bus)
    if reading is None:
        reading = _READING_NEWEST[bus] = asyncio.ensure_future(_read_newest(db))
        reading.add_done_callback(lambda _: _READING_NEWEST.pop(bus, None))
    return await asyncio.shield(reading)


async def _read_newest(db: Database) -> int:
    async with db.read() as session:
        return await events_service.last_seq(session)


async def _backlog(
    db: Database,
    bus: EventBus,
    cursor: int,
    model: str | None,
    types: Sequence[str] | None,
    limit: int,
) -> int:
    pending = bus.recent(cursor, model=model, types=types)
    if pending is not None and bus.loaded >= bus.head:
        return len(pending)
    async with db.read(background=True) as session:
        return await events_service.count_events(
            session, after=cursor, model=model, types=types, limit=limit + 1
        )


class _Pacer:
    """At most WAKE_PER_TURN watchers go on per turn of the event loop; the rest queue,
    in order, and go on WAKE_PER_TURN a turn in the turns that follow."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.granted = 0
        self.queue: deque[asyncio.Future[None]] = deque()
        self.scheduled = False

    async def turn(self) -> None:
        if not self.queue and self.granted < WAKE_PER_TURN:
            self.granted += 1
            self._schedule()
            return
        waiter = self.loop.create_future()
        self.queue.append(waiter)
        self._schedule()
        await waiter  # cancelled: only this watcher's turn is gone

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self.scheduled, self.granted = False, 0
        while self.queue and self.granted < WAKE_PER_TURN:
            waiter = self.queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.granted += 1
        if self.queue or self.granted:
            self._schedule()


_PACERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pacer]" = (
    weakref.WeakKeyDictionary()
)
_last_pacer: _Pacer | None = None  # the one asked for last: a lookup saved per delivery


def _pacer() -> _Pacer:
    global _last_pacer
    loop = asyncio.get_running_loop()
    pacer = _last_pacer
    if pacer is None or pacer.loop is not loop:
        pacer = _PACERS.get(loop)
        if pacer is None:
            pacer = _PACERS[loop] = _Pacer(loop)
        _last_pacer = pacer
    return pacer


async def pace() -> None:
    """Wait for this watcher's turn: at most WAKE_PER_TURN go on per turn of the loop."""
    await _pacer().turn()
