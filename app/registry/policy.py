"""Promotion policies: the conditions a version must meet to move into a stage.

A policy's conditions have one shape, `Conditions`, with one JSON spelling (`to_json` /
`from_json`): the policy row's columns hold its parts, and a move's audit row and events
hold the whole of it (`Checked`: the conditions and what the move did not meet)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.db.dialect import core_table, upsert_insert
from app.db.types import utcnow
from app.errors import DomainError, ErrorCode, ValidationError, check_key, check_name
from app.events.models import EventType
from app.events.service import record_event
from app.registry import catalog
from app.registry.models import (
    CHECK_LIMIT,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    Validation,
    ValidationStatus,
)
from app.registry.stages import ALLOWED_MOVES, Stage, is_allowed
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


@dataclass(frozen=True)
class MetricRule:
    """The run's latest value of `metric` compared with `value` must hold."""

    metric: str
    op: CompareOp
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op.value, "value": self.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MetricRule":
        return cls(metric=data["metric"], op=CompareOp(data["op"]), value=data["value"])


@dataclass(frozen=True)
class BeatProduction:
    """The version's run must beat the PRODUCTION version's run on `metric`."""

    metric: str
    goal: Goal

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "goal": self.goal.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BeatProduction":
        return cls(metric=data["metric"], goal=Goal(data["goal"]))


@dataclass(frozen=True)
class Conditions:
    """What a version must satisfy to move into `stage`."""

    stage: Stage
    required_checks: tuple[str, ...] = ()
    metric_rules: tuple[MetricRule, ...] = ()
    must_beat_production: BeatProduction | None = None

    def to_json(self) -> dict[str, Any]:
        beat = self.must_beat_production
        return {
            "stage": self.stage.value,
            "requiredChecks": list(self.required_checks),
            "metricRules": [r.to_json() for r in self.metric_rules],
            "mustBeatProduction": beat.to_json() if beat else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Conditions":
        beat = data.get("mustBeatProduction")
        return cls(
            stage=Stage(data["stage"]),
            required_checks=tuple(data.get("requiredChecks", ())),
            metric_rules=tuple(MetricRule.from_json(r) for r in data.get("metricRules", ())),
            must_beat_production=BeatProduction.from_json(beat) if beat else None,
        )

    @classmethod
    def of(cls, row: PromotionPolicy) -> "Conditions":
        """The conditions a policy row holds (its columns are `to_json`'s parts)."""
        return cls.from_json(
            {
                "stage": row.stage,
                "requiredChecks": row.required_checks,
                "metricRules": row.metric_rules,
                "mustBeatProduction": row.must_beat_production,
            }
        )


@dataclass(frozen=True)
class Checked:
    """The policy a move was checked against and what of it the version did not meet: a
    move passes every condition, except a rollback, which goes ahead and says so."""

    conditions: Conditions
    unmet: tuple[Unmet, ...] = field(default=())

    @property
    def bypassed(self) -> bool:
        return bool(self.unmet)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.conditions.to_json(),
            "bypassed": self.bypassed,
            "unmet": [
                {"condition": u.condition, "actual": u.actual, "required": u.required}
                for u in self.unmet
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Checked":
        return cls(
            conditions=Conditions.from_json(data),
            unmet=tuple(Unmet(**u) for u in data.get("unmet", ())),
        )


async def set_promotion_policy(
    session: AsyncSession,
    *,
    model: str,
    stage: Stage,
    required_checks: Sequence[str] = (),
    metric_rules: Sequence[tuple[str, CompareOp, float]] = (),
    must_beat_production: tuple[str, Goal] | None = None,
    actor: str,
) -> tuple[RegisteredModel, PromotionPolicy]:
    """Replace what a version of `model` must satisfy to move into `stage`; the model (as
    locked) and the stored policy."""
    registered = await catalog.require_model(session, name=model, lock=True)
    if stage not in POLICY_STAGES:
        raise ValidationError("stage", "policies apply to moves into STAGING or PRODUCTION")
    for check in required_checks:
        check_name("requiredChecks", check, CHECK_LIMIT)
    for metric, _, _ in metric_rules:
        check_key("metricRules.metric", metric, KEY_LIMIT)
    conditions = Conditions(
        stage=stage,
        required_checks=tuple(dict.fromkeys(required_checks)),
        metric_rules=tuple(MetricRule(m, op, v) for m, op, v in metric_rules),
        must_beat_production=BeatProduction(*must_beat_production)
        if must_beat_production
        else None,
    )
    stored = conditions.to_json()
    values = {
        "model_id": registered.id,
        "stage": stage,
        "required_checks": stored["requiredChecks"],
        "metric_rules": stored["metricRules"],
        "must_beat_production": stored["mustBeatProduction"],
        "actor": actor,
        "updated_at": utcnow(),
    }
    stmt = upsert_insert(session, core_table(PromotionPolicy)).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_id", "stage"],
        set_={k: stmt.excluded[k] for k in values if k not in ("model_id", "stage")},
    )
    await session.execute(stmt)
    await record_event(
        session,
        type=EventType.MODEL_UPDATED,
        actor=actor,
        model=registered.name,
        reason=f"promotion policy for {stage.value} set",
        payload={"promotionPolicy": stored},
    )
    found = (
        await session.execute(
            select(PromotionPolicy)
            .where(
                col(PromotionPolicy.model_id) == registered.id,
                col(PromotionPolicy.stage) == stage,
            )
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return registered, found


async def policies(session: AsyncSession, *, model_id: int) -> list[PromotionPolicy]:
    """The model's policies, by stage."""
    stmt = select(PromotionPolicy).where(col(PromotionPolicy.model_id) == model_id)
    return list((await session.execute(stmt.order_by(col(PromotionPolicy.stage)))).scalars())


async def check_promotion(
    session: AsyncSession, *, model: str, version: int, stage: Stage
) -> list[Unmet]:
    """What would block moving the version into `stage` now (the lifecycle and the
    policy), without moving anything: [] means the move would go through."""
    registered = await catalog.require_model(session, name=model)
    found = await catalog.require_version(session, model=registered, version=version)
    if not is_allowed(found.stage, stage):
        allowed = ", ".join(s.value for s in ALLOWED_MOVES[found.stage])
        return [Unmet(f"move from {found.stage}", stage.value, f"one of {allowed}")]
    if stage not in POLICY_STAGES:
        return []
    production = await catalog.production_version(session, model=registered)
    checked = await evaluate(
        session, model=registered, version=found, stage=stage, production=production
    )
    return list(checked.unmet) if checked else []


async def enforce(
    session: AsyncSession,
    *,
    model: RegisteredModel,
    version: ModelVersion,
    stage: Stage,
    production: ModelVersion | None,
) -> Checked | None:
    """The policy the move into `stage` passes (None if none applies); PolicyViolationError
    with every unmet condition otherwise."""
    if stage not in POLICY_STAGES:
        return None
    checked = await evaluate(
        session, model=model, version=version, stage=stage, production=production
    )
    if checked is not None and checked.unmet:
        raise PolicyViolationError(model.name, version.version, stage, list(checked.unmet))
    return checked


async def evaluate(
    session: AsyncSession,
    *,
    model: RegisteredModel,
    version: ModelVersion,
    stage: Stage,
    production: ModelVersion | None,
) -> Checked | None:
    """The policy for `stage` (None if there is none) with every condition of it that
    `version` does not meet; `production` is the model's PRODUCTION version, read by the
    caller under the model's lock."""
    row = (
        await session.execute(
            select(PromotionPolicy).where(
                col(PromotionPolicy.model_id) == model.id, col(PromotionPolicy.stage) == stage
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    conditions = Conditions.of(row)
    unmet: list[Unmet] = []
    if conditions.required_checks:
        results: dict[str, str] = {}
        for v in (
            await session.execute(
                select(Validation)
                .where(col(Validation.version_id) == version.id)
                .order_by(col(Validation.id))
            )
        ).scalars():
            results[v.check] = v.status
        for check in conditions.required_checks:
            if results.get(check) != ValidationStatus.PASSED:
                unmet.append(Unmet(f"check {check}", results.get(check, "not reported"), "PASSED"))
    values = await _latest_values(session, version.run_id)
    for rule in conditions.metric_rules:
        actual = values.get(rule.metric)
        if actual is None or not compare_values(actual, rule.op, rule.value):
            unmet.append(
                Unmet(f"metric {rule.metric}", _fmt(actual), f"{rule.op.value} {rule.value}")
            )
    beat = conditions.must_beat_production
    if beat and production is not None and production.id != version.id:
        unmet += await _beats_production(session, production, beat, values)
    return Checked(conditions=conditions, unmet=tuple(unmet))


async def _latest_values(session: AsyncSession, run_id: str | None) -> dict[str, float]:
    if run_id is None:
        return {}
    rows = await session.execute(
        select(LatestMetric.key, LatestMetric.value).where(col(LatestMetric.run_id) == run_id)
    )
    return {key: value for key, value in rows.all()}


async def _beats_production(
    session: AsyncSession,
    production: ModelVersion,
    beat: BeatProduction,
    values: dict[str, float],
) -> list[Unmet]:
    theirs = (await _latest_values(session, production.run_id)).get(beat.metric)
    ours = values.get(beat.metric)
    if theirs is None:
        return []
    maximize = beat.goal == Goal.MAXIMIZE
    if ours is not None and (ours > theirs if maximize else ours < theirs):
        return []
    return [
        Unmet(
            f"beats production version {production.version} on {beat.metric}",
            _fmt(ours),
            f"{'above' if maximize else 'below'} {theirs}",
        )
    ]


def _fmt(value: float | None) -> str:
    return "missing" if value is None else repr(value)
