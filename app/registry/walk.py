"""The MLflow-style stage walk: a version moved to any stage along the lifecycle's shortest
allowed path, every step's policy evaluated before anything moves, and optionally the other
STAGING versions archived (MLflow's archive_existing_versions). The moves themselves, and the
model's lock and state, are the lifecycle's (`lifecycle.py`)."""

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.errors import check_length
from app.registry import lifecycle, policy
from app.registry.errors import InvalidTransitionError
from app.registry.models import REASON_LIMIT, ModelVersion, StageTransition
from app.registry.stages import Stage, path


async def walk_version(
    session: AsyncSession,
    *,
    model: str,
    version: int,
    stage: Stage,
    archive_others: bool = False,
    reason: str | None = None,
    actor: str,
) -> lifecycle.TransitionResult:
    """Move a version to `stage` along the lifecycle's shortest allowed path (DEVELOPMENT
    to PRODUCTION goes through STAGING), each step checked against the promotion policy
    and recorded as its own move, all in this unit of work. Every step's policy is
    evaluated first, so a refusal lists every unmet condition on the way and moves
    nothing. Into PRODUCTION the current PRODUCTION version is archived whatever
    `archive_others` says (one PRODUCTION version per model); with `archive_others`, the
    other versions in STAGING are archived too when the target is STAGING, as MLflow's
    archive_existing_versions does. Already in `stage`: nothing moves."""
    check_length("reason", reason, REASON_LIMIT)
    state, found = await lifecycle.lock_state(session, name=model, version=version)
    assert found is not None, "a version number was given"
    steps = path(found.stage, stage)
    if steps is None:
        raise InvalidTransitionError(model, version, found.stage, stage)
    unmet: list[policy.Unmet] = []
    checks: dict[Stage, policy.Checked | None] = {}
    for step in steps:
        checked = (
            await policy.evaluate(
                session, model=state.model, version=found, stage=step, production=state.production
            )
            if step in policy.POLICY_STAGES
            else None
        )
        checks[step] = checked
        if checked is not None:
            prefix = f"{step.value} policy, " if step != stage else ""
            unmet += [
                policy.Unmet(f"{prefix}{u.condition}", u.actual, u.required) for u in checked.unmet
            ]
    if unmet:
        raise policy.PolicyViolationError(model, version, stage, unmet)
    moves: list[StageTransition] = []
    for step in steps:
        moves += await lifecycle.move(
            session, state, found, step, actor=actor, reason=reason, checked=checks[step]
        )
    if archive_others and stage == Stage.STAGING and steps:
        others = (
            await session.execute(
                select(ModelVersion)
                .where(
                    col(ModelVersion.model_id) == state.model.id,
                    col(ModelVersion.stage) == Stage.STAGING,
                    col(ModelVersion.id) != found.id,
                )
                .order_by(col(ModelVersion.version))
            )
        ).scalars()
        for other in list(others):
            moves += await lifecycle.move(
                session,
                state,
                other,
                Stage.ARCHIVED,
                actor=actor,
                reason=f"replaced in STAGING by version {found.version}",
            )
    return lifecycle.TransitionResult(version=found, transitions=moves)
