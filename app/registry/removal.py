"""Deleting versions and models: the end of a catalog entry.

A production registry does not let what is serving disappear under its callers: a
version in PRODUCTION cannot be deleted, nor a model with one (archive it first, which
is a stage move with its policy, audit row and event). Anything else is deleted
outright, with its aliases, validations, stage history and file list; the blobs stay
until gc finds nothing holding them. The outbox keeps the story: every event the entry
ever wrote stays, and the deletion writes its own (VERSION_DELETED, MODEL_DELETED) with
what was removed, so a watcher sees it like any other change. A deleted version's number
is never given again (RegisteredModel.last_version)."""

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.errors import ConflictError
from app.events.models import EventType
from app.events.service import record_event
from app.registry import catalog
from app.registry.models import ModelAlias, ModelVersion, RegisteredModel
from app.registry.stages import Stage


async def _aliases_of(session: AsyncSession, version_ids: list[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        select(ModelAlias.version_id, ModelAlias.alias)
        .where(col(ModelAlias.version_id).in_(version_ids))
        .order_by(col(ModelAlias.alias))
    )
    out: dict[int, list[str]] = {}
    for version_id, alias in rows.all():
        out.setdefault(version_id, []).append(alias)
    return out


def _summary(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    return {
        "stage": version.stage.value,
        "digest": version.digest,
        "source": version.source,
        "runId": version.run_id,
        "aliases": aliases,
    }


async def delete_version(
    session: AsyncSession, *, model: str, version: int, actor: str
) -> ModelVersion:
    """Delete a version that is not in PRODUCTION (ConflictError if it is); returns it as
    it was."""
    registered = await catalog.require_model(session, name=model, lock=True)
    found = await catalog.require_version(session, model=registered, version=version)
    if found.stage == Stage.PRODUCTION:
        raise ConflictError(
            "version",
            f"{model} version {version} is in PRODUCTION; archive it (or promote another "
            "version) before deleting it",
            expected="not PRODUCTION",
            actual=found.stage.value,
        )
    assert found.id is not None, "a stored version has its id"
    aliases = (await _aliases_of(session, [found.id])).get(found.id, [])
    # The database cascades the version's aliases, validations, transitions and files.
    await session.execute(delete(ModelVersion).where(col(ModelVersion.id) == found.id))
    session.expunge(found)
    await record_event(
        session,
        type=EventType.VERSION_DELETED,
        actor=actor,
        model=model,
        version=version,
        from_stage=found.stage,
        payload=_summary(found, aliases),
    )
    return found


async def delete_model(session: AsyncSession, *, name: str, actor: str) -> RegisteredModel:
    """Delete a model and all its versions, unless one is in PRODUCTION (ConflictError);
    returns the model as it was."""
    registered = await catalog.require_model(session, name=name, lock=True)
    versions = list(
        (
            await session.execute(
                select(ModelVersion)
                .where(col(ModelVersion.model_id) == registered.id)
                .order_by(col(ModelVersion.version))
            )
        ).scalars()
    )
    serving = [v.version for v in versions if v.stage == Stage.PRODUCTION]
    if serving:
        raise ConflictError(
            "name",
            f"{name} has version {serving[0]} in PRODUCTION; archive it before deleting the model",
            expected="no version in PRODUCTION",
            actual=f"version {serving[0]} in PRODUCTION",
        )
    aliases = await _aliases_of(session, [v.id for v in versions if v.id is not None])
    # The database cascades versions, aliases, policies, validations, transitions, files.
    await session.execute(delete(RegisteredModel).where(col(RegisteredModel.id) == registered.id))
    for v in versions:
        session.expunge(v)
    session.expunge(registered)
    await record_event(
        session,
        type=EventType.MODEL_DELETED,
        actor=actor,
        model=name,
        payload={
            "versions": {str(v.version): _summary(v, aliases.get(v.id or 0, [])) for v in versions},
        },
    )
    return registered
