"""Batch reads for the registry's screens and loaders (one statement per batch of keys),
and time travel over the audit trail. Writes live in
catalog.py, entries.py, lifecycle.py, walk.py, validations.py and policy.py."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.artifacts.models import VersionFile
from app.db.pagination import Page, SortKey, fetch_pages_per_parent
from app.db.types import check_datetime
from app.errors import ValidationError
from app.events.models import Event, EventType
from app.registry import policy
from app.registry.models import (
    ModelAlias,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    StageTransition,
    Validation,
)
from app.registry.stages import Stage


async def transitions_per_model(
    session: AsyncSession, *, model_ids: Sequence[int], first: int, after: str | None
) -> dict[int, Page[StageTransition]]:
    """A page of each model's stage transitions (newest first), in one statement."""
    keys = [SortKey(StageTransition.id, descending=True)]
    return await fetch_pages_per_parent(
        session,
        StageTransition,
        select(StageTransition),
        keys,
        parent=StageTransition.model_id,
        parent_ids=model_ids,
        first=first,
        after=after,
    )


async def versions_per_model(
    session: AsyncSession,
    *,
    model_ids: Sequence[int],
    stage: Stage | None,
    first: int,
    after: str | None,
) -> dict[int, Page[ModelVersion]]:
    """A page of each model's versions (newest first; in `stage` if given), in one statement."""
    stmt = select(ModelVersion)
    if stage is not None:
        stmt = stmt.where(col(ModelVersion.stage) == stage)
    keys = [SortKey(ModelVersion.version, descending=True)]
    return await fetch_pages_per_parent(
        session,
        ModelVersion,
        stmt,
        keys,
        parent=ModelVersion.model_id,
        parent_ids=model_ids,
        first=first,
        after=after,
    )


async def models_by_ids(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, RegisteredModel]:
    """Models by id."""
    rows = (
        await session.execute(select(RegisteredModel).where(col(RegisteredModel.id).in_(ids)))
    ).scalars()
    return {m.id: m for m in rows if m.id is not None}


async def latest_versions(
    session: AsyncSession, *, model_ids: Sequence[int], stage: Stage | None
) -> dict[int, ModelVersion]:
    """The highest-numbered version of each model (in `stage`, if given)."""
    pages = await versions_per_model(session, model_ids=model_ids, stage=stage, first=1, after=None)
    return {mid: page.items[0] for mid, page in pages.items() if page.items}


async def latest_per_stage(
    session: AsyncSession, *, model_ids: Sequence[int], stages: Sequence[Stage] | None = None
) -> dict[int, list[ModelVersion]]:
    """Each model's highest-numbered version in each stage (in `stages`, if given), by
    stage order, in one statement: MLflow's "latest versions"."""
    newest: Any = select(
        col(ModelVersion.model_id).label("model_id"),
        col(ModelVersion.stage).label("stage"),
        func.max(ModelVersion.version).label("version"),
    ).where(col(ModelVersion.model_id).in_(model_ids))
    if stages is not None:
        newest = newest.where(col(ModelVersion.stage).in_(list(stages)))
    top = newest.group_by(col(ModelVersion.model_id), col(ModelVersion.stage)).subquery()
    stmt = select(ModelVersion).join(
        top,
        (top.c.model_id == col(ModelVersion.model_id)) & (top.c.version == ModelVersion.version),
    )
    order = {stage: i for i, stage in enumerate(Stage)}
    out: dict[int, list[ModelVersion]] = {}
    for v in (await session.execute(stmt)).scalars():
        out.setdefault(v.model_id, []).append(v)
    for found in out.values():
        found.sort(key=lambda v: order[v.stage])
    return out


# Sources that name files kept elsewhere, which a client can fetch itself.
EXTERNAL_SCHEMES = ("s3://", "gs://", "wasbs://", "abfss://", "hdfs://", "http://", "https://")


async def external_source(session: AsyncSession, *, version: ModelVersion) -> str | None:
    """Where a version's files are when it owns none here: its source, when that names
    another store (s3://, gs://, https://…). None when it owns files (served from here)
    or its source names nothing a client could fetch."""
    source = version.source or ""
    if not source.startswith(EXTERNAL_SCHEMES):
        return None
    owned = (
        await session.execute(select(func.count()).where(col(VersionFile.version_id) == version.id))
    ).scalar_one()
    return None if owned else source


async def versions_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[ModelVersion]]:
    """Versions registered from each run."""
    stmt = (
        select(ModelVersion)
        .where(col(ModelVersion.run_id).in_(run_ids))
        .order_by(col(ModelVersion.model_id), col(ModelVersion.version))
    )
    out: dict[str, list[ModelVersion]] = {}
    for v in (await session.execute(stmt)).scalars():
        if v.run_id is not None:
            out.setdefault(v.run_id, []).append(v)
    return out


async def aliases_by_models(
    session: AsyncSession, *, model_ids: Sequence[int]
) -> dict[int, list[tuple[str, ModelVersion]]]:
    """Each model's aliases with the version they point at, by alias name."""
    stmt = (
        select(col(ModelAlias.model_id), col(ModelAlias.alias), ModelVersion)
        .join(ModelVersion, col(ModelVersion.id) == col(ModelAlias.version_id))
        .where(col(ModelAlias.model_id).in_(model_ids))
        .order_by(col(ModelAlias.model_id), col(ModelAlias.alias))
    )
    out: dict[int, list[tuple[str, ModelVersion]]] = {}
    for model_id, alias, version in (await session.execute(stmt)).all():
        out.setdefault(model_id, []).append((alias, version))
    return out


async def aliases_by_versions(
    session: AsyncSession, *, version_ids: Sequence[int]
) -> dict[int, list[str]]:
    """Alias names pointing at each version."""
    stmt = (
        select(col(ModelAlias.version_id), col(ModelAlias.alias))
        .where(col(ModelAlias.version_id).in_(version_ids))
        .order_by(col(ModelAlias.alias))
    )
    out: dict[int, list[str]] = {}
    for version_id, alias in (await session.execute(stmt)).all():
        out.setdefault(version_id, []).append(alias)
    return out


async def transitions_by_versions(
    session: AsyncSession, *, version_ids: Sequence[int]
) -> dict[int, list[StageTransition]]:
    """Each version's stage transitions, newest first."""
    stmt = (
        select(StageTransition)
        .where(col(StageTransition.version_id).in_(version_ids))
        .order_by(col(StageTransition.version_id), col(StageTransition.id).desc())
    )
    out: dict[int, list[StageTransition]] = {}
    for t in (await session.execute(stmt)).scalars():
        out.setdefault(t.version_id, []).append(t)
    return out


async def versions_by_ids(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, ModelVersion]:
    """Versions by id."""
    rows = (
        await session.execute(select(ModelVersion).where(col(ModelVersion.id).in_(ids)))
    ).scalars()
    return {v.id: v for v in rows if v.id is not None}


async def versions_by_numbers(
    session: AsyncSession, *, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], ModelVersion]:
    """Versions by (model name, version number)."""
    stmt = (
        select(col(RegisteredModel.name), ModelVersion)
        .join(RegisteredModel, col(RegisteredModel.id) == col(ModelVersion.model_id))
        .where(tuple_(col(RegisteredModel.name), col(ModelVersion.version)).in_(list(keys)))
    )
    return {(name, v.version): v for name, v in (await session.execute(stmt)).all()}


# ---------------------------------------------------------------- time travel


async def version_at(
    session: AsyncSession,
    *,
    model_id: int,
    at: datetime,
    stage: Stage | None = None,
    alias: str | None = None,
) -> ModelVersion | None:
    """The version that was in `stage` (or that `alias` pointed at) at time `at`, from the
    audit trail: the question an incident review asks first."""
    if (stage is None) == (alias is None):
        raise ValidationError("stage", "give exactly one of stage or alias")
    checked = check_datetime("at", at)
    assert checked is not None, "a datetime stays one in UTC"
    at = checked
    if alias is not None:
        return await _alias_at(session, model_id, alias, at)
    # Each version's stage at `at` is the one its last move before `at` went to; a version
    # never moved by then is still in DEVELOPMENT, if it existed.
    moves = await session.execute(
        select(col(StageTransition.version_id), col(StageTransition.to_stage))
        .where(col(StageTransition.model_id) == model_id, col(StageTransition.at) <= at)
        .order_by(col(StageTransition.id).desc())
    )
    stage_then: dict[int, Stage] = {}
    for version_id, to_stage in moves.all():
        stage_then.setdefault(version_id, to_stage)
    versions = (
        await session.execute(
            select(ModelVersion)
            .where(col(ModelVersion.model_id) == model_id, col(ModelVersion.created_at) <= at)
            .order_by(col(ModelVersion.version).desc())
        )
    ).scalars()
    for version in versions:
        if version.id is not None and stage_then.get(version.id, Stage.DEVELOPMENT) == stage:
            return version
    return None


async def _alias_at(
    session: AsyncSession, model_id: int, alias: str, at: datetime
) -> ModelVersion | None:
    name = (
        await session.execute(
            select(col(RegisteredModel.name)).where(col(RegisteredModel.id) == model_id)
        )
    ).scalar_one()
    last = (
        await session.execute(
            select(col(Event.type), col(Event.version))
            .where(
                col(Event.model) == name,
                col(Event.alias) == alias,
                col(Event.type).in_([EventType.ALIAS_SET.value, EventType.ALIAS_DELETED.value]),
                col(Event.at) <= at,
            )
            .order_by(col(Event.seq).desc())
            .limit(1)
        )
    ).first()
    if last is None or last.type == EventType.ALIAS_DELETED.value:
        return None
    return (
        await session.execute(
            select(ModelVersion).where(
                col(ModelVersion.model_id) == model_id, col(ModelVersion.version) == last.version
            )
        )
    ).scalar_one_or_none()


async def validations_by_versions(
    session: AsyncSession, *, version_ids: Sequence[int]
) -> dict[int, list[Validation]]:
    """Each version's validation results, newest first."""
    stmt = (
        select(Validation)
        .where(col(Validation.version_id).in_(version_ids))
        .order_by(col(Validation.version_id), col(Validation.id).desc())
    )
    out: dict[int, list[Validation]] = {}
    for v in (await session.execute(stmt)).scalars():
        out.setdefault(v.version_id, []).append(v)
    return out


def latest_per_check(history: Sequence[Validation]) -> list[Validation]:
    """The newest result of each check, by check name (history is newest first)."""
    latest: dict[str, Validation] = {}
    for v in history:
        latest.setdefault(v.check, v)
    return [latest[c] for c in sorted(latest)]


async def promotion_policies(session: AsyncSession, *, model_id: int) -> list[PromotionPolicy]:
    """The model's policies, by stage."""
    return await policy.policies(session, model_id=model_id)
