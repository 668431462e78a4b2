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
                # Everything up to `head` has committed (commit order is seq order), so
                # after reading up to it the cursor may move there even when filters
                # matched nothing: the next read starts past it.
                head = bus.head
                # Replaying an old cursor may be far behind; falling that far behind once
                # live means this watcher reads slower than changes commit.
                if caught_up and head - cursor > ctx.settings.max_subscriber_lag:
                    raise SlowConsumerError(head - cursor, cursor)
                async with ctx.read() as session:
                    batch = await events_service.list_events(
                        session, after=cursor, upto=head, model=model, types=types, limit=BATCH
                    )
                for event in batch:
                    yield LifecycleEvent.of(event)
                if len(batch) == BATCH:
                    cursor = batch[-1].seq  # type: ignore[assignment]
                    continue
                cursor, caught_up = max(cursor, head), True
                await bus.wait_beyond(cursor)
        except BusClosed:
            return
