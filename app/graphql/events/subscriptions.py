from collections.abc import AsyncGenerator

import strawberry

from app.errors import DomainError
from app.events import service as events_service
from app.events.bus import BusClosed
from app.events.models import LifecycleEventType
from app.graphql.context import Ctx
from app.graphql.events.types import LifecycleEvent, cursor_seq, event_cursor

BATCH = 500


class SlowConsumerError(DomainError):
    code = "SLOW_CONSUMER"

    def __init__(self, behind: int, cursor: int) -> None:
        super().__init__(
            f"this watcher is {behind} events behind; reconnect with after: "
            f"{event_cursor(cursor)!r} to resume without loss",
            cursor=event_cursor(cursor),
        )


@strawberry.type
class EventsSubscription:
    @strawberry.subscription(
        description="Every lifecycle change, in commit order. With `after`, first replays "
        "what happened since that cursor, then goes on live: no gap, no duplicate."
    )
    async def lifecycle_events(
        self,
        info: Ctx,
        model: str | None = None,
        types: list[LifecycleEventType] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[LifecycleEvent, None]:
        ctx = info.context
        bus = ctx.bus
        assert bus is not None
        cursor = cursor_seq(after)
        if cursor is None:
            async with ctx.read() as session:
                cursor = await events_service.last_seq(session)
        caught_up = False
        try:
            while True:
                # Replaying an old cursor may be far behind; falling that far behind once
                # live means this watcher reads slower than changes commit.
                if caught_up and bus.head - cursor > ctx.settings.max_subscriber_lag:
                    raise SlowConsumerError(bus.head - cursor, cursor)
                # Every lifecycle event up to `upto` is committed and in the bus's window
                # (commit order is seq order), so the cursor may move there even when the
                # filters matched nothing.
                upto, more = bus.loaded, False
                events = bus.recent(cursor, model=model, types=types)
                if events is None:  # older than the window: read the table
                    async with ctx.read() as session:
                        events = await events_service.list_events(
                            session,
                            after=cursor,
                            upto=upto,
                            model=model,
                            types=types,
                            limit=BATCH,
                        )
                    if len(events) == BATCH:
                        upto, more = events[-1].seq, True  # type: ignore[assignment]
                for event in events:
                    yield LifecycleEvent.of(event)
                cursor, caught_up = max(cursor, upto), not more
                if cursor >= bus.loaded:
                    await bus.wait_loaded_beyond(cursor)
        except BusClosed:
            return
