"""Logged models in the domain: created PENDING, finalized, tagged, params written once,
output by runs, searched with MLflow's grammar, and their files snapshotted for a version
only when READY; their blobs never collected while they reference them."""

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.artifacts.content import store_content
from app.artifacts.model_files import log_model_artifact, version_files
from app.artifacts.store import BlobStore
from app.artifacts.upkeep import collect_garbage
from app.errors import ConflictError, NotFoundError, ValidationError
from app.events.models import Event, EventType
from app.tracking import lifecycle as tracking_lifecycle
from app.tracking import logged_model_reads as reads
from app.tracking import logged_models as service
from app.tracking import metrics as tracking_metrics
from app.tracking.logged_model_models import LoggedModelStatus
from tests.factories import make_run
from tests.integrity import snapshot

ACTOR = "t"


async def create(db, run, **kw):
    async with db.unit_of_work() as session:
        return await service.create_logged_model(
            session,
            experiment_id=run.experiment_id,
            source_run_id=run.id,
            actor=ACTOR,
            **kw,
        )


async def test_create_finalize_tags_params_and_events(db):
    run = await make_run(db)
    model = await create(db, run, name="model", params={"C": "1.0"}, tags={"team": "a"})
    assert model.id.startswith("m-")
    assert len(model.id) == 34
    assert model.status == LoggedModelStatus.PENDING
    async with db.unit_of_work() as session:
        await service.set_logged_model_tags(
            session, model_id=model.id, tags={"team": "b", "x": "1"}, actor=ACTOR
        )
        await service.delete_logged_model_tag(session, model_id=model.id, key="x", actor=ACTOR)
        await service.log_logged_model_params(
            session, model_id=model.id, params={"C": "1.0", "penalty": "l2"}, actor=ACTOR
        )
        done = await service.finalize_logged_model(
            session, model_id=model.id, status=LoggedModelStatus.READY, actor=ACTOR
        )
    assert done.status == LoggedModelStatus.READY
    async with db.read() as session:
        found = (await reads.details(session, model_ids=[model.id]))[model.id]
        events = list(await session.scalars(select(Event).order_by(Event.seq)))
    assert found.params == {"C": "1.0", "penalty": "l2"}
    assert found.tags == {"team": "b"}
    mine = [e for e in events if e.payload.get("modelId") == model.id]
    assert [e.type for e in mine] == [
        EventType.LOGGED_MODEL_CREATED,
        EventType.LOGGED_MODEL_UPDATED,
        EventType.LOGGED_MODEL_UPDATED,
        EventType.LOGGED_MODEL_UPDATED,
        EventType.LOGGED_MODEL_UPDATED,
    ]
    assert mine[-1].payload["status"] == "READY"


async def test_refusals_change_nothing(db):
    run = await make_run(db)
    model = await create(db, run, name="model", params={"C": "1.0"})
    before = await snapshot(db)
    with pytest.raises(ConflictError) as conflict:
        async with db.unit_of_work() as session:
            await service.log_logged_model_params(
                session, model_id=model.id, params={"C": "2.0"}, actor=ACTOR
            )
    assert conflict.value.field == "params[C].value"
    with pytest.raises(NotFoundError):
        async with db.unit_of_work() as session:
            await service.delete_logged_model_tag(
                session, model_id=model.id, key="absent", actor=ACTOR
            )
    with pytest.raises(NotFoundError) as missing:
        await create(db, run.model_copy(update={"experiment_id": 999}))
    assert missing.value.field == "experimentId"
    with pytest.raises(ValidationError) as pending:
        async with db.unit_of_work() as session:
            await service.finalize_logged_model(
                session, model_id=model.id, status=LoggedModelStatus.PENDING, actor=ACTOR
            )
    assert pending.value.field == "status"
    with pytest.raises(ValidationError):
        await create(db, run, name="bad\x00name")
    assert await snapshot(db) == before


async def test_a_deleted_run_makes_and_outputs_no_models(db):
    run = await make_run(db)
    model = await create(db, run, name="model")
    async with db.unit_of_work() as session:
        await tracking_lifecycle.delete_run(session, run_id=run.id, actor=ACTOR)
    before = await snapshot(db)
    with pytest.raises(ConflictError) as source:
        await create(db, run, name="late")
    with pytest.raises(ConflictError) as output:
        async with db.unit_of_work() as session:
            await service.log_outputs(session, run_id=run.id, outputs=[(model.id, 0)], actor=ACTOR)
    assert (source.value.field, output.value.field) == ("sourceRunId", "runId")
    assert await snapshot(db) == before


async def test_a_deleted_experiment_takes_no_models(db):
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await tracking_lifecycle.delete_experiment(
            session, experiment_id=run.experiment_id, actor=ACTOR
        )
    before = await snapshot(db)
    with pytest.raises(ConflictError) as refused:
        async with db.unit_of_work() as session:
            await service.create_logged_model(
                session, experiment_id=run.experiment_id, name="m", actor=ACTOR
            )
    assert refused.value.field == "experimentId"
    assert await snapshot(db) == before


async def test_deleted_model_is_hidden_not_lost(db):
    run = await make_run(db)
    model = await create(db, run, name="model")
    async with db.unit_of_work() as session:
        await service.delete_logged_model(session, model_id=model.id, actor=ACTOR)
    async with db.read() as session:
        with pytest.raises(NotFoundError):
            await service.get_logged_model(session, model_id=model.id)
        kept = await service.get_logged_model(session, model_id=model.id, allow_deleted=True)
        listed, _ = await reads.search_logged_models(session, experiment_ids=[run.experiment_id])
    assert kept.deleted_at is not None
    assert listed == []


async def test_metrics_are_the_runs_at_the_output_step_and_searchable(db):
    run = await make_run(db, metrics={"acc": 0.9, "loss": 0.3})
    other = await make_run(db, metrics={"acc": 0.05})
    async with db.unit_of_work() as session:
        # a later step's point is not the model's
        await tracking_metrics.log_metrics(
            session,
            actor=ACTOR,
            run_id=run.id,
            points=[tracking_metrics.MetricPoint("acc", 0.1, 5)],
        )
    good = await create(db, run, name="model", params={"C": "1"}, tags={"team": "a"})
    weak = await create(db, other, name="other")
    async with db.unit_of_work() as session:
        await service.log_outputs(session, run_id=run.id, outputs=[(good.id, 0)], actor=ACTOR)
        await service.log_outputs(session, run_id=other.id, outputs=[(weak.id, 0)], actor=ACTOR)
        await service.finalize_logged_model(
            session, model_id=good.id, status=LoggedModelStatus.READY, actor=ACTOR
        )
    exp = [run.experiment_id]
    async with db.read() as session:
        found = (await reads.details(session, model_ids=[good.id]))[good.id]
        assert {(m.key, m.value, m.step) for m in found.metrics} == {
            ("acc", 0.9, 0),
            ("loss", 0.3, 0),
        }
        assert found.outputs == [(run.id, 0)]

        async def names(text: str | None, **kw) -> list[str]:
            models, _ = await reads.search_logged_models(
                session, experiment_ids=exp, filter=text, **kw
            )
            return [m.name for m in models]

        assert await names("metrics.acc > 0.1") == ["model"]
        assert await names("metrics.acc > 0.95") == []
        assert await names("name = 'model'") == ["model"]
        assert await names("name LIKE 'o%'") == ["other"]
        assert await names("params.C = '1' AND tags.team = 'a'") == ["model"]
        assert await names("status = 'LOGGED_MODEL_READY'") == ["model"]
        assert await names("attributes.name IN ('model', 'other')") == ["other", "model"]
        assert await names(None, order_by=[reads.Order("metrics.acc", ascending=False)]) == [
            "model",
            "other",
        ]
        assert await names(None, order_by=[reads.Order("name")]) == ["model", "other"]
        first, more = await reads.search_logged_models(session, experiment_ids=exp, limit=1)
        rest, done = await reads.search_logged_models(
            session, experiment_ids=exp, limit=1, offset=1
        )
    assert (len(first), more, len(rest), done) == (1, True, 1, False)
    assert first[0].id != rest[0].id


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("metrics.acc > 'high'", "compares with a number"),
        ("name > 'a'", "takes = != LIKE ILIKE IN"),
        ("colour = 'red'", "unknown attribute"),
        ("name = 'a' OR name = 'b'", "invalid clause"),
        ("status = 'DONE'", "not a logged model status"),
        ("metrics.acc LIKE 1", "takes = != < <= > >="),
        ("creation_timestamp > 1e30", "epoch milliseconds"),
        ("creation_timestamp > nan", "epoch milliseconds"),
    ],
)
async def test_bad_filters_are_refused_by_name(db, text, says):
    async with db.read() as session:
        with pytest.raises(ValidationError) as refused:
            await reads.search_logged_models(session, experiment_ids=[], filter=text)
    assert refused.value.field == "filter"
    assert says in refused.value.message


async def test_out_of_range_numbers_are_refused_by_name(db):
    run = await make_run(db)
    model = await create(db, run, name="model")
    async with db.read() as session:
        with pytest.raises(ValidationError) as page:
            await reads.search_logged_models(session, experiment_ids=[], offset=2**70)
        with pytest.raises(NotFoundError):
            await version_files(session, registered_model_id=2**40, version=1)
    assert page.value.field == "pageToken"
    with pytest.raises(ValidationError) as step:
        async with db.unit_of_work() as session:
            await service.log_outputs(
                session, run_id=run.id, outputs=[(model.id, 2**64)], actor=ACTOR
            )
    assert step.value.field == "models[0].step"


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_manifest_is_a_ready_models_files_and_gc_keeps_them(db, tmp_path: Path):
    blobs = BlobStore.from_url((tmp_path / "store").as_uri())
    run = await make_run(db)
    model = await create(db, run, name="model")
    files = {"MLmodel": b"flavors: {}\n", "model.pkl": os.urandom(1000), "conda.yaml": b"x"}
    for path, data in files.items():
        uploaded = await store_content(db, blobs, pieces(data), max_bytes=1 << 20)
        async with db.unit_of_work() as session:
            await log_model_artifact(
                session,
                blobs,
                model_id=model.id,
                path=path,
                uploaded=uploaded,
                actor=ACTOR,
                max_files=10,
            )
    async with db.unit_of_work() as session:
        with pytest.raises(ConflictError) as pending:
            await service.logged_model_manifest(session, model_id=model.id)
    assert (pending.value.field, pending.value.actual) == ("source", "PENDING")
    async with db.unit_of_work() as session:
        await service.finalize_logged_model(
            session, model_id=model.id, status=LoggedModelStatus.READY, actor=ACTOR
        )
    report = await collect_garbage(db, blobs, grace=timedelta(0))
    assert report.blobs_deleted == []
    async with db.unit_of_work() as session:
        manifest = await service.logged_model_manifest(session, model_id=model.id)
    assert sorted(p for p, _, _ in manifest) == sorted(files)
    assert {p: n for p, _, n in manifest} == {p: len(d) for p, d in files.items()}
    assert service.parse_model_source(f"models:/{model.id}") == model.id
    assert service.parse_model_source("models:/name/1") is None
    with pytest.raises(ValidationError):
        service.parse_model_source("models:/m-xyz")
