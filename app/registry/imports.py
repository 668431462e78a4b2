"""Writing registry history that happened elsewhere (`modelgraph import-mlflow`): models,
versions under their original numbers and times, the files they own, their stage as
transitions at the time the source last changed it, and aliases.

As for tracking imports (app/tracking/imports.py): what modelgraph holds is never changed,
only what is missing is added, and every change writes its Event (the actor says it was an
import). Each function expects the caller's unit of work and locks the model row first,
as the catalog and the lifecycle do.

What a source such as MLflow keeps of a version's stage is only the current one and the
time of its last update, so the history is reconstructed as the shortest allowed path
from DEVELOPMENT to that stage, every step at that time. Imported moves are history, not
decisions: the promotion policy is not applied to them (their audit rows carry no policy,
and their reason says where they came from). The one-PRODUCTION rule still holds: a
version imported into PRODUCTION archives the one there (the caller imports stages
oldest update first, so the most recently promoted version is the one left in PRODUCTION)."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.artifacts.content import hold_blobs, manifest_digest
from app.artifacts.model_files import write_version_files
from app.errors import ConflictError, check_length, check_name, check_tags
from app.events.models import EventType
from app.events.service import record_event
from app.registry import catalog
from app.registry.models import (
    MODEL_NAME_LIMIT,
    SOURCE_LIMIT,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    StageTransition,
)
from app.registry.stages import Stage, path
from app.tracking.models import DESCRIPTION_LIMIT, KEY_LIMIT, TAG_VALUE_LIMIT, Run

Manifest = Sequence[tuple[str, str, int]]


async def import_model(
    session: AsyncSession,
    *,
    name: str,
    description: str | None,
    tags: dict[str, str],
    created_at: datetime | None,
    updated_at: datetime | None,
    actor: str,
) -> tuple[RegisteredModel, bool]:
    """The model called `name`, created with the source's description, tags and times
    when missing; (it, whether it was created). An existing one is left as it is."""
    check_name("name", name, MODEL_NAME_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    existing = await catalog.get_model(session, name=name)
    if existing is not None:
        missing = {k: v for k, v in tags.items() if k not in (existing.tags or {})}
        if missing:
            # Tags added at the source since: added here (a key here keeps its value).
            existing = await catalog.update_model(session, name=name, set_tags=missing, actor=actor)
        return existing, False
    model = RegisteredModel(name=name, description=description or None, tags=tags)
    if created_at is not None:
        model.created_at = created_at
    model.updated_at = updated_at or model.created_at
    session.add(model)
    await session.flush()
    await record_event(
        session,
        type=EventType.MODEL_CREATED,
        actor=actor,
        model=name,
        payload={"imported": True},
    )
    return model, True


async def existing_version(
    session: AsyncSession, *, model: str, version: int
) -> ModelVersion | None:
    return await catalog.get_version(session, model=model, version=version)


async def import_version(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    run_id: str | None,
    source: str | None,
    description: str | None,
    tags: dict[str, str],
    created_at: datetime | None,
    files: Manifest,
    run_link: str | None = None,
    logged_model_id: str | None = None,
    actor: str,
) -> tuple[ModelVersion, bool]:
    """Version number `version` of `model`, created in DEVELOPMENT at its original time
    and owning `files` ((path, digest, size) of stored blobs) when missing; (it, whether it
    was created). A version of that number from another source is a ConflictError. The
    run is linked when modelgraph has it (else the source still names it)."""
    check_length("source", source, SOURCE_LIMIT)
    check_length("runLink", run_link, SOURCE_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    registered = await catalog.require_model(session, name=model, lock=True)
    found = await catalog.get_version(session, model=model, version=version)
    if found is not None:
        if found.source != source:
            raise ConflictError(
                "version",
                f"{model} version {version} already exists here with source "
                f"{found.source!r}, not {source!r}",
                expected=source,
                actual=found.source,
            )
        new_tags = {k: v for k, v in tags.items() if k not in (found.tags or {})}
        if new_tags:
            # Tags added at the source since: added here (a key here keeps its value).
            found = await catalog.update_version(
                session, model=model, version=version, set_tags=new_tags, actor=actor
            )
        return found, False
    if run_id is not None and await session.get(Run, run_id) is None:
        run_id = None
    files = list(files)
    digests = [d for _, d, _ in files]
    held = await hold_blobs(session, digests=digests)
    missing = sorted(set(digests) - set(held))
    if missing:
        raise ConflictError("files", f"blob {missing[0]} was collected meanwhile; import again")
    row = ModelVersion(
        model_id=registered.id,  # type: ignore[arg-type]  # a locked row has its id
        version=version,
        run_id=run_id,
        source=source,
        run_link=run_link or None,
        logged_model_id=logged_model_id,
        digest=manifest_digest(files),
        stage=Stage.DEVELOPMENT,
        description=description or None,
        tags=tags,
    )
    if created_at is not None:
        row.created_at = row.updated_at = created_at
    session.add(row)
    # Numbers are never given twice: the catalog numbers new versions past this one.
    registered.last_version = max(registered.last_version or 0, version)
    await session.flush()
    assert row.id is not None, "a flushed version has its id"
    await write_version_files(session, version_id=row.id, files=files)
    await record_event(
        session,
        type=EventType.VERSION_REGISTERED,
        actor=actor,
        model=model,
        version=version,
        to_stage=Stage.DEVELOPMENT,
        payload={"runId": run_id, "source": source, "digest": row.digest, "imported": True},
    )
    return row, True


async def _last_change(session: AsyncSession, version: ModelVersion) -> datetime:
    """When the version last moved here (its creation when it never did)."""
    last = (
        await session.execute(
            select(func.max(StageTransition.at)).where(
                col(StageTransition.version_id) == version.id
            )
        )
    ).scalar_one_or_none()
    return last or version.created_at


async def import_stage(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    stage: Stage,
    at: datetime,
    source_name: str,
    actor: str,
) -> list[StageTransition]:
    """Bring the version to `stage` as of `at`, the time the source last changed it, by the
    shortest allowed path (every step at `at`), unless it is there already or moved here
    after `at` (then modelgraph's own history wins). The moves made, in order."""
    registered = await catalog.require_model(session, name=model, lock=True)
    found = await catalog.require_version(session, model=registered, version=version)
    if found.stage == stage or await _last_change(session, found) > at:
        return []
    steps = path(found.stage, stage)
    if steps is None:  # every stage reaches every other in the lifecycle table
        raise ConflictError("stage", f"no allowed path from {found.stage} to {stage}")
    if stage == Stage.PRODUCTION:
        current = await catalog.production_version(session, model=registered)
        if current is not None and await _last_change(session, current) > at:
            # Promoted here after MLflow's move: modelgraph's own history wins.
            return []
    moves: list[StageTransition] = []
    reason = f"imported from {source_name}: {stage.value} since {at.isoformat()}"
    for step in steps:
        if step == Stage.PRODUCTION:
            current = await catalog.production_version(session, model=registered)
            if current is not None and current.id != found.id:
                moves.append(
                    await _record_move(
                        session,
                        registered,
                        current,
                        Stage.ARCHIVED,
                        at=max(at, await _last_change(session, current)),
                        reason=f"imported: replaced by version {version}",
                        actor=actor,
                    )
                )
        moves.append(
            await _record_move(session, registered, found, step, at=at, reason=reason, actor=actor)
        )
    return moves


async def _record_move(
    session: AsyncSession,
    model: RegisteredModel,
    version: ModelVersion,
    to_stage: Stage,
    *,
    at: datetime,
    reason: str,
    actor: str,
) -> StageTransition:
    assert model.id is not None, "a locked model row has its id"
    assert version.id is not None, "a stored version has its id"
    from_stage = version.stage
    version.stage = to_stage
    version.updated_at = max(version.updated_at, at)
    transition = StageTransition(
        model_id=model.id,
        version_id=version.id,
        from_stage=from_stage,
        to_stage=to_stage,
        actor=actor,
        reason=reason,
        at=at,
    )
    session.add(transition)
    # Flushed one move at a time: the one-PRODUCTION index checks each statement.
    await session.flush()
    await record_event(
        session,
        type=EventType.STAGE_CHANGED,
        actor=actor,
        model=model.name,
        version=version.version,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        payload={"digest": version.digest, "imported": True, "at": at.isoformat()},
    )
    return transition


async def add_missing_alias(
    session: AsyncSession, *, model: str, alias: str, version: int, actor: str
) -> bool:
    """Point `alias` at the version unless the model already has that alias (wherever it
    points: modelgraph's own moves win); whether it was set."""
    registered = await catalog.require_model(session, name=model, lock=True)
    taken = (
        await session.execute(
            select(ModelAlias).where(
                col(ModelAlias.model_id) == registered.id, col(ModelAlias.alias) == alias
            )
        )
    ).scalar_one_or_none()
    if taken is not None:
        return False
    await catalog.set_alias(session, model=model, alias=alias, version=version, actor=actor)
    return True


async def version_numbers(session: AsyncSession, *, model: str) -> set[int]:
    """The version numbers the model has here (none when it does not exist)."""
    rows = await session.execute(
        select(col(ModelVersion.version))
        .join(RegisteredModel, col(RegisteredModel.id) == col(ModelVersion.model_id))
        .where(col(RegisteredModel.name) == model)
    )
    return set(rows.scalars())
