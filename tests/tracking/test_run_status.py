"""A run's status is a RunStatus member wherever it is read, and plain text where it is sent."""

from sqlalchemy import select
from sqlmodel import col

from app.db import Database
from app.events.models import Event, EventType
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import Run, RunStatus
from app.tracking.search import RunFilter
from tests.factories import ACTOR, make_run


async def test_status_read_through_the_orm_is_the_enum_member(db: Database) -> None:
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await tracking_service.end_run(session, run_id=run.id, status=RunStatus.FAILED, actor=ACTOR)

    async with db.read() as session:
        stored = await tracking_reads.runs_by_ids(session, ids=[run.id])

    assert type(stored[run.id].status) is RunStatus
    assert stored[run.id].status is RunStatus.FAILED


async def test_status_in_a_core_row_is_the_enum_member(db: Database) -> None:
    run = await make_run(db)

    async with db.read() as session:
        status = (
            await session.execute(select(col(Run.status)).where(col(Run.id) == run.id))
        ).scalar_one()

    assert type(status) is RunStatus
    assert status is RunStatus.RUNNING


async def test_status_filter_takes_enum_members(db: Database) -> None:
    running = await make_run(db)
    ended = await make_run(db)
    async with db.unit_of_work() as session:
        await tracking_service.end_run(
            session, run_id=ended.id, status=RunStatus.KILLED, actor=ACTOR
        )

    async with db.read() as session:
        page = await tracking_reads.search_runs(
            session,
            experiment="exp",
            run_filter=RunFilter(statuses=(RunStatus.KILLED,)),
            first=10,
        )

    assert [r.id for r in page.items] == [ended.id]
    assert running.id not in [r.id for r in page.items]


async def test_run_ended_event_carries_the_statuses_as_text(db: Database) -> None:
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await tracking_service.end_run(
            session, run_id=run.id, status=RunStatus.FINISHED, actor=ACTOR
        )

    async with db.read() as session:
        event = (
            await session.execute(select(Event).where(col(Event.type) == EventType.RUN_ENDED))
        ).scalar_one()

    assert event.payload == {"runId": run.id, "from": "RUNNING", "status": "FINISHED"}
    assert type(event.payload["status"]) is str
