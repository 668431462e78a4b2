"""Model and version tags, explicit model creation, rename, deletion, latest per stage and
the stage walk: each write one unit of work with its events; refusals change nothing."""

import pytest
from sqlalchemy import func, select

from app.db import Database
from app.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from app.events.models import Event
from app.registry import catalog, entries, policy, reads, removal, walk
from app.registry.models import ModelVersion, RegisteredModel, StageTransition
from app.registry.stages import Stage
from app.tracking.search import CompareOp
from tests.factories import ACTOR, make_run, make_version
from tests.integrity import last_seq, snapshot


async def events_after(db: Database, seq: int) -> list[Event]:
    async with db.read() as session:
        stmt = select(Event).where(Event.seq > seq).order_by(Event.seq)
        return list((await session.execute(stmt)).scalars())


async def test_create_model_with_tags_and_description_and_refuse_a_taken_name(db):
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        model = await entries.create_model(
            session, name="m", description="d", tags={"team": "x"}, actor=ACTOR
        )
    assert (model.name, model.description, model.tags, model.last_version) == (
        "m",
        "d",
        {"team": "x"},
        0,
    )
    state = await snapshot(db)
    with pytest.raises(AlreadyExistsError):
        async with db.unit_of_work() as session:
            await entries.create_model(session, name="m", actor=ACTOR)
    assert await snapshot(db) == state
    assert [e.type for e in await events_after(db, before)] == ["MODEL_CREATED"]


async def test_model_and_version_tags_set_and_delete_with_events(db):
    await make_version(db, model="m")
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        await entries.set_model_tag(session, name="m", key="team", value="fraud", actor=ACTOR)
        await entries.set_version_tag(
            session, model="m", version=1, key="validated", value="yes", actor=ACTOR
        )
    async with db.unit_of_work() as session:
        model = await entries.delete_model_tag(session, name="m", key="team", actor=ACTOR)
        version = await entries.set_version_tag(
            session, model="m", version=1, key="validated", value="yes", actor=ACTOR
        )
    assert model.tags == {}
    assert version.tags == {"validated": "yes"}
    events = await events_after(db, before)
    # Setting a tag to the value it has changes nothing and writes nothing.
    assert [(e.type, e.payload) for e in events] == [
        ("MODEL_UPDATED", {"tags": {"team": "fraud"}}),
        ("VERSION_UPDATED", {"tags": {"validated": "yes"}}),
        ("MODEL_UPDATED", {"removedTags": ["team"]}),
    ]
    state = await snapshot(db)
    with pytest.raises(NotFoundError):
        async with db.unit_of_work() as session:
            await entries.delete_version_tag(session, model="m", version=1, key="nope", actor=ACTOR)
    with pytest.raises(ValidationError):
        async with db.unit_of_work() as session:
            await entries.set_model_tag(session, name="m", key="bad\x00", value="v", actor=ACTOR)
    assert await snapshot(db) == state


async def test_rename_carries_versions_aliases_history_and_events(db):
    await make_version(db, model="old", stage=Stage.PRODUCTION)
    async with db.unit_of_work() as session:
        await catalog.set_alias(session, model="old", alias="champion", version=1, actor=ACTOR)
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        model = await entries.rename_model(session, name="old", new_name="new", actor=ACTOR)
    assert model.name == "new"
    async with db.read() as session:
        assert await catalog.get_model(session, name="old") is None
        by_alias = await catalog.get_version(session, model="new", alias="champion")
        assert by_alias is not None
        assert (by_alias.version, by_alias.stage) == (1, Stage.PRODUCTION)
        moves = (await session.execute(select(func.count()).select_from(StageTransition))).scalar()
        assert moves == 2
        names = set((await session.execute(select(Event.model))).scalars())
    # The model's whole story is under its new name, the rename last.
    assert names == {"new"}
    [renamed] = await events_after(db, before)
    assert (renamed.type, renamed.model, renamed.payload) == (
        "MODEL_RENAMED",
        "new",
        {"previousName": "old", "name": "new"},
    )


async def test_rename_refuses_a_taken_or_bad_name_and_changes_nothing(db):
    await make_version(db, model="a")
    await make_version(db, model="b")
    state = await snapshot(db)
    with pytest.raises(AlreadyExistsError):
        async with db.unit_of_work() as session:
            await entries.rename_model(session, name="a", new_name="b", actor=ACTOR)
    with pytest.raises(ValidationError):
        async with db.unit_of_work() as session:
            await entries.rename_model(session, name="a", new_name=" a", actor=ACTOR)
    with pytest.raises(NotFoundError):
        async with db.unit_of_work() as session:
            await entries.rename_model(session, name="zz", new_name="c", actor=ACTOR)
    assert await snapshot(db) == state


async def test_delete_version_keeps_its_number_and_tells_watchers(db):
    for _ in range(3):
        await make_version(db, model="m")
    async with db.unit_of_work() as session:
        await catalog.set_alias(session, model="m", alias="candidate", version=3, actor=ACTOR)
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        await removal.delete_version(session, model="m", version=3, actor=ACTOR)
    [deleted] = await events_after(db, before)
    assert (deleted.type, deleted.model, deleted.version, deleted.from_stage) == (
        "VERSION_DELETED",
        "m",
        3,
        "DEVELOPMENT",
    )
    assert deleted.payload["aliases"] == ["candidate"]
    assert await make_version(db, model="m") == 4
    async with db.read() as session:
        assert await catalog.get_version(session, model="m", alias="candidate") is None
        numbers = (
            await session.execute(select(ModelVersion.version).order_by(ModelVersion.version))
        ).scalars()
        assert list(numbers) == [1, 2, 4]


async def test_production_version_and_its_model_cannot_be_deleted(db):
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    state = await snapshot(db)
    with pytest.raises(ConflictError, match="PRODUCTION"):
        async with db.unit_of_work() as session:
            await removal.delete_version(session, model="m", version=1, actor=ACTOR)
    with pytest.raises(ConflictError, match="PRODUCTION"):
        async with db.unit_of_work() as session:
            await removal.delete_model(session, name="m", actor=ACTOR)
    assert await snapshot(db) == state


async def test_delete_model_removes_it_and_its_versions_and_keeps_the_events(db):
    await make_version(db, model="m", stage=Stage.STAGING)
    await make_version(db, model="m", stage=Stage.ARCHIVED)
    await make_version(db, model="keep")
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        await removal.delete_model(session, name="m", actor=ACTOR)
    [deleted] = await events_after(db, before)
    assert (deleted.type, deleted.model) == ("MODEL_DELETED", "m")
    assert {k: v["stage"] for k, v in deleted.payload["versions"].items()} == {
        "1": "STAGING",
        "2": "ARCHIVED",
    }
    async with db.read() as session:
        assert list((await session.execute(select(RegisteredModel.name))).scalars()) == ["keep"]
        assert (await session.execute(select(func.count()).select_from(ModelVersion))).scalar() == 1
        history = (await session.execute(select(func.count()).where(Event.model == "m"))).scalar()
    assert history == 6  # created, 2 registered, 2 moves, deleted
    # The name is free again, numbering from 1.
    assert await make_version(db, model="m") == 1


async def test_latest_per_stage(db):
    await make_version(db, model="m", stage=Stage.PRODUCTION)  # 1
    await make_version(db, model="m", stage=Stage.STAGING)  # 2
    await make_version(db, model="m", stage=Stage.STAGING)  # 3
    await make_version(db, model="m")  # 4
    await make_version(db, model="m")  # 5
    async with db.read() as session:
        model = await catalog.require_model(session, name="m")
        assert model.id is not None
        every = await reads.latest_per_stage(session, model_ids=[model.id])
        some = await reads.latest_per_stage(
            session, model_ids=[model.id], stages=[Stage.STAGING, Stage.ARCHIVED]
        )
    assert [(v.stage, v.version) for v in every[model.id]] == [
        (Stage.DEVELOPMENT, 5),
        (Stage.STAGING, 3),
        (Stage.PRODUCTION, 1),
    ]
    assert [(v.stage, v.version) for v in some[model.id]] == [(Stage.STAGING, 3)]


async def test_walk_goes_through_staging_with_both_moves_audited(db):
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m")
    before = await last_seq(db)
    async with db.unit_of_work() as session:
        result = await walk.walk_version(
            session, model="m", version=2, stage=Stage.PRODUCTION, actor=ACTOR
        )
    assert [(t.from_stage, t.to_stage) for t in result.transitions] == [
        (Stage.DEVELOPMENT, Stage.STAGING),
        (Stage.PRODUCTION, Stage.ARCHIVED),
        (Stage.STAGING, Stage.PRODUCTION),
    ]
    events = await events_after(db, before)
    assert [(e.version, e.from_stage, e.to_stage) for e in events] == [
        (2, "DEVELOPMENT", "STAGING"),
        (1, "PRODUCTION", "ARCHIVED"),
        (2, "STAGING", "PRODUCTION"),
    ]


async def test_walk_refusal_lists_every_unmet_condition_and_moves_nothing(db):
    run = await make_run(db, metrics={"accuracy": 0.5})
    await make_version(db, model="m", run_id=run.id)
    async with db.unit_of_work() as session:
        await policy.set_promotion_policy(
            session, model="m", stage=Stage.STAGING, required_checks=["tests"], actor=ACTOR
        )
        await policy.set_promotion_policy(
            session,
            model="m",
            stage=Stage.PRODUCTION,
            metric_rules=[("accuracy", CompareOp.GTE, 0.9)],
            actor=ACTOR,
        )
    state = await snapshot(db)
    with pytest.raises(policy.PolicyViolationError) as refused:
        async with db.unit_of_work() as session:
            await walk.walk_version(
                session, model="m", version=1, stage=Stage.PRODUCTION, actor=ACTOR
            )
    assert [u.condition for u in refused.value.unmet] == [
        "STAGING policy, check tests",
        "metric accuracy",
    ]
    assert "check tests: not reported (required PASSED)" in refused.value.message
    assert "metric accuracy: 0.5 (required GTE 0.9)" in refused.value.message
    assert await snapshot(db) == state


async def test_walk_archives_other_staging_versions_only_when_asked(db):
    await make_version(db, model="m", stage=Stage.STAGING)
    await make_version(db, model="m")
    await make_version(db, model="m")
    async with db.unit_of_work() as session:
        await walk.walk_version(session, model="m", version=2, stage=Stage.STAGING, actor=ACTOR)
        await walk.walk_version(
            session, model="m", version=3, stage=Stage.STAGING, archive_others=True, actor=ACTOR
        )
        # Already there: nothing moves.
        same = await walk.walk_version(
            session, model="m", version=3, stage=Stage.STAGING, actor=ACTOR
        )
    assert same.transitions == []
    async with db.read() as session:
        stages = (await session.execute(select(ModelVersion.version, ModelVersion.stage))).all()
    assert sorted(stages) == [(1, Stage.ARCHIVED), (2, Stage.ARCHIVED), (3, Stage.STAGING)]


async def test_a_retry_whose_first_answer_was_deleted_is_a_conflict_not_a_crash(db):
    async def register() -> int:
        async with db.unit_of_work() as session:
            done = await catalog.register_version(
                session, model="m", source="s3://b/m", idempotency_key="k1", actor=ACTOR
            )
            return done.version.version

    assert await register() == 1
    assert await register() == 1  # a retry: the first answer
    async with db.unit_of_work() as session:
        await removal.delete_version(session, model="m", version=1, actor=ACTOR)
    state = await snapshot(db)
    with pytest.raises(ConflictError) as refused:
        await register()
    assert refused.value.field == "idempotencyKey"
    assert await snapshot(db) == state
