"""Promotion policies: the conditions a version must meet to move into a stage."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.dialect import upsert_insert
from app.db.types import utcnow
from app.errors import DomainError, ErrorCode, ValidationError, check_key, check_name
from app.events.models import EventType
from app.events.service import record_event
from app.registry.models import (
    CHECK_LIMIT,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    Validation,
    ValidationStatus,
)
from app.registry.stages import Stage
from app.tracking.models import KEY_LIMIT, LatestMetric
from app.tracking.search import CompareOp, Goal, compare_values

POLICY_STAGES = (Stage.STAGING, Stage.PRODUCTION)


@dataclass(frozen=True)
class Unmet:
    """One condition a version does not meet, with what it has and what is required."""

    condition: str
    actual: str | None
    required: str


class PolicyViolationError(DomainError):
    code = ErrorCode.POLICY_VIOLATION

    def __init__(self, model: str, version: int, stage: Stage, unmet: list[Unmet]) -> None:
        listed = "; ".join(f"{u.condition}: {u.actual} (required {u.required})" for u in unmet)
        super().__init__(
            f"{model} version {version} may not move to {stage}: {listed}", field="stage"
        )
        self.unmet = unmet


async def set_policy(
    session: AsyncSession,
    *,
    model: RegisteredModel,
    stage: Stage,
    required_checks: Sequence[str],
    metric_rules: Sequence[tuple[str, CompareOp, float]],
    must_beat_production: tuple[str, Goal] | None,
    actor: str,
) -> PromotionPolicy:
    """Replace the policy for moves of `model` into `stage`."""
    if stage not in POLICY_STAGES:
        raise ValidationError("stage", "policies apply to moves into STAGING or PRODUCTION")
    for check in required_checks:
        check_name("requiredChecks", check, CHECK_LIMIT)
    for metric, _, _ in metric_rules:
        check_key("metricRules.metric", metric, KEY_LIMIT)
    values = {
        "model_id": model.id,
        "stage": stage.value,
        "required_checks": list(dict.fromkeys(required_checks)),
        "metric_rules": [{"metric": m, "op": op.value, "value": v} for m, op, v in metric_rules],
        "must_beat_production": (
            {"metric": must_beat_production[0], "goal": must_beat_production[1].value}
            if must_beat_production
            else None
        ),
        "actor": actor,
        "updated_at": utcnow(),
    }
    stmt = upsert_insert(session, PromotionPolicy.__table__).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "stage"],
        set_={k: stmt.excluded[k] for k in values if k not in ("model_id", "stage")},
    )
    await session.execute(stmt)
    await record_event(
        session,
        type=EventType.MODEL_UPDATED,
        actor=actor,
        model=model.name,
        reason=f"promotion policy for {stage.value} set",
        payload={"promotionPolicy": {k: v for k, v in values.items() if k != "updated_at"}},
    )
    return (
        await session.execute(
            select(PromotionPolicy)
            .where(PromotionPolicy.model_id == model.id, PromotionPolicy.stage == stage.value)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def policies(session: AsyncSession, *, model_id: int) -> list[PromotionPolicy]:
    stmt = select(PromotionPolicy).where(PromotionPolicy.model_id == model_id)
    return list((await session.execute(stmt.order_by(PromotionPolicy.stage))).scalars())


async def _latest_values(session: AsyncSession, run_id: str | None) -> dict[str, float | None]:
    if run_id is None:
        return {}
    rows = await session.execute(
        select(LatestMetric.key, LatestMetric.value).where(LatestMetric.run_id == run_id)
    )
    return dict(rows.all())  # type: ignore[arg-type]


def snapshot(policy: PromotionPolicy) -> dict[str, Any]:
    """The policy's conditions as plain values: what a transition records it passed."""
    return {
        "stage": policy.stage,
        "requiredChecks": list(policy.required_checks),
        "metricRules": list(policy.metric_rules),
        "mustBeatProduction": policy.must_beat_production,
    }


async def evaluate(
    session: AsyncSession, *, model: RegisteredModel, version: ModelVersion, stage: Stage
) -> tuple[dict[str, Any] | None, list[Unmet]]:
    """The policy for `stage` (None if there is none) and every condition of it that
    `version` does not meet."""
    policy = (
        await session.execute(
            select(PromotionPolicy).where(
                PromotionPolicy.model_id == model.id, PromotionPolicy.stage == stage.value
            )
        )
    ).scalar_one_or_none()
    if policy is None:
        return None, []
    unmet: list[Unmet] = []
    results: dict[str, str] = {}
    for v in (
        await session.execute(
            select(Validation).where(Validation.version_id == version.id).order_by(Validation.id)
        )
    ).scalars():
        results[v.check] = v.status
    for check in policy.required_checks:
        if results.get(check) != ValidationStatus.PASSED:
            unmet.append(Unmet(f"check {check}", results.get(check, "not reported"), "PASSED"))
    values = await _latest_values(session, version.run_id)
    for rule in policy.metric_rules:
        actual = values.get(rule["metric"])
        op = CompareOp(rule["op"])
        if actual is None or not compare_values(actual, op, rule["value"]):
            unmet.append(
                Unmet(f"metric {rule['metric']}", _fmt(actual), f"{op.value} {rule['value']}")
            )
    beat = policy.must_beat_production
    if beat:
        unmet += await _beats_production(session, model, version, beat, values)
    return snapshot(policy), unmet


async def _beats_production(
    session: AsyncSession,
    model: RegisteredModel,
    version: ModelVersion,
    beat: dict[str, Any],
    values: dict[str, float | None],
) -> list[Unmet]:
    production = (
        await session.execute(
            select(ModelVersion).where(
                ModelVersion.model_id == model.id,
                ModelVersion.stage == Stage.PRODUCTION,
                ModelVersion.id != version.id,
            )
        )
    ).scalar_one_or_none()
    if production is None:
        return []
    metric, goal = beat["metric"], Goal(beat["goal"])
    theirs = (await _latest_values(session, production.run_id)).get(metric)
    ours = values.get(metric)
    if theirs is None:
        return []
    better = ours is not None and (ours > theirs if goal == Goal.MAXIMIZE else ours < theirs)
    if better:
        return []
    word = "above" if goal == Goal.MAXIMIZE else "below"
    return [
        Unmet(
            f"beats production version {production.version} on {metric}",
            _fmt(ours),
            f"{word} {theirs}",
        )
    ]


def _fmt(value: float | None) -> str:
    return "missing" if value is None else repr(value)
