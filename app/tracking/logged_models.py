"""Logged models: what a run produced (MLflow 3's LoggedModel). Created PENDING while its
files upload, finalized READY or FAILED; params written once, tags editable, the runs
that output it at a step. Its files are a manifest in app/artifacts; registering a
version from `models:/<id>` snapshots that manifest (`logged_model_manifest`). Reads
and search are in logged_model_reads.py."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.artifacts.content import hold_blobs
from app.artifacts.model_files import list_model_artifacts
from app.db.types import utcnow
from app.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    check_count,
    check_key,
    check_length,
    check_name,
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking import service as tracking_service
from app.tracking.logged_model_models import (
    LOGGED_MODEL_TAG_VALUE_LIMIT,
    MODEL_TYPE_LIMIT,
    STATUS_MESSAGE_LIMIT,
    LoggedModel,
    LoggedModelOutput,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
)
from app.tracking.models import (
    KEY_LIMIT,
    NAME_LIMIT,
    PARAM_VALUE_LIMIT,
    Experiment,
)

MODEL_ID_PREFIX = "m-"
PARAMS_PER_CALL_LIMIT = 1000
TAGS_PER_CALL_LIMIT = 100
OUTPUTS_PER_CALL_LIMIT = 100
MODEL_SOURCE = "models:/"
STEP_LIMIT = 2**63 - 1


def new_model_id() -> str:
    return f"{MODEL_ID_PREFIX}{uuid.uuid4().hex}"


def check_model_id(field: str, value: str) -> str:
    """`m-` and 32 hexadecimal digits, or a ValidationError naming `field`."""
    hexpart = value.removeprefix(MODEL_ID_PREFIX)
    if (
        not value.startswith(MODEL_ID_PREFIX)
        or len(hexpart) != 32
        or not all(c in "0123456789abcdef" for c in hexpart)
    ):
        raise ValidationError(field, "must be a logged model id: 'm-' and 32 hexadecimal digits")
    return value


def _check_params(field: str, params: dict[str, str]) -> None:
    check_count(field, len(params), PARAMS_PER_CALL_LIMIT)
    for key, value in params.items():
        check_key(f"{field}.key", key, KEY_LIMIT)
        check_length(f"{field}[{key}].value", value, PARAM_VALUE_LIMIT)


def _check_tags(field: str, tags: dict[str, str]) -> None:
    check_count(field, len(tags), TAGS_PER_CALL_LIMIT)
    for key, value in tags.items():
        check_key(f"{field}.key", key, KEY_LIMIT)
        check_length(f"{field}[{key}].value", value, LOGGED_MODEL_TAG_VALUE_LIMIT)


async def get_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    allow_deleted: bool = False,
    field: str = "modelId",
    lock: bool = False,
) -> LoggedModel:
    """The logged model with this id, or NotFoundError naming `field` (also when deleted,
    unless `allow_deleted`)."""
    statement = select(LoggedModel).where(col(LoggedModel.id) == model_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    model = (await session.scalars(statement)).one_or_none()
    if model is None or (model.deleted_at is not None and not allow_deleted):
        raise NotFoundError("logged model", field, model_id)
    return model


async def create_logged_model(
    session: AsyncSession,
    *,
    experiment_id: int,
    name: str | None = None,
    source_run_id: str | None = None,
    model_type: str | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    actor: str,
) -> LoggedModel:
    """A new PENDING logged model in the experiment (a generated name when none is given),
    with its LOGGED_MODEL_CREATED event."""
    params = params or {}
    tags = tags or {}
    model_id = new_model_id()
    if name is None or name == "":
        name = f"model-{model_id[2:10]}"
    check_name("name", name, NAME_LIMIT)
    check_length("modelType", model_type, MODEL_TYPE_LIMIT)
    _check_params("params", params)
    _check_tags("tags", tags)
    experiment = await session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFoundError("experiment", "experimentId", experiment_id)
    if experiment.deleted_at is not None:
        raise ConflictError(
            "experimentId",
            f"experiment {experiment.name!r} is deleted; restore it to log models to it",
            expected="active",
            actual="deleted",
        )
    if source_run_id is not None:
        await tracking_service.require_active_run(
            session, run_id=source_run_id, field="sourceRunId"
        )
    return await insert_logged_model(
        session,
        model_id=model_id,
        experiment_id=experiment_id,
        name=name,
        source_run_id=source_run_id,
        model_type=model_type,
        params=params,
        tags=tags,
        at=utcnow(),
        actor=actor,
    )


async def insert_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    experiment_id: int,
    name: str,
    source_run_id: str | None,
    model_type: str | None,
    params: dict[str, str],
    tags: dict[str, str],
    at: datetime,
    actor: str,
    imported: bool = False,
) -> LoggedModel:
    """Write a checked PENDING logged model with its params, tags and LOGGED_MODEL_CREATED
    event (created here, or copied from another server with its own time: `imported`)."""
    model = LoggedModel(
        id=model_id,
        experiment_id=experiment_id,
        name=name,
        source_run_id=source_run_id,
        model_type=model_type or None,
        status=LoggedModelStatus.PENDING,
        created_at=at,
        updated_at=at,
    )
    session.add(model)
    await session.flush()
    session.add_all(LoggedModelParam(model_id=model_id, key=k, value=v) for k, v in params.items())
    session.add_all(LoggedModelTag(model_id=model_id, key=k, value=v) for k, v in tags.items())
    await session.flush()
    payload: dict[str, Any] = {
        "modelId": model_id,
        "name": name,
        "experimentId": experiment_id,
        "sourceRunId": source_run_id,
    }
    if imported:
        payload["imported"] = True
    await record_event(session, type=EventType.LOGGED_MODEL_CREATED, actor=actor, payload=payload)
    return model


async def _changed(
    session: AsyncSession, model: LoggedModel, *, actor: str, change: dict[str, Any]
) -> None:
    model.updated_at = utcnow()
    await session.flush()
    await record_event(
        session,
        type=EventType.LOGGED_MODEL_UPDATED,
        actor=actor,
        payload={"modelId": model.id, **change},
    )


async def finalize_logged_model(
    session: AsyncSession,
    *,
    model_id: str,
    status: LoggedModelStatus,
    status_message: str | None = None,
    actor: str,
) -> LoggedModel:
    """Mark the model READY (its files are complete) or FAILED. Finalizing again with the
    same status is a no-op; PENDING is not a final status."""
    if status == LoggedModelStatus.PENDING:
        raise ValidationError("status", "must be READY or FAILED")
    check_length("statusMessage", status_message, STATUS_MESSAGE_LIMIT)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if model.status == status and status_message is None:
        return model
    previous = model.status
    model.status = status
    if status_message is not None:
        model.status_message = status_message
    await _changed(
        session, model, actor=actor, change={"status": str(status), "from": str(previous)}
    )
    return model


async def delete_logged_model(session: AsyncSession, *, model_id: str, actor: str) -> LoggedModel:
    """Hide the model (its rows and files stay; versions that snapshotted it keep theirs)."""
    model = await get_logged_model(session, model_id=model_id, lock=True)
    model.deleted_at = model.updated_at = utcnow()
    await session.flush()
    await record_event(
        session, type=EventType.LOGGED_MODEL_DELETED, actor=actor, payload={"modelId": model_id}
    )
    return model


async def set_logged_model_tags(
    session: AsyncSession, *, model_id: str, tags: dict[str, str], actor: str
) -> LoggedModel:
    """Set (add or replace) tags on the model."""
    _check_tags("tags", tags)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if not tags:
        return model
    existing = {
        t.key: t
        for t in await session.scalars(
            select(LoggedModelTag).where(
                col(LoggedModelTag.model_id) == model_id, col(LoggedModelTag.key).in_(list(tags))
            )
        )
    }
    for key, value in tags.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(LoggedModelTag(model_id=model_id, key=key, value=value))
    await _changed(session, model, actor=actor, change={"tagsSet": sorted(tags)})
    return model


async def delete_logged_model_tag(
    session: AsyncSession, *, model_id: str, key: str, actor: str
) -> LoggedModel:
    """Remove one tag; NotFoundError naming `key` if the model has no such tag."""
    check_key("key", key, KEY_LIMIT)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    removed = await session.execute(
        delete(LoggedModelTag).where(
            col(LoggedModelTag.model_id) == model_id, col(LoggedModelTag.key) == key
        )
    )
    if not getattr(removed, "rowcount", 0):
        raise NotFoundError("logged model tag", "key", key)
    await _changed(session, model, actor=actor, change={"tagDeleted": key})
    return model


async def log_logged_model_params(
    session: AsyncSession, *, model_id: str, params: dict[str, str], actor: str
) -> LoggedModel:
    """Add params; a key already logged keeps its value (a different one is a ConflictError)."""
    _check_params("params", params)
    model = await get_logged_model(session, model_id=model_id, lock=True)
    if not params:
        return model
    existing = {
        p.key: p.value
        for p in await session.scalars(
            select(LoggedModelParam).where(
                col(LoggedModelParam.model_id) == model_id,
                col(LoggedModelParam.key).in_(list(params)),
            )
        )
    }
    new = {}
    for key, value in params.items():
        if key in existing:
            if existing[key] != value:
                raise ConflictError(
                    f"params[{key}].value",
                    f"param {key!r} of logged model {model_id} is already {existing[key]!r}",
                    expected=existing[key],
                    actual=value,
                )
        else:
            new[key] = value
    if not new:
        return model
    session.add_all(LoggedModelParam(model_id=model_id, key=k, value=v) for k, v in new.items())
    await _changed(session, model, actor=actor, change={"paramsLogged": sorted(new)})
    return model


async def log_outputs(
    session: AsyncSession, *, run_id: str, outputs: Sequence[tuple[str, int]], actor: str
) -> None:
    """Record that the run produced each (model id, step); logging it again moves the step."""
    check_count("models", len(outputs), OUTPUTS_PER_CALL_LIMIT)
    await tracking_service.require_active_run(session, run_id=run_id)
    for i, (model_id, step) in enumerate(outputs):
        model = await get_logged_model(session, model_id=model_id, field=f"models[{i}].modelId")
        if step < 0 or step > STEP_LIMIT:
            raise ValidationError(f"models[{i}].step", f"must be between 0 and {STEP_LIMIT}")
        output = await session.get(LoggedModelOutput, (model_id, run_id))
        if output is None:
            session.add(LoggedModelOutput(model_id=model_id, run_id=run_id, step=step))
        elif output.step == step:
            continue
        else:
            output.step = step
        await _changed(
            session, model, actor=actor, change={"outputOf": {"runId": run_id, "step": step}}
        )


async def outputs_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """(model id, step) of each model each run output."""
    out: dict[str, list[tuple[str, int]]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return out
    for o in await session.scalars(
        select(LoggedModelOutput)
        .where(col(LoggedModelOutput.run_id).in_(list(run_ids)))
        .order_by(col(LoggedModelOutput.run_id), col(LoggedModelOutput.model_id))
    ):
        out[o.run_id].append((o.model_id, o.step))
    return out


# Files ----------------------------------------------------------------------------------


Manifest = list[tuple[str, str, int]]


def parse_model_source(source: str) -> str | None:
    """The model id of a `models:/m-<hex>` source, or None for any other source."""
    if not source.startswith(MODEL_SOURCE):
        return None
    rest = source.removeprefix(MODEL_SOURCE).strip("/")
    if not rest.startswith(MODEL_ID_PREFIX) or "/" in rest:
        return None
    return check_model_id("source", rest)


async def logged_model_manifest(
    session: AsyncSession, *, model_id: str, field: str = "source"
) -> Manifest:
    """A snapshot of a READY logged model's files as (path, digest, size), their blobs held
    against gc until the caller's unit of work commits: what a model version registered
    from `models:/<model_id>` owns. NotFoundError, ConflictError (not READY, or its files
    changed meanwhile) or ValidationError (no files), each naming `field`."""
    model = await get_logged_model(session, model_id=model_id, field=field)
    if model.status != LoggedModelStatus.READY:
        raise ConflictError(
            field,
            f"logged model {model_id} is {model.status}: only a READY model's files are complete",
            expected=LoggedModelStatus.READY.value,
            actual=model.status.value,
        )
    found = await list_model_artifacts(session, model_id=model_id)
    sizes = await hold_blobs(session, digests=[f.digest for f in found])
    if len(sizes) < len({f.digest for f in found}):
        raise ConflictError(field, "the logged model's files changed meanwhile; try again")
    if not found:
        raise ValidationError(field, f"logged model {model_id} has no files")
    return [(f.path, f.digest, sizes[f.digest]) for f in found]
