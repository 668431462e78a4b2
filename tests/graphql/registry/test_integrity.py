"""The registry's invariants under direct SQL and concurrent requests: one PRODUCTION version
per model (held by the database itself), gap-free version numbers, an event per change."""

import asyncio
import json

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.db import Database, utcnow
from app.errors import ConflictError
from app.events.models import Event
from app.registry.models import ModelVersion, RegisteredModel, StageTransition
from app.registry.stages import Stage
from tests.factories import make_run, make_version

REGISTER = """
mutation Register($model: String!) {
  registerModelVersion(input: {model: $model}) {
    __typename
    ... on RegisterModelVersionSuccess { modelVersion { version } }
  }
}
"""

TRANSITION = """
mutation Transition($model: String!, $version: Int!, $stage: Stage!) {
  transitionModelVersion(input: {model: $model, version: $version, stage: $stage}) {
    __typename
  }
}
"""

PROMOTE = """
mutation Promote($model: String!, $stage: Stage!) {
  promoteBestRun(input: {experiment: "exp", metric: "acc", model: $model, stage: $stage}) {
    __typename
    ... on PromoteBestRunSuccess { created modelVersion { version stage } }
  }
}
"""

STAGES = """
query Stages($name: String!) {
  model(name: $name) {
    productionVersion { version }
    versions(first: 500) { nodes { version stage } }
  }
}
"""


async def production_versions(db: Database, model: str) -> list[int]:
    async with db.read() as s:
        stmt = (
            select(ModelVersion.version)
            .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
            .where(RegisteredModel.name == model, ModelVersion.stage == Stage.PRODUCTION.value)
        )
        return sorted((await s.execute(stmt)).scalars().all())


async def model_id(db: Database, name: str) -> int:
    async with db.read() as s:
        stmt = select(RegisteredModel.id).where(RegisteredModel.name == name)
        return (await s.execute(stmt)).scalar_one()


def integrity_error_of(exc: BaseException) -> IntegrityError | None:
    """The IntegrityError itself, or the one a unit of work wrapped into a ConflictError."""
    while exc is not None:
        if isinstance(exc, IntegrityError):
            return exc
        exc = exc.__cause__
    return None


async def count_rows(db: Database, column) -> int:
    async with db.read() as s:
        return (await s.execute(select(func.count(column)))).scalar_one()


# ---------------------------------------------------------------- one PRODUCTION per model


async def test_database_refuses_an_update_to_a_second_production_version(db):
    # given
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    mid = await model_id(db, "m")

    # when
    with pytest.raises((IntegrityError, ConflictError)) as caught:
        async with db.unit_of_work() as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.model_id == mid, ModelVersion.version == 2)
                .values(stage=Stage.PRODUCTION.value)
            )

    # then
    assert integrity_error_of(caught.value) is not None, caught.value
    assert await production_versions(db, "m") == [1]


async def test_database_refuses_an_insert_of_a_second_production_version(db):
    # given
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    mid = await model_id(db, "m")
    now = utcnow()

    # when
    with pytest.raises((IntegrityError, ConflictError)) as caught:
        async with db.unit_of_work() as session:
            await session.execute(
                insert(ModelVersion).values(
                    model_id=mid,
                    version=2,
                    stage=Stage.PRODUCTION.value,
                    tags={},
                    created_at=now,
                    updated_at=now,
                )
            )

    # then
    assert integrity_error_of(caught.value) is not None, caught.value
    assert await production_versions(db, "m") == [1]
    assert await count_rows(db, ModelVersion.id) == 1


async def test_database_allows_one_production_version_in_each_model(db):
    # given
    await make_version(db, model="a", stage=Stage.PRODUCTION)
    await make_version(db, model="b", stage=Stage.STAGING)
    mid = await model_id(db, "b")

    # when
    async with db.unit_of_work() as session:
        await session.execute(
            update(ModelVersion)
            .where(ModelVersion.model_id == mid)
            .values(stage=Stage.PRODUCTION.value)
        )

    # then
    assert await production_versions(db, "a") == [1]
    assert await production_versions(db, "b") == [1]


async def test_database_allows_many_versions_in_other_stages(db):
    for stage in [Stage.ARCHIVED, Stage.ARCHIVED, Stage.STAGING, Stage.STAGING, None, None]:
        await make_version(db, model="m", stage=stage)

    assert await count_rows(db, ModelVersion.id) == 6


# ---------------------------------------------------------------- concurrent requests


async def test_concurrent_registrations_number_versions_without_gaps_or_duplicates(gql, db):
    # when
    results = await asyncio.gather(*(gql(REGISTER, model="m") for _ in range(8)))

    # then
    payloads = [r["registerModelVersion"] for r in results]
    assert {p["__typename"] for p in payloads} == {"RegisterModelVersionSuccess"}
    assert sorted(p["modelVersion"]["version"] for p in payloads) == list(range(1, 9))
    async with db.read() as s:
        created = (
            await s.execute(select(func.count()).where(Event.type == "MODEL_CREATED"))
        ).scalar_one()
        registered = (
            await s.execute(select(func.count()).where(Event.type == "VERSION_REGISTERED"))
        ).scalar_one()
    assert (created, registered) == (1, 8)


async def test_concurrent_moves_to_production_leave_exactly_one_there(gql, db):
    # given
    for _ in range(4):
        await make_version(db, model="m", stage=Stage.STAGING)

    # when
    results = await asyncio.gather(
        *(gql.raw(TRANSITION, model="m", version=v, stage="PRODUCTION") for v in range(1, 5))
    )

    # then: each request either won its turn or was told to retry, never a 500
    for body in results:
        assert "errors" not in body, body
        assert "Traceback" not in json.dumps(body)
    kinds = [b["data"]["transitionModelVersion"]["__typename"] for b in results]
    assert set(kinds) <= {"TransitionModelVersionSuccess", "Conflict"}
    assert len(await production_versions(db, "m")) == 1
    data = await gql(STAGES, name="m")
    stages = sorted(v["stage"] for v in data["model"]["versions"]["nodes"])
    assert stages.count("PRODUCTION") == 1
    # the outbox has exactly one event per recorded move
    async with db.read() as s:
        moved = (
            await s.execute(select(func.count()).where(Event.type == "STAGE_CHANGED"))
        ).scalar_one()
    assert moved == await count_rows(db, StageTransition.id)


async def test_concurrent_promotions_of_the_same_run_register_it_once(gql, db):
    # given
    await make_run(db, experiment="exp", metrics={"acc": 0.9})

    # when
    results = await asyncio.gather(*(gql(PROMOTE, model="m", stage="PRODUCTION") for _ in range(5)))

    # then
    payloads = [r["promoteBestRun"] for r in results]
    successes = [p for p in payloads if p["__typename"] == "PromoteBestRunSuccess"]
    assert {p["__typename"] for p in payloads} <= {"PromoteBestRunSuccess", "Conflict"}
    assert successes
    assert sum(p["created"] for p in successes) == 1
    assert {p["modelVersion"]["version"] for p in successes} == {1}
    assert {p["modelVersion"]["stage"] for p in successes} == {"PRODUCTION"}
    assert await count_rows(db, ModelVersion.id) == 1
    assert await production_versions(db, "m") == [1]
