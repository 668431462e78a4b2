"""The catalog: registered models, their versions, edits to both, and aliases.

Creating an empty model, single-tag edits and renames are in `entries.py`; which files a
new version owns is decided in `manifests.py`.

Writes that touch a model's versions first lock the model row (FOR UPDATE on PostgreSQL;
SQLite's BEGIN IMMEDIATE already serialises writers), so version numbers are decided one
writer at a time."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.artifacts.content import manifest_digest
from app.artifacts.model_files import write_version_files
from app.artifacts.models import VersionFile
from app.db.dialect import core_table, is_postgres, upsert_insert
from app.db.pagination import Page, SortKey, fetch_page
from app.db.types import utcnow
from app.errors import NotFoundError, ValidationError, check_length, check_name, check_tags
from app.events.models import EventType
from app.events.service import record_event
from app.registry import idempotency, manifests
from app.registry.idempotency import Replay, retry_safe
from app.registry.models import (
    ALIAS_LIMIT,
    MODEL_NAME_LIMIT,
    SOURCE_LIMIT,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
)
from app.registry.stages import Stage
from app.tracking import logged_models
from app.tracking import service as tracking_service
from app.tracking.models import DESCRIPTION_LIMIT, KEY_LIMIT, TAG_VALUE_LIMIT, Run

ALIAS_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")
RESERVED_ALIAS = re.compile(r"latest|v\d+", re.IGNORECASE)


async def _load_version(session: AsyncSession, stored: dict[str, Any]) -> ModelVersion:
    return await idempotency.answered(session, ModelVersion, stored["version"])


async def _freeze_version(session: AsyncSession, version: ModelVersion) -> dict[str, Any]:
    return await idempotency.freeze(session, [version.id])


# A keyed call answering with a version keeps its id and the version as it was.
VERSION_REPLAY: Replay[ModelVersion] = Replay(
    dump=lambda v: {"version": v.id}, load=_load_version, freeze=_freeze_version
)


@dataclass
class Registration:
    """A registered version with the model and the run it was registered under, as the
    write held them, so an answer about it needs to read neither again."""

    version: ModelVersion
    model: RegisteredModel
    run: Run | None
    files: list[VersionFile] = field(default_factory=list)


async def _load_registration(session: AsyncSession, stored: dict[str, Any]) -> Registration:
    version = await _load_version(session, stored)
    model = await session.get_one(RegisteredModel, version.model_id)
    run = await session.get(Run, version.run_id) if version.run_id is not None else None
    return Registration(version=version, model=model, run=run)


async def _freeze_registration(session: AsyncSession, result: Registration) -> dict[str, Any]:
    return await _freeze_version(session, result.version)


# Stored as VERSION_REPLAY stores a version, so keys kept before Registration still answer.
REGISTRATION_REPLAY: Replay[Registration] = Replay(
    dump=lambda r: {"version": r.version.id}, load=_load_registration, freeze=_freeze_registration
)


# ---------------------------------------------------------------- models


async def get_model(session: AsyncSession, *, name: str) -> RegisteredModel | None:
    """The registered model called `name`, or None."""
    stmt = select(RegisteredModel).where(col(RegisteredModel.name) == name)
    return (await session.execute(stmt)).scalar_one_or_none()


async def require_model(
    session: AsyncSession, *, name: str, lock: bool = False, field: str = "model"
) -> RegisteredModel:
    """The model called `name` (row-locked for this transaction if `lock`), or NotFoundError."""
    stmt = select(RegisteredModel).where(col(RegisteredModel.name) == name)
    if lock and is_postgres(session):
        stmt = stmt.with_for_update()
    model = (await session.execute(stmt)).scalar_one_or_none()
    if model is None:
        raise NotFoundError("model", field, name)
    return model


async def _create_model(session: AsyncSession, *, name: str, actor: str) -> None:
    """Insert the model called `name` unless it exists (its event if this call made it)."""
    now = utcnow()
    table = core_table(RegisteredModel)
    stmt = (
        upsert_insert(session, table)
        .values(name=name, tags={}, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(table.c.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is not None:
        await record_event(session, type=EventType.MODEL_CREATED, actor=actor, model=name)


async def ensure_model(session: AsyncSession, *, name: str, actor: str) -> RegisteredModel:
    """The model called `name`, created if missing, locked for this transaction. An
    existing model (the usual case) costs the one locking read."""
    check_name("model", name, MODEL_NAME_LIMIT)
    try:
        return await require_model(session, name=name, lock=True)
    except NotFoundError:
        await _create_model(session, name=name, actor=actor)
    return await require_model(session, name=name, lock=True)


async def claim_version_number(session: AsyncSession, *, name: str, actor: str) -> RegisteredModel:
    """The model called `name` (created if missing), locked for this transaction with its
    next version number taken: the returned model's last_version is the new version's
    number, and its updated_at is now. For an existing model this is one statement, an
    UPDATE ... RETURNING: the update takes the row lock (on PostgreSQL as FOR UPDATE would;
    SQLite's BEGIN IMMEDIATE already serialises writers) and last_version + 1 is the next
    number, since last_version never falls behind the highest version (every writer of a
    version raises it, and a deleted version's number is never given again)."""
    check_name("model", name, MODEL_NAME_LIMIT)
    claim = (
        update(RegisteredModel)
        .where(col(RegisteredModel.name) == name)
        .values(last_version=col(RegisteredModel.last_version) + 1, updated_at=utcnow())
        .returning(RegisteredModel)
        .execution_options(populate_existing=True)
    )
    model = (await session.execute(claim)).scalar_one_or_none()
    if model is None:
        await _create_model(session, name=name, actor=actor)
        model = (await session.execute(claim)).scalar_one()
    return model


async def list_models(
    session: AsyncSession, *, first: int, after: str | None
) -> Page[RegisteredModel]:
    """Registered models by name."""
    keys = [SortKey(RegisteredModel.name)]
    stmt = select(RegisteredModel)
    return await fetch_page(session, RegisteredModel, stmt, keys, first=first, after=after)


async def _edit(
    session: AsyncSession,
    target: RegisteredModel | ModelVersion,
    *,
    description: str | None,
    set_tags: dict[str, str] | None,
    remove_tags: Sequence[str] | None,
    event: EventType,
    actor: str,
    model: str,
    version: int | None = None,
) -> None:
    """Apply description and tag edits to a model or version, and record what changed."""
    check_length("description", description, DESCRIPTION_LIMIT)
    check_tags("setTags", set_tags or {}, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    changed: dict[str, Any] = {}
    if description is not None and description != target.description:
        target.description = description
        changed["description"] = description
    tags = dict(target.tags or {})
    for key in remove_tags or ():
        if tags.pop(key, None) is not None:
            changed.setdefault("removedTags", []).append(key)
    for key, value in (set_tags or {}).items():
        if tags.get(key) != value:
            tags[key] = value
            changed.setdefault("tags", {})[key] = value
    if not changed:
        return
    target.tags = tags
    target.updated_at = utcnow()
    await session.flush()
    await record_event(
        session, type=event, actor=actor, model=model, version=version, payload=changed
    )


async def update_model(
    session: AsyncSession,
    *,
    name: str,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    remove_tags: Sequence[str] | None = None,
    actor: str,
) -> RegisteredModel:
    """Edit a model's description and tags."""
    model = await require_model(session, name=name, lock=True)
    await _edit(
        session,
        model,
        description=description,
        set_tags=set_tags,
        remove_tags=remove_tags,
        event=EventType.MODEL_UPDATED,
        actor=actor,
        model=name,
    )
    return model


# ---------------------------------------------------------------- versions


async def get_version(
    session: AsyncSession, *, model: str, version: int | None = None, alias: str | None = None
) -> ModelVersion | None:
    """A version by number or by alias (exactly one of them), or None."""
    if (version is None) == (alias is None):
        raise ValidationError("version", "give exactly one of version or alias")
    stmt = select(ModelVersion).join(
        RegisteredModel, col(RegisteredModel.id) == col(ModelVersion.model_id)
    )
    stmt = stmt.where(col(RegisteredModel.name) == model)
    if version is not None:
        stmt = stmt.where(col(ModelVersion.version) == version)
    else:
        stmt = stmt.join(ModelAlias, col(ModelAlias.version_id) == col(ModelVersion.id)).where(
            col(ModelAlias.alias) == alias
        )
    return (await session.execute(stmt)).scalar_one_or_none()


async def require_version(
    session: AsyncSession, *, model: RegisteredModel, version: int
) -> ModelVersion:
    """Version number `version` of `model`, or NotFoundError."""
    stmt = select(ModelVersion).where(
        col(ModelVersion.model_id) == model.id, col(ModelVersion.version) == version
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise NotFoundError("model version", "version", f"{model.name}/{version}")
    return found


async def production_version(
    session: AsyncSession, *, model: RegisteredModel
) -> ModelVersion | None:
    """The model's version in PRODUCTION, or None."""
    stmt = select(ModelVersion).where(
        col(ModelVersion.model_id) == model.id, col(ModelVersion.stage) == Stage.PRODUCTION
    )
    return (await session.execute(stmt)).scalar_one_or_none()


@retry_safe("registerModelVersion", REGISTRATION_REPLAY, unordered=("files",))
async def register_version(
    session: AsyncSession,
    *,
    model: str,
    run_id: str | None = None,
    source: str | None = None,
    files: Sequence[tuple[str, str]] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    run_link: str | None = None,
    logged_model_id: str | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> Registration:
    """A new DEVELOPMENT version of `model` (created if missing), numbered next, owning
    `files` ((path, digest) of stored blobs) or, without them, the files of a
    `runs:/<runId>/<path>` source, or those of the READY logged model it is registered
    from (`logged_model_id`, or a `models:/<model id>` source)."""
    check_length("source", source, SOURCE_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    check_length("runLink", run_link, SOURCE_LIMIT)
    tags = tags or {}
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    if logged_model_id is not None:
        logged_model_id = logged_models.check_model_id("loggedModelId", logged_model_id)
    elif source is not None:
        logged_model_id = logged_models.parse_model_source(source)
    if files is not None:
        manifest = await manifests.uploaded_files(session, files)
    elif source is not None and source.startswith(manifests.RUN_SOURCE):
        manifest = await manifests.run_source_files(session, source)
    elif logged_model_id is not None:
        manifest = await logged_models.logged_model_manifest(
            session, model_id=logged_model_id, field="source"
        )
    else:
        manifest = []
    run = None
    if run_id is not None:
        run = await tracking_service.require_run(session, run_id=run_id)
    registered = await claim_version_number(session, name=model, actor=actor)
    version = await add_version(
        session,
        model=registered,
        claimed=True,
        run_id=run_id,
        source=source,
        description=description,
        tags=tags,
        actor=actor,
        files=manifest,
        run_link=run_link,
        logged_model_id=logged_model_id,
    )
    assert version.id is not None, "a flushed version has its id"
    owned = [VersionFile(version_id=version.id, path=p, digest=d, size=n) for p, d, n in manifest]
    return Registration(version=version, model=registered, run=run, files=owned)


async def add_version(
    session: AsyncSession,
    *,
    model: RegisteredModel,
    run_id: str | None,
    source: str | None,
    description: str | None,
    tags: dict[str, str],
    actor: str,
    files: manifests.Manifest | None = None,
    run_link: str | None = None,
    logged_model_id: str | None = None,
    claimed: bool = False,
) -> ModelVersion:
    """A new DEVELOPMENT version of `model`, whose row the caller has locked, owning
    `files` (path, digest, size: blobs the caller holds in this unit of work). With
    `claimed`, the caller took the number with claim_version_number: it is
    model.last_version."""
    files = files or []
    assert model.id is not None, "a locked model row has its id"
    # A claimed number came with the model's updated_at: the version is made at that time.
    now = model.updated_at if claimed else utcnow()
    digest = manifest_digest(files)
    if claimed:
        number = model.last_version
    else:
        # The model row is locked, so max + 1 cannot be taken twice.
        current = (
            await session.execute(
                select(func.max(ModelVersion.version)).where(col(ModelVersion.model_id) == model.id)
            )
        ).scalar_one()
        # A deleted version's number is never given again.
        number = max(current or 0, model.last_version or 0) + 1
        model.last_version = number
        model.updated_at = now
    version = ModelVersion(
        model_id=model.id,
        version=number,
        run_id=run_id,
        source=source,
        run_link=run_link,
        logged_model_id=logged_model_id,
        digest=digest,
        stage=Stage.DEVELOPMENT,
        description=description,
        tags=tags,
        created_at=now,
        updated_at=now,
    )
    session.add(version)
    if files:
        await session.flush()
        assert version.id is not None, "a flushed version has its id"
        await write_version_files(session, version_id=version.id, files=files)
    # The event's flush writes the version too, when no files needed its id first.
    await record_event(
        session,
        type=EventType.VERSION_REGISTERED,
        actor=actor,
        model=model.name,
        version=version.version,
        to_stage=version.stage,
        payload={
            "runId": run_id,
            "source": source,
            "digest": digest,
            **({"loggedModelId": logged_model_id} if logged_model_id else {}),
        },
    )
    return version


async def update_version(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    remove_tags: Sequence[str] | None = None,
    actor: str,
) -> ModelVersion:
    """Edit a version's description and tags."""
    registered = await require_model(session, name=model, lock=True)
    found = await require_version(session, model=registered, version=version)
    await _edit(
        session,
        found,
        description=description,
        set_tags=set_tags,
        remove_tags=remove_tags,
        event=EventType.VERSION_UPDATED,
        actor=actor,
        model=model,
        version=version,
    )
    return found


# ---------------------------------------------------------------- aliases


def _check_alias(alias: str) -> None:
    check_length("alias", alias, ALIAS_LIMIT, required=True)
    if not ALIAS_PATTERN.fullmatch(alias):
        raise ValidationError("alias", "may contain only letters, digits, '_' and '-'")
    if RESERVED_ALIAS.fullmatch(alias):
        raise ValidationError("alias", "'latest' and 'v<number>' are reserved")


@retry_safe("setModelAlias", VERSION_REPLAY)
async def set_alias(
    session: AsyncSession,
    *,
    model: str,
    alias: str,
    version: int,
    idempotency_key: str | None = None,
    actor: str,
) -> ModelVersion:
    """Point `alias` at a version, moving it if it pointed elsewhere."""
    _check_alias(alias)
    registered = await require_model(session, name=model, lock=True)
    found = await require_version(session, model=registered, version=version)
    stmt = upsert_insert(session, core_table(ModelAlias))
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "alias"], set_={"version_id": stmt.excluded.version_id}
    )
    previous = (
        await session.execute(
            select(ModelVersion.version)
            .join(ModelAlias, col(ModelAlias.version_id) == col(ModelVersion.id))
            .where(col(ModelAlias.model_id) == registered.id, col(ModelAlias.alias) == alias)
        )
    ).scalar_one_or_none()
    if previous == version:
        return found
    await session.execute(stmt, {"model_id": registered.id, "alias": alias, "version_id": found.id})
    await record_event(
        session,
        type=EventType.ALIAS_SET,
        actor=actor,
        model=model,
        version=version,
        alias=alias,
        payload={"previousVersion": previous},
    )
    return found


async def delete_alias(
    session: AsyncSession, *, model: str, alias: str, actor: str
) -> ModelVersion:
    """Remove `alias`; returns the version it pointed at."""
    registered = await require_model(session, name=model, lock=True)
    pointed = (
        await session.execute(
            select(ModelVersion)
            .join(ModelAlias, col(ModelAlias.version_id) == col(ModelVersion.id))
            .where(col(ModelAlias.model_id) == registered.id, col(ModelAlias.alias) == alias)
        )
    ).scalar_one_or_none()
    if pointed is None:
        raise NotFoundError("alias", "alias", f"{model}@{alias}")
    await session.execute(
        delete(ModelAlias).where(
            col(ModelAlias.model_id) == registered.id, col(ModelAlias.alias) == alias
        )
    )
    await record_event(
        session,
        type=EventType.ALIAS_DELETED,
        actor=actor,
        model=model,
        version=pointed.version,
        alias=alias,
    )
    return pointed
