"""Soft delete and restore, renames, tags, resume, nested runs and dataset inputs: each
change with its event, a change that changes nothing with none."""

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.db import Database
from app.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from app.events.models import Event, EventType
from app.tracking import datasets, lifecycle
from app.tracking import metrics as tracking_metrics
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import DEFAULT_EXPERIMENT_ID, Dataset, RunStatus
from tests.factories import ACTOR, make_run


async def events(db: Database, type: EventType) -> list[Event]:
    async with db.read() as session:
        stmt = select(Event).where(col(Event.type) == type.value).order_by(col(Event.seq))
        return list((await session.execute(stmt)).scalars())


async def experiment_id(db: Database, name: str) -> int:
    async with db.read() as session:
        found = await tracking_service.require_experiment(session, name=name)
    assert found.id is not None
    return found.id


async def test_deleting_an_experiment_hides_it_and_its_runs_and_restoring_brings_them_back(
    db: Database,
) -> None:
    earlier = await make_run(db, experiment="e")
    kept = await make_run(db, experiment="e")
    async with db.unit_of_work() as session:
        await lifecycle.delete_run(session, run_id=earlier.id, actor=ACTOR)
    eid = await experiment_id(db, "e")

    async with db.unit_of_work() as session:
        await lifecycle.delete_experiment(session, experiment_id=eid, actor=ACTOR)
    async with db.read() as session:
        listed = await tracking_service.list_experiments(session, first=10, after=None)
        everything = await tracking_service.list_experiments(
            session, first=10, after=None, include_deleted=True
        )
        hidden = await tracking_reads.runs_by_ids(session, ids=[kept.id])
    assert eid not in [e.id for e in listed.items]
    assert eid in [e.id for e in everything.items]
    assert hidden[kept.id].deleted

    async with db.unit_of_work() as session:
        await lifecycle.restore_experiment(session, experiment_id=eid, actor=ACTOR)
    async with db.read() as session:
        back = await tracking_reads.runs_by_ids(session, ids=[kept.id, earlier.id])
    # The run deleted on its own before stays deleted.
    assert not back[kept.id].deleted
    assert back[earlier.id].deleted
    deleted = await events(db, EventType.EXPERIMENT_DELETED)
    restored = await events(db, EventType.EXPERIMENT_RESTORED)
    assert [e.payload["runsDeleted"] for e in deleted] == [1]
    assert [e.payload["runsRestored"] for e in restored] == [1]


async def test_deleting_twice_writes_one_event(db: Database) -> None:
    run = await make_run(db)

    for _ in range(2):
        async with db.unit_of_work() as session:
            await lifecycle.delete_run(session, run_id=run.id, actor=ACTOR)

    assert len(await events(db, EventType.RUN_DELETED)) == 1


async def test_the_default_experiment_cannot_be_deleted(db: Database) -> None:
    with pytest.raises(ValidationError):
        async with db.unit_of_work() as session:
            await lifecycle.delete_experiment(
                session, experiment_id=DEFAULT_EXPERIMENT_ID, actor=ACTOR
            )


async def test_a_deleted_run_takes_no_writes_until_restored(db: Database) -> None:
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await lifecycle.delete_run(session, run_id=run.id, actor=ACTOR)

    with pytest.raises(ConflictError):
        async with db.unit_of_work() as session:
            await tracking_metrics.log_metrics(
                session, run_id=run.id, points=[tracking_metrics.MetricPoint("m", 1.0)], actor=ACTOR
            )
    async with db.unit_of_work() as session:
        await lifecycle.restore_run(session, run_id=run.id, actor=ACTOR)
        await tracking_metrics.log_metrics(
            session, run_id=run.id, points=[tracking_metrics.MetricPoint("m", 1.0)], actor=ACTOR
        )
    assert len(await events(db, EventType.RUN_RESTORED)) == 1


async def test_a_deleted_experiment_takes_no_new_runs(db: Database) -> None:
    await make_run(db, experiment="gone")
    eid = await experiment_id(db, "gone")
    async with db.unit_of_work() as session:
        await lifecycle.delete_experiment(session, experiment_id=eid, actor=ACTOR)

    with pytest.raises(ConflictError):
        await make_run(db, experiment="gone")


async def test_experiment_rename_and_tags(db: Database) -> None:
    await make_run(db, experiment="old")
    await make_run(db, experiment="taken")
    eid = await experiment_id(db, "old")

    async with db.unit_of_work() as session:
        await lifecycle.rename_experiment(session, experiment_id=eid, name="new", actor=ACTOR)
        await lifecycle.set_experiment_tags(
            session, experiment_id=eid, tags={"a": "1", "b": "2"}, actor=ACTOR
        )
        await lifecycle.delete_experiment_tag(session, experiment_id=eid, key="a", actor=ACTOR)
    with pytest.raises(AlreadyExistsError):
        async with db.unit_of_work() as session:
            await lifecycle.rename_experiment(session, experiment_id=eid, name="taken", actor=ACTOR)
    with pytest.raises(NotFoundError):
        async with db.unit_of_work() as session:
            await lifecycle.delete_experiment_tag(session, experiment_id=eid, key="a", actor=ACTOR)

    async with db.read() as session:
        renamed = await tracking_service.require_experiment(session, name="new")
    assert renamed.tags == {"b": "2"}
    assert renamed.last_update_time > renamed.created_at
    assert len(await events(db, EventType.EXPERIMENT_UPDATED)) == 3


async def test_an_ended_run_resumes_and_ends_again(db: Database) -> None:
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await tracking_service.end_run(
            session, run_id=run.id, status=RunStatus.FINISHED, actor=ACTOR
        )
        resumed = await lifecycle.resume_run(session, run_id=run.id, actor=ACTOR)
        assert resumed.status == RunStatus.RUNNING
        assert resumed.end_time is None
        ended = await tracking_service.end_run(
            session, run_id=run.id, status=RunStatus.KILLED, actor=ACTOR
        )

    assert ended.status == RunStatus.KILLED
    assert [e.payload["from"] for e in await events(db, EventType.RUN_RESUMED)] == ["FINISHED"]


async def test_run_rename_and_tag_delete(db: Database) -> None:
    run = await make_run(db, tags={"k": "v", "keep": "1"})

    async with db.unit_of_work() as session:
        await lifecycle.rename_run(session, run_id=run.id, name="renamed", actor=ACTOR)
        await lifecycle.delete_run_tag(session, run_id=run.id, key="k", actor=ACTOR)
    with pytest.raises(NotFoundError):
        async with db.unit_of_work() as session:
            await lifecycle.delete_run_tag(session, run_id=run.id, key="k", actor=ACTOR)

    async with db.read() as session:
        tags = await tracking_reads.tags_by_runs(session, run_ids=[run.id])
        stored = await tracking_reads.runs_by_ids(session, ids=[run.id])
    assert tags[run.id] == [("keep", "1")]
    assert stored[run.id].name == "renamed"
    assert len(await events(db, EventType.RUN_TAG_DELETED)) == 1


async def test_nested_runs_by_argument_or_by_tag(db: Database) -> None:
    parent = await make_run(db)
    by_argument = await make_run(db, parent_run_id=parent.id)
    by_tag = await make_run(db, tags={"mlflow.parentRunId": parent.id})

    async with db.read() as session:
        children = await tracking_reads.children_by_runs(session, run_ids=[parent.id])

    assert [r.id for r in children[parent.id]] == [by_argument.id, by_tag.id]
    assert by_tag.parent_run_id == parent.id
    with pytest.raises(NotFoundError) as refused:
        await make_run(db, parent_run_id="f" * 32)
    assert refused.value.field == "parentRunId"


async def test_inputs_are_stored_once_and_linked_once(db: Database) -> None:
    run = await make_run(db)
    other = await make_run(db)
    iris = datasets.DatasetInput(
        "iris",
        "abc123",
        "local",
        "/d/iris.csv",
        schema='{"a": 1}',
        tags={"mlflow.data.context": "training"},
    )

    for target in (run.id, run.id, other.id):
        async with db.unit_of_work() as session:
            await datasets.log_inputs(session, run_id=target, inputs=[iris], actor=ACTOR)

    async with db.read() as session:
        count = (await session.execute(select(func.count()).select_from(Dataset))).scalar_one()
        inputs = await datasets.inputs_by_runs(session, run_ids=[run.id, other.id])
    assert count == 1
    assert [(i.dataset.name, i.dataset.digest, i.context) for i in inputs[run.id]] == [
        ("iris", "abc123", "training")
    ]
    assert inputs[run.id][0].dataset.schema_ == '{"a": 1}'
    assert len(inputs[other.id]) == 1
    assert len(await events(db, EventType.INPUTS_LOGGED)) == 2


async def test_an_over_long_digest_is_refused_naming_it(db: Database) -> None:
    run = await make_run(db)

    with pytest.raises(ValidationError) as refused:
        async with db.unit_of_work() as session:
            await datasets.log_inputs(
                session,
                run_id=run.id,
                inputs=[datasets.DatasetInput("d", "x" * 37, "local", "/d")],
                actor=ACTOR,
            )

    assert refused.value.field == "datasets[0].digest"
    assert refused.value.limit == 36
