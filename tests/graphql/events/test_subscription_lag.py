"""A live watcher that falls too far behind is closed with the cursor to resume from."""

from app.auth.roles import Principal, Role
from app.config import Settings
from app.events import service as events_service
from app.events.models import EventType
from app.graphql.context import Context
from app.graphql.events.types import cursor_seq, event_cursor
from app.graphql.schema import schema
from tests.conftest import subscription_context

WATCH = """
subscription($after: String) { lifecycleEvents(model: "m", after: $after) { cursor type } }
"""


def reader() -> Principal:
    return Principal(name="watcher", role=Role.READER)


async def write_events(db, count: int) -> None:
    async with db.unit_of_work() as session:
        for _ in range(count):
            await events_service.record_event(
                session, type=EventType.MODEL_UPDATED, actor="t", model="m"
            )


async def test_a_watcher_too_far_behind_is_told_where_to_resume(app):
    # given a live watcher allowed to fall 2 events behind, that has seen one event
    db, bus = app.state.db, app.state.bus
    settings = Settings(database_url=app.state.settings.database_url, max_subscriber_lag=2)
    context = Context(db=db, settings=settings, bus=bus, cache_loaders=False, principal=reader())
    await write_events(db, 1)
    async with db.read() as session:
        start = (await events_service.list_events(session, after=0, limit=1))[0].seq
    stream = await schema.subscribe(
        WATCH, variable_values={"after": event_cursor(start)}, context_value=context
    )
    await write_events(db, 1)
    seen = (await stream.__anext__()).data["lifecycleEvents"]

    # when five more commit before it reads again
    await write_events(db, 5)
    result = await stream.__anext__()

    # then it gets an error with the cursor to resume from, which is the last one it saw
    error = result.errors[0]
    assert error.extensions["code"] == "SLOW_CONSUMER"
    assert cursor_seq(error.extensions["cursor"]) == cursor_seq(seen["cursor"])
    await stream.aclose()


async def test_a_watcher_resuming_from_a_cursor_beyond_the_stream_is_refused(app):
    context = subscription_context(app, reader())
    stream = await schema.subscribe(
        WATCH, variable_values={"after": event_cursor(999)}, context_value=context
    )
    result = await stream.__anext__()
    assert result.errors[0].extensions["code"] == "INVALID_INPUT"
    assert result.errors[0].extensions["field"] == "after"
    await stream.aclose()
