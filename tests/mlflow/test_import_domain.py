"""The import functions on their own (no MLflow server): the reconstructed stage history
and the one-PRODUCTION rule, modelgraph's own later moves winning, metric points matched
as a multiset (repeats and NaN), and refusals that leave nothing written."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.db import Database
from app.errors import ConflictError, ValidationError
from app.events.models import Event
from app.registry import imports as registry_imports
from app.registry import lifecycle
from app.registry.models import StageTransition
from app.registry.stages import Stage
from app.tracking import imports
from app.tracking import service as tracking_service
from app.tracking.models import Metric

ACTOR = "cli:test/import-mlflow"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def _model_with_versions(db: Database, name: str, count: int) -> None:
    async with db.unit_of_work() as session:
        await registry_imports.import_model(
            session, name=name, description=None, tags={}, created_at=T0, updated_at=T0, actor=ACTOR
        )
    for number in range(1, count + 1):
        async with db.unit_of_work() as session:
            await registry_imports.import_version(
                session,
                model=name,
                version=number,
                run_id=None,
                source=f"models:/m-{number:032x}",
                description=None,
                tags={},
                created_at=T0 + timedelta(minutes=number),
                files=[],
                actor=ACTOR,
            )


async def _stage(db: Database, name: str, version: int, stage: Stage, at: datetime) -> int:
    async with db.unit_of_work() as session:
        moves = await registry_imports.import_stage(
            session,
            model=name,
            version=version,
            stage=stage,
            at=at,
            source_name="MLflow",
            actor=ACTOR,
        )
    return len(moves)


async def _stages(db: Database, name: str) -> dict[int, Stage]:
    from app.registry import catalog

    async with db.read() as session:
        out = {}
        for number in (1, 2, 3):
            found = await catalog.get_version(session, model=name, version=number)
            if found is not None:
                out[number] = found.stage
        return out


async def test_several_mlflow_production_versions_leave_the_latest_in_production(
    db: Database,
) -> None:
    await _model_with_versions(db, "m", 2)
    assert await _stage(db, "m", 1, Stage.PRODUCTION, T0 + timedelta(hours=1)) == 2
    # MLflow allowed a second Production version (archive_existing_versions=False).
    assert await _stage(db, "m", 2, Stage.PRODUCTION, T0 + timedelta(hours=2)) == 3
    assert await _stages(db, "m") == {1: Stage.ARCHIVED, 2: Stage.PRODUCTION}
    async with db.read() as session:
        archived = (
            await session.execute(
                select(StageTransition).where(col(StageTransition.to_stage) == Stage.ARCHIVED)
            )
        ).scalar_one()
        assert archived.at == T0 + timedelta(hours=2)
        assert archived.policy is None


async def test_the_same_stage_again_or_an_older_move_changes_nothing(db: Database) -> None:
    await _model_with_versions(db, "m", 2)
    at = T0 + timedelta(hours=1)
    assert await _stage(db, "m", 1, Stage.STAGING, at) == 1
    assert await _stage(db, "m", 1, Stage.STAGING, at) == 0
    # A move MLflow made before the last one recorded here is not history any more.
    assert await _stage(db, "m", 1, Stage.DEVELOPMENT, at - timedelta(minutes=1)) == 0
    assert await _stages(db, "m") == {1: Stage.STAGING, 2: Stage.DEVELOPMENT}


async def test_a_promotion_made_here_later_wins_over_an_older_mlflow_promotion(
    db: Database,
) -> None:
    await _model_with_versions(db, "m", 2)
    async with db.unit_of_work() as session:
        await lifecycle.transition_version(
            session, model="m", version=2, stage=Stage.STAGING, actor="someone"
        )
    async with db.unit_of_work() as session:
        await lifecycle.transition_version(
            session, model="m", version=2, stage=Stage.PRODUCTION, actor="someone"
        )
    assert await _stage(db, "m", 1, Stage.PRODUCTION, T0 + timedelta(hours=1)) == 0
    assert await _stages(db, "m") == {1: Stage.DEVELOPMENT, 2: Stage.PRODUCTION}


async def test_a_version_number_taken_by_another_source_is_refused(db: Database) -> None:
    await _model_with_versions(db, "m", 1)
    async with db.read() as session:
        events = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
    with pytest.raises(ConflictError) as refused:
        async with db.unit_of_work() as session:
            await registry_imports.import_version(
                session,
                model="m",
                version=1,
                run_id=None,
                source="runs:/elsewhere",
                description=None,
                tags={},
                created_at=None,
                files=[],
                actor=ACTOR,
            )
    assert refused.value.facts["field"] == "version"
    async with db.read() as session:
        after = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
    assert after == events


async def test_points_already_here_are_matched_one_for_one(db: Database) -> None:
    run_id = "a" * 32
    async with db.unit_of_work() as session:
        experiment, _ = await imports.import_experiment(
            session, name="e", tags={}, created_at=T0, actor=ACTOR
        )
        await imports.import_run(
            session, run_id=run_id, experiment=experiment, name="r", start_time=T0, actor=ACTOR
        )
    nan = math.nan
    source = [
        imports.Point("loss", 1.0, 0, 10),
        imports.Point("loss", 1.0, 0, 10),  # the same point twice: MLflow keeps both
        imports.Point("loss", nan, 1, 11),
        imports.Point("loss", 0.5, 2, 12),
    ]
    async with db.unit_of_work() as session:
        await imports.append_points(session, run_id=run_id, points=source[:3], actor=ACTOR)
    async with db.read() as session:
        missing = await imports.missing_points(session, run_id=run_id, key="loss", points=source)
    assert missing == [source[3]]
    async with db.unit_of_work() as session:
        await imports.append_points(session, run_id=run_id, points=missing, actor=ACTOR)
    async with db.read() as session:
        assert await imports.missing_points(session, run_id=run_id, key="loss", points=source) == []
        stored = (
            await session.execute(select(func.count()).where(col(Metric.run_id) == run_id))
        ).scalar_one()
    assert stored == 4


async def _experiment_and_run(db: Database, run_id: str) -> None:
    async with db.unit_of_work() as session:
        experiment, _ = await imports.import_experiment(
            session, name="e", tags={}, created_at=None, actor=ACTOR
        )
        await imports.import_run(
            session, run_id=run_id, experiment=experiment, name=None, start_time=T0, actor=ACTOR
        )


async def test_a_run_id_that_is_not_mlflow_shaped_is_refused(db: Database) -> None:
    with pytest.raises(ValidationError) as refused:
        await _experiment_and_run(db, "../x")
    assert refused.value.facts["field"] == "runId"
    async with db.read() as session:
        # One unit of work: the experiment made before the refusal is not kept either.
        assert await tracking_service.get_experiment(session, name="e") is None
