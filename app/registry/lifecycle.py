"""The stage lifecycle: transitions, promotion of the best run, and rollback.

Each write locks the model row (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
serialises writers) and then reads its PRODUCTION version once:
that `ModelState` is what the compare-and-set checks, the policy and the moves see, and the
moves keep it current, so the single PRODUCTION slot is decided one writer at a time.
`lock_state` and `move` are shared with the MLflow-style stage walk (`walk.py`)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.artifacts.content import normalize_path
from app.db.dialect import is_postgres
from app.db.types import utcnow
from app.errors import ConflictError, NotFoundError, ValidationError, check_length
from app.events.models import EventType
from app.events.service import record_event
from app.registry import catalog, idempotency, manifests, policy
from app.registry.errors import InvalidTransitionError, NoRollbackTargetError
from app.registry.idempotency import Replay, retry_safe
from app.registry.models import REASON_LIMIT, ModelVersion, RegisteredModel, StageTransition
from app.registry.stages import Stage, is_allowed, path
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import Run
from app.tracking.search import Aggregate, Goal, RunFilter

PROMOTION_RANK = {Stage.DEVELOPMENT: 0, Stage.ARCHIVED: 0, Stage.STAGING: 1, Stage.PRODUCTION: 2}


@dataclass
class ModelState:
    """A model as one write sees it: its row, locked, and its PRODUCTION version."""

    model: RegisteredModel
    production: ModelVersion | None

    @property
    def production_number(self) -> int:
        """The version number in PRODUCTION, or 0 when there is none."""
        return self.production.version if self.production is not None else 0


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
            u
            for t in self.transitions
            if t.rollback and t.policy
            for u in policy.Checked.from_json(t.policy).unmet
        ]


@dataclass
class PromotionResult:
    run: Run
    version: ModelVersion
    created: bool
    transitions: list[StageTransition]


# ---------------------------------------------------------------- the state of a write


async def lock_state(
    session: AsyncSession, *, name: str, version: int | None = None
) -> tuple[ModelState, ModelVersion | None]:
    """The model locked, with its PRODUCTION version (and version number `version`, when
    given) read in one statement; NotFoundError for a missing model or version."""
    wanted = col(ModelVersion.stage) == Stage.PRODUCTION
    if version is not None:
        wanted = or_(wanted, col(ModelVersion.version) == version)
    rows: list[ModelVersion]
    if is_postgres(session):
        model = await catalog.require_model(session, name=name, lock=True)
        # Read after the lock is held, in a statement of its own: under PostgreSQL's READ
        # COMMITTED a statement that waited for the lock would still see the rows as they
        # were before the previous holder committed (a PRODUCTION version it just replaced).
        rows = list(
            (
                await session.execute(
                    select(ModelVersion).where(col(ModelVersion.model_id) == model.id, wanted)
                )
            ).scalars()
        )
    else:
        # SQLite's BEGIN IMMEDIATE took the database's write lock before any statement, so
        # the model and its versions are read in one: the model, joined to the wanted ones.
        pairs: Sequence[Row[RegisteredModel, ModelVersion | None]] = (
            await session.execute(
                select(RegisteredModel, ModelVersion)
                .outerjoin(
                    ModelVersion, and_(col(ModelVersion.model_id) == RegisteredModel.id, wanted)
                )
                .where(col(RegisteredModel.name) == name)
            )
        ).all()
        if not pairs:
            raise NotFoundError("model", "model", name)
        model = pairs[0][0]
        rows = [v for _, v in pairs if v is not None]
    production: ModelVersion | None = None
    found: ModelVersion | None = None
    for row in rows:
        if row.stage == Stage.PRODUCTION:
            production = row
        if row.version == version:
            found = row
    if version is not None and found is None:
        raise NotFoundError("model version", "version", f"{name}/{version}")
    return ModelState(model=model, production=production), found


async def _state_of(session: AsyncSession, model: RegisteredModel) -> ModelState:
    """The state of a model this write has just locked (created, or locked by name)."""
    return ModelState(
        model=model, production=await catalog.production_version(session, model=model)
    )


def _check_expected(
    state: ModelState,
    *,
    production_version: int | None,
    version: ModelVersion | None = None,
    stage: Stage | None = None,
) -> None:
    """Compare-and-set: refuse with the current state when the model moved on since the
    caller looked. Checked under the model's lock, so the answer holds until commit."""
    name = state.model.name
    if production_version is not None:
        actual = state.production_number
        if actual != production_version:
            raise ConflictError(
                "expectedProductionVersion",
                f"{name} has {f'version {actual}' if actual else 'no version'} in "
                f"PRODUCTION, not {production_version or 'none'}",
                expected=str(production_version),
                actual=str(actual),
            )
    if stage is not None and version is not None and version.stage != stage:
        raise ConflictError(
            "expectedStage",
            f"{name} version {version.version} is in {version.stage}, not {stage}",
            expected=stage.value,
            actual=version.stage.value,
        )


async def move(
    session: AsyncSession,
    state: ModelState,
    version: ModelVersion,
    to_stage: Stage,
    *,
    actor: str,
    reason: str | None,
    rollback: bool = False,
    checked: policy.Checked | None = None,
) -> list[StageTransition]:
    """Record one move (and, into PRODUCTION, the archiving of the version it replaces),
    with the policy it was checked against, if one applied; `state` follows the moves."""
    moves: list[StageTransition] = []
    current = state.production
    if to_stage == Stage.PRODUCTION and current is not None and current.id != version.id:
        # Archive first: the partial unique index checks each statement.
        moves += await move(
            session,
            state,
            current,
            Stage.ARCHIVED,
            actor=actor,
            reason=f"replaced by version {version.version}",
        )
    model = state.model
    assert model.id is not None, "a locked model row has its id"
    assert version.id is not None, "a moved version is a stored row"
    from_stage = version.stage
    now = utcnow()
    version.stage = to_stage
    version.updated_at = now
    passed = checked.to_json() if checked is not None else None
    transition = StageTransition(
        model_id=model.id,
        version_id=version.id,
        from_stage=from_stage,
        to_stage=to_stage,
        actor=actor,
        reason=reason,
        rollback=rollback,
        policy=passed,
        at=now,
    )
    session.add(transition)
    # The event's flush writes the move and its audit row with it: one flush per move.
    if to_stage == Stage.PRODUCTION:
        state.production = version
    elif state.production is version:
        state.production = None
    await record_event(
        session,
        type=EventType.STAGE_CHANGED,
        actor=actor,
        model=model.name,
        version=version.version,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        payload={"digest": version.digest, **({"policy": passed} if passed else {})},
    )
    return [*moves, transition]


# ---------------------------------------------------------------- how a retry is answered


async def _load_moves(
    session: AsyncSession, stored: dict[str, Any]
) -> tuple[ModelVersion, list[StageTransition]]:
    version = await idempotency.answered(session, ModelVersion, stored["version"])
    transitions = (
        await session.execute(
            select(StageTransition)
            .where(col(StageTransition.id).in_(stored.get("transitions", [])))
            .order_by(col(StageTransition.id))
        )
    ).scalars()
    return version, list(transitions)


async def _load_transition(session: AsyncSession, stored: dict[str, Any]) -> TransitionResult:
    version, transitions = await _load_moves(session, stored)
    return TransitionResult(version=version, transitions=transitions)


async def _freeze_transition(session: AsyncSession, result: TransitionResult) -> dict[str, Any]:
    ids = [result.version.id, *(t.version_id for t in result.transitions)]
    return await idempotency.freeze(session, ids)


TRANSITION_REPLAY: Replay[TransitionResult] = Replay(
    dump=lambda r: {"version": r.version.id, "transitions": [t.id for t in r.transitions]},
    load=_load_transition,
    freeze=_freeze_transition,
)


async def _load_promotion(session: AsyncSession, stored: dict[str, Any]) -> PromotionResult:
    version, transitions = await _load_moves(session, stored)
    run = await tracking_service.require_run(session, run_id=stored["run"])
    return PromotionResult(
        run=run, version=version, created=stored["created"], transitions=transitions
    )


async def _freeze_promotion(session: AsyncSession, result: PromotionResult) -> dict[str, Any]:
    ids = [result.version.id, *(t.version_id for t in result.transitions)]
    return await idempotency.freeze(session, ids, result.run)


PROMOTION_REPLAY: Replay[PromotionResult] = Replay(
    dump=lambda r: {
        "run": r.run.id,
        "version": r.version.id,
        "created": r.created,
        "transitions": [t.id for t in r.transitions],
    },
    load=_load_promotion,
    freeze=_freeze_promotion,
)


# ---------------------------------------------------------------- writes


@retry_safe("transitionModelVersion", TRANSITION_REPLAY)
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
    check_length("reason", reason, REASON_LIMIT)
    state, found = await lock_state(session, name=model, version=version)
    assert found is not None, "a version number was given"
    _check_expected(
        state, production_version=expected_production_version, version=found, stage=expected_stage
    )
    if not is_allowed(found.stage, stage):
        raise InvalidTransitionError(model, version, found.stage, stage)
    checked = await policy.enforce(
        session, model=state.model, version=found, stage=stage, production=state.production
    )
    moves = await move(session, state, found, stage, actor=actor, reason=reason, checked=checked)
    return TransitionResult(version=found, transitions=moves)


@retry_safe("promoteBestRun", PROMOTION_REPLAY)
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
    artifact_path: str = "model",
    idempotency_key: str | None = None,
    actor: str,
) -> PromotionResult:
    """Find the best run, register it (or reuse its version) with the files of its folder
    `artifact_path`, and walk it to `stage`; with `expected_production_version` (0 = none),
    only if PRODUCTION is still as expected."""
    check_length("reason", reason, REASON_LIMIT)
    artifact_path = normalize_path("artifactPath", artifact_path)
    if stage not in (Stage.STAGING, Stage.PRODUCTION):
        raise ValidationError("stage", "a promotion targets STAGING or PRODUCTION")
    run = await tracking_reads.best_run(
        session,
        experiment=experiment,
        metric=metric,
        goal=goal,
        aggregate=aggregate,
        run_filter=run_filter,
    )
    if run is None:
        raise NotFoundError("run with metric", "metric", f"{experiment}/{metric}")
    registered = await catalog.ensure_model(session, name=model, actor=actor)
    state = await _state_of(session, registered)
    _check_expected(state, production_version=expected_production_version)
    existing = (
        await session.execute(
            select(ModelVersion)
            .where(col(ModelVersion.model_id) == registered.id, col(ModelVersion.run_id) == run.id)
            .order_by(col(ModelVersion.version).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    created = existing is None
    version = existing or await catalog.add_version(
        session,
        model=registered,
        run_id=run.id,
        source=f"{manifests.RUN_SOURCE}{run.id}/{artifact_path}",
        description=None,
        tags={},
        actor=actor,
        # A run that logged no files there still makes a version, without files, as
        # before runs had artifacts: its metrics alone may be what is being promoted.
        files=await manifests.run_manifest(
            session, run_id=run.id, folder=artifact_path, field="artifactPath"
        ),
    )
    # Promotion only walks forward: a version already at or past `stage` stays put.
    steps = (
        [] if PROMOTION_RANK[version.stage] >= PROMOTION_RANK[stage] else path(version.stage, stage)
    )
    if steps is None:
        raise InvalidTransitionError(model, version.version, version.stage, stage)
    reason = (
        reason or f"best {metric} ({goal.value.lower()}, {aggregate.value.lower()}) in {experiment}"
    )
    transitions: list[StageTransition] = []
    for step in steps:
        checked = await policy.enforce(
            session, model=registered, version=version, stage=step, production=state.production
        )
        transitions += await move(
            session, state, version, step, actor=actor, reason=reason, checked=checked
        )
    return PromotionResult(run=run, version=version, created=created, transitions=transitions)


async def _rollback_target(
    session: AsyncSession, model_id: int, current_id: int
) -> ModelVersion | None:
    """The version in PRODUCTION before the current one, reading the history as a stack:
    a promotion pushes, a rollback pops, so repeated rollbacks keep going back."""
    entries = await session.execute(
        select(StageTransition.version_id, StageTransition.rollback)
        .where(
            col(StageTransition.model_id) == model_id,
            col(StageTransition.to_stage) == Stage.PRODUCTION,
        )
        .order_by(col(StageTransition.id))
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


@retry_safe("rollbackModel", TRANSITION_REPLAY)
async def rollback_model(
    session: AsyncSession,
    *,
    model: str,
    reason: str | None = None,
    idempotency_key: str | None = None,
    actor: str,
) -> TransitionResult:
    """Archive the PRODUCTION version and bring back the one that was in PRODUCTION before it."""
    check_length("reason", reason, REASON_LIMIT)
    state, _ = await lock_state(session, name=model)
    current = state.production
    if current is None:
        raise NoRollbackTargetError(model, "no version is in PRODUCTION")
    assert state.model.id is not None, "a locked model row has its id"
    assert current.id is not None, "a stored version has its id"
    previous = await _rollback_target(session, state.model.id, current.id)
    if previous is None:
        raise NoRollbackTargetError(
            model, f"no version was in PRODUCTION before version {current.version}"
        )
    reason = reason or f"rollback from version {current.version} to {previous.version}"
    # A rollback is the emergency exit: the PRODUCTION policy does not stop it (the version
    # it restores was judged good enough before, and the one it replaces is the emergency),
    # but the policy is evaluated as for any move into PRODUCTION and what it bypassed is
    # written into the audit row, the STAGE_CHANGED event and the answer. The version it
    # would have to beat is the one being rolled back.
    checked = await policy.evaluate(
        session, model=state.model, version=previous, stage=Stage.PRODUCTION, production=current
    )
    moves = await move(session, state, current, Stage.ARCHIVED, actor=actor, reason=reason)
    moves += await move(
        session,
        state,
        previous,
        Stage.PRODUCTION,
        actor=actor,
        reason=reason,
        rollback=True,
        checked=checked,
    )
    await record_event(
        session,
        type=EventType.MODEL_ROLLED_BACK,
        actor=actor,
        model=model,
        version=previous.version,
        from_stage=Stage.PRODUCTION,
        to_stage=Stage.PRODUCTION,
        reason=reason,
        payload={"fromVersion": current.version, "toVersion": previous.version},
    )
    return TransitionResult(version=previous, transitions=moves)
