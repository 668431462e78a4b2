import strawberry

from app.events import service as events_service
from app.events.models import LifecycleEventType
from app.graphql.context import Ctx
from app.graphql.events.types import LifecycleEvent, cursor_seq
from app.graphql.pagination import Connection, to_connection


@strawberry.type
class EventsQuery:
    @strawberry.field(
        description="The lifecycle stream as pages, for clients that poll: pass the last "
        "cursor as `after` to get only what happened since."
    )
    async def events(
        self,
        info: Ctx,
        model: str | None = None,
        types: list[LifecycleEventType] | None = None,
        after: str | None = None,
        first: int | None = None,
    ) -> Connection[LifecycleEvent]:
        size = info.context.page_size(first)
        async with info.context.read() as session:
            page = await events_service.events_page(
                session, after=cursor_seq(after) or 0, model=model, types=types, first=size
            )
        return to_connection(page, LifecycleEvent.of)
