"""Registered models, versions, the stage lifecycle, aliases and promotion.

Writes that touch a model's versions first lock the model row (FOR UPDATE on
PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers), so version
numbers and the single PRODUCTION slot are decided one writer at a time.
"""

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.dialect import is_postgres, upsert_insert
from app.db.pagination import Page, SortKey, fetch_page
from app.db.types import utcnow
from app.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    check_key,
    check_length,
    check_name,
    check_tags,
)
from app.events.models import EventType
from app.events.service import record_event
from app.registry import idempotency, policy
from app.registry.errors import InvalidTransitionError, NoRollbackTargetError
from app.registry.idempotency import once
from app.registry.models import (
    ALIAS_LIMIT,
    CHECK_LIMIT,
    MODEL_NAME_LIMIT,
    REASON_LIMIT,
    SOURCE_LIMIT,
    ModelAlias,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    StageTransition,
    Validation,
    ValidationStatus,
)
from app.registry.stages import ALLOWED_MOVES, Stage, is_allowed, path
from app.tracking import service as tracking_service
from app.tracking.models import DESCRIPTION_LIMIT, KEY_LIMIT, TAG_VALUE_LIMIT, Run
from app.tracking.search import Aggregate, CompareOp, Goal, RunFilter

ALIAS_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")
RESERVED_ALIAS = re.compile(r"latest|v\d+", re.IGNORECASE)
PROMOTION_RANK = {Stage.DEVELOPMENT: 0, Stage.ARCHIVED: 0, Stage.STAGING: 1, Stage.PRODUCTION: 2}


@dataclass
class TransitionResult:
    version: ModelVersion
    # Every move this call made, in order: a promotion to PRODUCTION also archives
    # the version it replaces.
    transitions: list[StageTransition] = field(default_factory=list)

    @property
    def bypassed(self) -> list[policy.Unmet]:
        """The policy conditions a rollback's restoring move did not meet (read from its
        audit row, so a replayed answer says the same)."""
        return [
            policy.Unmet(**u)
            for t in self.transitions
            if t.rollback and t.policy
            for u in t.policy.get("unmet", [])
        ]


@dataclass(frozen=True)
class AsOf:
    """The registry as a keyed call's first answer showed it, for its retries to show the
    same: the versions in the answer as they were, and how far their stage history,
    validations and aliases had got then. Objects reached from them (the model, a run's
    metrics) are read as they are now."""

    versions: dict[int, ModelVersion]
    last_transition: int
    last_validation: int
    aliases: dict[int, list[str]]
    run: Run | None = None


@dataclass
class PromotionResult:
    run: Run
    version: ModelVersion
    created: bool
    transitions: list[StageTransition]


# ---------------------------------------------------------------- models


async def get_model(session: AsyncSession, *, name: str) -> RegisteredModel | None:
    """The registered model called `name`, or None."""
    stmt = select(RegisteredModel).where(RegisteredModel.name == name)
    return (await session.execute(stmt)).scalar_one_or_none()


async def require_model(
    session: AsyncSession, *, name: str, lock: bool = False, field: str = "model"
) -> RegisteredModel:
    """The model called `name` (row-locked for this transaction if `lock`), or NotFoundError."""
    stmt = select(RegisteredModel).where(RegisteredModel.name == name)
    if lock and is_postgres(session):
        stmt = stmt.with_for_update()
    model = (await session.execute(stmt)).scalar_one_or_none()
    if model is None:
        raise NotFoundError("model", field, name)
    return model


async def ensure_model(session: AsyncSession, *, name: str, actor: str) -> RegisteredModel:
    """The model called `name`, created if missing, locked for this transaction."""
    check_name("model", name, MODEL_NAME_LIMIT)
    now = utcnow()
    stmt = (
        upsert_insert(session, RegisteredModel.__table__)
        .values(name=name, tags={}, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(RegisteredModel.__table__.c.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is not None:
        await record_event(session, type=EventType.MODEL_CREATED, actor=actor, model=name)
    return await require_model(session, name=name, lock=True)


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
    stmt = select(ModelVersion).join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
    stmt = stmt.where(RegisteredModel.name == model)
    if version is not None:
        stmt = stmt.where(ModelVersion.version == version)
    else:
        stmt = stmt.join(ModelAlias, ModelAlias.version_id == ModelVersion.id).where(
            ModelAlias.alias == alias
        )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _require_version(
    session: AsyncSession, model: RegisteredModel, version: int
) -> ModelVersion:
    stmt = select(ModelVersion).where(
        ModelVersion.model_id == model.id, ModelVersion.version == version
    )
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise NotFoundError("model version", "version", f"{model.name}/{version}")
    return found


async def _register_version(
    session: AsyncSession,
    *,
    model: str,
    run_id: str | None = None,
    source: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str,
) -> ModelVersion:
    """A new DEVELOPMENT version of `model` (created if missing), numbered next."""
    check_length("source", source, SOURCE_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    tags = tags or {}
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    if run_id is not None:
        await tracking_service.require_run(session, run_id=run_id)
    registered = await ensure_model(session, name=model, actor=actor)
    return await _add_version(
        session,
        registered,
        run_id=run_id,
        source=source,
        description=description,
        tags=tags,
        actor=actor,
    )


async def _add_version(
    session: AsyncSession,
    model: RegisteredModel,
    *,
    run_id: str | None,
    source: str | None,
    description: str | None,
    tags: dict[str, str],
    actor: str,
) -> ModelVersion:
    # The model row is locked by the caller, so max + 1 cannot be taken twice.
    current = (
        await session.execute(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)
        )
    ).scalar_one()
    now = utcnow()
    version = ModelVersion(
        model_id=model.id,  # type: ignore[arg-type]
        version=(current or 0) + 1,
        run_id=run_id,
        source=source,
        stage=Stage.DEVELOPMENT,
        description=description,
        tags=tags,
        created_at=now,
        updated_at=now,
    )
    session.add(version)
    model.updated_at = now
    await session.flush()
    await record_event(
        session,
        type=EventType.VERSION_REGISTERED,
        actor=actor,
        model=model.name,
        version=version.version,
        to_stage=version.stage,
        payload={"runId": run_id, "source": source},
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
    found = await _require_version(session, registered, version)
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


# ---------------------------------------------------------------- lifecycle


async def _move(
    session: AsyncSession,
    model: RegisteredModel,
    version: ModelVersion,
    to_stage: Stage,
    *,
    actor: str,
    reason: str | None,
    rollback: bool = False,
    policy_passed: dict[str, Any] | None = None,
) -> list[StageTransition]:
    """Record one move (and, into PRODUCTION, the archiving of the version it replaces),
    with the policy it passed, if one applied."""
    moves: list[StageTransition] = []
    if to_stage == Stage.PRODUCTION:
        current = (
            await session.execute(
                select(ModelVersion).where(
                    ModelVersion.model_id == model.id,
                    ModelVersion.stage == Stage.PRODUCTION,
                    ModelVersion.id != version.id,
                )
            )
        ).scalar_one_or_none()
        if current is not None:
            # Archive first: the partial unique index checks each statement.
            moves += await _move(
                session,
                model,
                current,
                Stage.ARCHIVED,
                actor=actor,
                reason=f"replaced by version {version.version}",
            )
    from_stage = version.stage
    now = utcnow()
    version.stage = to_stage.value
    version.updated_at = now
    transition = StageTransition(
        model_id=model.id,  # type: ignore[arg-type]
        version_id=version.id,  # type: ignore[arg-type]
        from_stage=from_stage,
        to_stage=to_stage.value,
        actor=actor,
        reason=reason,
        rollback=rollback,
        policy=policy_passed,
        at=now,
    )
    session.add(transition)
    await session.flush()
    await record_event(
        session,
        type=EventType.STAGE_CHANGED,
        actor=actor,
        model=model.name,
        version=version.version,
        from_stage=from_stage,
        to_stage=to_stage.value,
        reason=reason,
        payload={"policy": policy_passed} if policy_passed else None,
    )
    return [*moves, transition]


async def _production_number(session: AsyncSession, model_id: int) -> int:
    """The version number in PRODUCTION, or 0 when there is none."""
    stmt = select(ModelVersion.version).where(
        ModelVersion.model_id == model_id, ModelVersion.stage == Stage.PRODUCTION
    )
    return (await session.execute(stmt)).scalar_one_or_none() or 0


async def _check_expected(
    session: AsyncSession,
    model: RegisteredModel,
    *,
    production_version: int | None,
    version: ModelVersion | None = None,
    stage: Stage | None = None,
) -> None:
    """Compare-and-set: refuse with the current state when the model moved on since the
    caller looked. Checked under the model's lock, so the answer holds until commit."""
    if production_version is not None:
        actual = await _production_number(session, model.id)  # type: ignore[arg-type]
        if actual != production_version:
            raise ConflictError(
                "expectedProductionVersion",
                f"{model.name} has {f'version {actual}' if actual else 'no version'} in "
                f"PRODUCTION, not {production_version or 'none'}",
                expected=str(production_version),
                actual=str(actual),
            )
    if stage is not None and version is not None and version.stage != stage:
        raise ConflictError(
            "expectedStage",
            f"{model.name} version {version.version} is in {version.stage}, not {stage}",
            expected=stage.value,
            actual=version.stage,
        )


async def _transition_version(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    stage: Stage,
    reason: str | None = None,
    expected_production_version: int | None = None,
    expected_stage: Stage | None = None,
    actor: str,
) -> TransitionResult:
    """Move a version to `stage` if the lifecycle allows it; into PRODUCTION archives the old
    one. With expectations (0 = no version in PRODUCTION), a model that moved on since the
    caller looked is a ConflictError, not an overwrite."""
    check_length("reason", reason, REASON_LIMIT)
    registered = await require_model(session, name=model, lock=True)
    found = await _require_version(session, registered, version)
    await _check_expected(
        session,
        registered,
        production_version=expected_production_version,
        version=found,
        stage=expected_stage,
    )
    current = Stage(found.stage)
    if not is_allowed(current, stage):
        raise InvalidTransitionError(model, version, current, stage)
    passed = await _enforce_policy(session, registered, found, stage)
    moves = await _move(
        session, registered, found, stage, actor=actor, reason=reason, policy_passed=passed
    )
    return TransitionResult(version=found, transitions=moves)


async def _promote_best_run(
    session: AsyncSession,
    *,
    experiment: str,
    metric: str,
    model: str,
    goal: Goal = Goal.MAXIMIZE,
    aggregate: Aggregate = Aggregate.LAST,
    run_filter: RunFilter | None = None,
    stage: Stage = Stage.STAGING,
    reason: str | None = None,
    expected_production_version: int | None = None,
    actor: str,
) -> PromotionResult:
    """Find the best run, register it (or reuse its version) and walk it to `stage`; with
    `expected_production_version` (0 = none), only if PRODUCTION is still as expected."""
    check_length("reason", reason, REASON_LIMIT)
    if stage not in (Stage.STAGING, Stage.PRODUCTION):
        raise ValidationError("stage", "a promotion targets STAGING or PRODUCTION")
    run = await tracking_service.best_run(
        session,
        experiment=experiment,
        metric=metric,
        goal=goal,
        aggregate=aggregate,
        run_filter=run_filter,
    )
    if run is None:
        raise NotFoundError("run with metric", "metric", f"{experiment}/{metric}")
    registered = await ensure_model(session, name=model, actor=actor)
    await _check_expected(session, registered, production_version=expected_production_version)
    existing = (
        await session.execute(
            select(ModelVersion)
            .where(ModelVersion.model_id == registered.id, ModelVersion.run_id == run.id)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    created = existing is None
    version = existing or await _add_version(
        session,
        registered,
        run_id=run.id,
        source=f"runs:/{run.id}/model",
        description=None,
        tags={},
        actor=actor,
    )
    # Promotion only walks forward: a version already at or past `stage` stays put.
    if PROMOTION_RANK[Stage(version.stage)] >= PROMOTION_RANK[stage]:
        steps: list[Stage] | None = []
    else:
        steps = path(Stage(version.stage), stage)
    if steps is None:
        raise InvalidTransitionError(model, version.version, Stage(version.stage), stage)
    reason = (
        reason or f"best {metric} ({goal.value.lower()}, {aggregate.value.lower()}) in {experiment}"
    )
    transitions: list[StageTransition] = []
    for step in steps:
        passed = await _enforce_policy(session, registered, version, step)
        transitions += await _move(
            session, registered, version, step, actor=actor, reason=reason, policy_passed=passed
        )
    return PromotionResult(run=run, version=version, created=created, transitions=transitions)


async def _rollback_target(
    session: AsyncSession, model_id: int, current_id: int
) -> ModelVersion | None:
    """The version in PRODUCTION before the current one, reading the history as a stack:
    a promotion pushes, a rollback pops, so repeated rollbacks keep going back."""
    entries = await session.execute(
        select(StageTransition.version_id, StageTransition.rollback)
        .where(StageTransition.model_id == model_id, StageTransition.to_stage == Stage.PRODUCTION)
        .order_by(StageTransition.id)
    )
    stack: list[int] = []
    for version_id, is_rollback in entries.all():
        if is_rollback:
            if stack:
                stack.pop()  # the version rolled back; the one restored is below it
        else:
            stack.append(version_id)
    below = [v for v in stack[:-1] if v != current_id]
    return await session.get(ModelVersion, below[-1]) if below else None


async def _rollback_model(
    session: AsyncSession, *, model: str, reason: str | None = None, actor: str
) -> TransitionResult:
    """Archive the PRODUCTION version and bring back the one that was in PRODUCTION before it."""
    check_length("reason", reason, REASON_LIMIT)
    registered = await require_model(session, name=model, lock=True)
    current = (
        await session.execute(
            select(ModelVersion).where(
                ModelVersion.model_id == registered.id, ModelVersion.stage == Stage.PRODUCTION
            )
        )
    ).scalar_one_or_none()
    if current is None:
        raise NoRollbackTargetError(model, "no version is in PRODUCTION")
    previous = await _rollback_target(session, registered.id, current.id)  # type: ignore[arg-type]
    if previous is None:
        raise NoRollbackTargetError(
            model, f"no version was in PRODUCTION before version {current.version}"
        )
    reason = reason or f"rollback from version {current.version} to {previous.version}"
    # A rollback is the emergency exit: the PRODUCTION policy does not stop it (the version
    # it restores was judged good enough before, and the one it replaces is the emergency),
    # but the policy is evaluated as for any move into PRODUCTION and what it bypassed is
    # written into the audit row, the STAGE_CHANGED event and the answer.
    checked, unmet = await policy.evaluate(
        session, model=registered, version=previous, stage=Stage.PRODUCTION
    )
    if checked is not None:
        checked = {**checked, "bypassed": bool(unmet), "unmet": [asdict(u) for u in unmet]}
    moves = await _move(session, registered, current, Stage.ARCHIVED, actor=actor, reason=reason)
    moves += await _move(
        session,
        registered,
        previous,
        Stage.PRODUCTION,
        actor=actor,
        reason=reason,
        rollback=True,
        policy_passed=checked,
    )
    await record_event(
        session,
        type=EventType.MODEL_ROLLED_BACK,
        actor=actor,
        model=model,
        version=previous.version,
        from_stage=Stage.PRODUCTION.value,
        to_stage=Stage.PRODUCTION.value,
        reason=reason,
        payload={"fromVersion": current.version, "toVersion": previous.version},
    )
    return TransitionResult(version=previous, transitions=moves)


# ---------------------------------------------------------------- aliases


def _check_alias(alias: str) -> None:
    check_length("alias", alias, ALIAS_LIMIT, required=True)
    if not ALIAS_PATTERN.fullmatch(alias):
        raise ValidationError("alias", "may contain only letters, digits, '_' and '-'")
    if RESERVED_ALIAS.fullmatch(alias):
        raise ValidationError("alias", "'latest' and 'v<number>' are reserved")


async def _set_alias(
    session: AsyncSession, *, model: str, alias: str, version: int, actor: str
) -> ModelVersion:
    """Point `alias` at a version, moving it if it pointed elsewhere."""
    _check_alias(alias)
    registered = await require_model(session, name=model, lock=True)
    found = await _require_version(session, registered, version)
    stmt = upsert_insert(session, ModelAlias.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "alias"], set_={"version_id": stmt.excluded.version_id}
    )
    previous = (
        await session.execute(
            select(ModelVersion.version)
            .join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
            .where(ModelAlias.model_id == registered.id, ModelAlias.alias == alias)
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
            .join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
            .where(ModelAlias.model_id == registered.id, ModelAlias.alias == alias)
        )
    ).scalar_one_or_none()
    if pointed is None:
        raise NotFoundError("alias", "alias", f"{model}@{alias}")
    await session.execute(
        delete(ModelAlias).where(ModelAlias.model_id == registered.id, ModelAlias.alias == alias)
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


# ---------------------------------------------------------------- retry-safe entry points
# Each takes an optional idempotency key: a retry with the same key and request returns
# the first answer (the same version and transitions, as they were) and changes nothing.


async def _freeze(
    session: AsyncSession, version_ids: Sequence[int], run: Run | None = None
) -> dict[str, Any]:
    """What an answer about these versions (and run) shows now, to be shown again as is."""
    ids = sorted(set(version_ids))
    versions = (
        await session.execute(select(ModelVersion).where(ModelVersion.id.in_(ids)))
    ).scalars()
    last_transition = (
        await session.execute(
            select(func.max(StageTransition.id)).where(StageTransition.version_id.in_(ids))
        )
    ).scalar_one()
    last_validation = (
        await session.execute(select(func.max(Validation.id)).where(Validation.version_id.in_(ids)))
    ).scalar_one()
    aliases = (
        await session.execute(
            select(ModelAlias.version_id, ModelAlias.alias)
            .where(ModelAlias.version_id.in_(ids))
            .order_by(ModelAlias.alias)
        )
    ).all()
    named: dict[str, list[str]] = {}
    for version_id, alias in aliases:
        named.setdefault(str(version_id), []).append(alias)
    return {
        "versions": [idempotency.row(v) for v in versions],
        "lastTransition": last_transition or 0,
        "lastValidation": last_validation or 0,
        "aliases": named,
        "run": idempotency.row(run) if run is not None else None,
    }


def answer_as_of(session: AsyncSession) -> AsOf | None:
    """The state the keyed call in this unit of work answered with (None without a key):
    a retry shows what the first answer showed, not what is stored now."""
    frozen = idempotency.answer(session)
    if not frozen:
        return None
    versions = [idempotency.unrow(ModelVersion, v) for v in frozen["versions"]]
    return AsOf(
        versions={v.id: v for v in versions},  # type: ignore[misc]
        last_transition=frozen["lastTransition"],
        last_validation=frozen["lastValidation"],
        aliases={int(k): v for k, v in frozen["aliases"].items()},
        run=idempotency.unrow(Run, frozen["run"]) if frozen.get("run") else None,
    )


def _freeze_transition(session: AsyncSession) -> Any:
    async def freeze(result: TransitionResult) -> dict[str, Any]:
        ids = [result.version.id, *(t.version_id for t in result.transitions)]
        return await _freeze(session, ids)  # type: ignore[arg-type]

    return freeze


def _freeze_version(session: AsyncSession) -> Any:
    async def freeze(version: ModelVersion) -> dict[str, Any]:
        return await _freeze(session, [version.id])  # type: ignore[list-item]

    return freeze


async def _load_versions_and_transitions(
    session: AsyncSession, stored: dict[str, Any]
) -> tuple[ModelVersion, list[StageTransition]]:
    version = await session.get_one(ModelVersion, stored["version"])
    transitions = (
        await session.execute(
            select(StageTransition)
            .where(StageTransition.id.in_(stored.get("transitions", [])))
            .order_by(StageTransition.id)
        )
    ).scalars()
    return version, list(transitions)


def _dump_transition(result: TransitionResult) -> dict[str, Any]:
    return {"version": result.version.id, "transitions": [t.id for t in result.transitions]}


async def _load_transition(session: AsyncSession, stored: dict[str, Any]) -> TransitionResult:
    version, transitions = await _load_versions_and_transitions(session, stored)
    return TransitionResult(version=version, transitions=transitions)


async def register_version(
    session: AsyncSession,
    *,
    model: str,
    run_id: str | None = None,
    source: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> ModelVersion:
    """A new DEVELOPMENT version of `model` (created if missing), numbered next."""
    request = {
        "model": model,
        "runId": run_id,
        "source": source,
        "description": description,
        "tags": tags or {},
    }
    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="registerModelVersion",
        request=request,
        run=lambda: _register_version(
            session,
            model=model,
            run_id=run_id,
            source=source,
            description=description,
            tags=tags,
            actor=actor,
        ),
        dump=lambda v: {"version": v.id},
        load=lambda stored: session.get_one(ModelVersion, stored["version"]),
        freeze=_freeze_version(session),
    )


async def transition_version(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    stage: Stage,
    reason: str | None = None,
    expected_production_version: int | None = None,
    expected_stage: Stage | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> TransitionResult:
    """Move a version to `stage` if the lifecycle allows it; into PRODUCTION archives the old
    one. With expectations (0 = no version in PRODUCTION), a model that moved on since the
    caller looked is a ConflictError, not an overwrite."""
    request = {
        "model": model,
        "version": version,
        "stage": stage,
        "reason": reason,
        "expectedProductionVersion": expected_production_version,
        "expectedStage": expected_stage,
    }
    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="transitionModelVersion",
        request=request,
        run=lambda: _transition_version(
            session,
            model=model,
            version=version,
            stage=stage,
            reason=reason,
            expected_production_version=expected_production_version,
            expected_stage=expected_stage,
            actor=actor,
        ),
        dump=_dump_transition,
        load=lambda stored: _load_transition(session, stored),
        freeze=_freeze_transition(session),
    )


async def promote_best_run(
    session: AsyncSession,
    *,
    experiment: str,
    metric: str,
    model: str,
    goal: Goal = Goal.MAXIMIZE,
    aggregate: Aggregate = Aggregate.LAST,
    run_filter: RunFilter | None = None,
    stage: Stage = Stage.STAGING,
    reason: str | None = None,
    expected_production_version: int | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> PromotionResult:
    """Find the best run, register it (or reuse its version) and walk it to `stage`; with
    `expected_production_version` (0 = none), only if PRODUCTION is still as expected."""
    request = {
        "experiment": experiment,
        "metric": metric,
        "model": model,
        "goal": goal,
        "aggregate": aggregate,
        "filter": repr(run_filter),
        "stage": stage,
        "reason": reason,
        "expectedProductionVersion": expected_production_version,
    }

    async def load(stored: dict[str, Any]) -> PromotionResult:
        version, transitions = await _load_versions_and_transitions(session, stored)
        run = await tracking_service.require_run(session, run_id=stored["run"])
        return PromotionResult(
            run=run, version=version, created=stored["created"], transitions=transitions
        )

    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="promoteBestRun",
        request=request,
        run=lambda: _promote_best_run(
            session,
            experiment=experiment,
            metric=metric,
            model=model,
            goal=goal,
            aggregate=aggregate,
            run_filter=run_filter,
            stage=stage,
            reason=reason,
            expected_production_version=expected_production_version,
            actor=actor,
        ),
        dump=lambda r: {
            "run": r.run.id,
            "version": r.version.id,
            "created": r.created,
            "transitions": [t.id for t in r.transitions],
        },
        load=load,
        freeze=lambda r: _freeze(
            session,
            [r.version.id, *(t.version_id for t in r.transitions)],  # type: ignore[list-item]
            r.run,
        ),
    )


async def rollback_model(
    session: AsyncSession,
    *,
    model: str,
    reason: str | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> TransitionResult:
    """Archive the PRODUCTION version and bring back the one that was in PRODUCTION before it."""
    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="rollbackModel",
        request={"model": model, "reason": reason},
        run=lambda: _rollback_model(session, model=model, reason=reason, actor=actor),
        dump=_dump_transition,
        load=lambda stored: _load_transition(session, stored),
        freeze=_freeze_transition(session),
    )


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
    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="setModelAlias",
        request={"model": model, "alias": alias, "version": version},
        run=lambda: _set_alias(session, model=model, alias=alias, version=version, actor=actor),
        dump=lambda v: {"version": v.id},
        load=lambda stored: session.get_one(ModelVersion, stored["version"]),
        freeze=_freeze_version(session),
    )


# ---------------------------------------------------------------- validations


async def _record_validation(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    check: str,
    status: ValidationStatus,
    details_url: str | None,
    metrics: dict[str, float],
    actor: str,
) -> Validation:
    check_name("check", check, CHECK_LIMIT)
    check_length("detailsUrl", details_url, SOURCE_LIMIT)
    for key in metrics:
        check_key("metrics.key", key, KEY_LIMIT)
    registered = await require_model(session, name=model, lock=True)
    found = await _require_version(session, registered, version)
    validation = Validation(
        version_id=found.id,  # type: ignore[arg-type]
        check=check,
        status=status.value,
        details_url=details_url,
        metrics=metrics,
        actor=actor,
        at=utcnow(),
    )
    session.add(validation)
    await session.flush()
    await record_event(
        session,
        type=EventType.VALIDATION_RECORDED,
        actor=actor,
        model=model,
        version=version,
        reason=f"{check}: {status.value}",
        payload={"check": check, "status": status.value, "detailsUrl": details_url},
    )
    return validation


async def record_validation(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    check: str,
    status: ValidationStatus,
    details_url: str | None = None,
    metrics: dict[str, float] | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> Validation:
    """Record a CI check's result on a version (latest per check wins; history is kept)."""
    metrics = metrics or {}
    request = {
        "model": model,
        "version": version,
        "check": check,
        "status": status,
        "detailsUrl": details_url,
        "metrics": metrics,
    }
    return await once(
        session,
        key=idempotency_key,
        actor=actor,
        operation="recordValidation",
        request=request,
        run=lambda: _record_validation(
            session,
            model=model,
            version=version,
            check=check,
            status=status,
            details_url=details_url,
            metrics=metrics,
            actor=actor,
        ),
        dump=lambda v: {"validation": v.id},
        load=lambda stored: session.get_one(Validation, stored["validation"]),
        freeze=lambda v: _freeze(session, [v.version_id]),
    )


# ---------------------------------------------------------------- promotion policies


async def _enforce_policy(
    session: AsyncSession, model: RegisteredModel, version: ModelVersion, stage: Stage
) -> dict[str, Any] | None:
    """The policy the move into `stage` passes (None if none applies); PolicyViolationError
    with every unmet condition otherwise."""
    if stage not in policy.POLICY_STAGES:
        return None
    passed, unmet = await policy.evaluate(session, model=model, version=version, stage=stage)
    if unmet:
        raise policy.PolicyViolationError(model.name, version.version, stage, unmet)
    return passed


async def set_promotion_policy(
    session: AsyncSession,
    *,
    model: str,
    stage: Stage,
    required_checks: Sequence[str] = (),
    metric_rules: Sequence[tuple[str, CompareOp, float]] = (),
    must_beat_production: tuple[str, Goal] | None = None,
    actor: str,
) -> PromotionPolicy:
    """Replace what a version of `model` must satisfy to move into `stage`."""
    registered = await require_model(session, name=model, lock=True)
    return await policy.set_policy(
        session,
        model=registered,
        stage=stage,
        required_checks=required_checks,
        metric_rules=metric_rules,
        must_beat_production=must_beat_production,
        actor=actor,
    )


async def check_promotion(
    session: AsyncSession, *, model: str, version: int, stage: Stage
) -> list[policy.Unmet]:
    """What would block moving the version into `stage` now (the lifecycle and the
    policy), without moving anything: [] means the move would go through."""
    registered = await require_model(session, name=model)
    found = await _require_version(session, registered, version)
    current = Stage(found.stage)
    if not is_allowed(current, stage):
        allowed = ", ".join(s.value for s in ALLOWED_MOVES[current])
        return [policy.Unmet(f"move from {current}", stage.value, f"one of {allowed}")]
    if stage not in policy.POLICY_STAGES:
        return []
    return (await policy.evaluate(session, model=registered, version=found, stage=stage))[1]
