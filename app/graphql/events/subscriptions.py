from collections.abc import AsyncGenerator

import strawberry

from app.db.types import stored
from app.events.models import LifecycleEventType
from app.events.replay import follow
from app.graphql.context import Ctx
from app.graphql.events.types import LifecycleEvent, cursor_seq
from app.graphql.fanout import shared_value


@strawberry.type
class EventsSubscription:
    @strawberry.subscription(
        description="Every lifecycle change, in commit order. With `after`, first replays "
        "what happened since that cursor, then goes on live: no gap, no duplicate. A watcher "
        "that falls too far behind is closed with code SLOW_CONSUMER and the cursor to "
        "resume from."
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
        stream = follow(
            ctx.db,
            bus,
            after=cursor_seq(after),
            model=model,
            types=types,
            max_lag=ctx.settings.max_subscriber_lag,
        )
        with ctx.subscription("lifecycleEvents"):
            async for event in stream:
                ctx.check_active()
                # One object per event for all its watchers: their execution is shared too.
                yield shared_value(
                    bus, "lifecycle events", stored(event.seq), LifecycleEvent.of, event
                )
                ctx.delivered("lifecycleEvents")
