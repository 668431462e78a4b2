"""GraphQL types of the registry: RegisteredModel, ModelVersion, aliases, transitions."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.db.types import stored
from app.graphql.artifacts import loaders as artifact_loaders
from app.graphql.artifacts import types as artifact_types
from app.graphql.context import Ctx
from app.graphql.errors import Error, Refusal
from app.graphql.inputs import KeyValue, from_items
from app.graphql.limits import charged
from app.graphql.pagination import Connection, to_connection
from app.graphql.registry import loaders
from app.graphql.tracking import loaders as tracking_loaders
from app.graphql.tracking import types as tracking_types
from app.registry import errors as registry_errors
from app.registry import models, policy
from app.registry import reads as registry_reads
from app.registry.idempotency import AsOf
from app.registry.stages import Stage
from app.tracking.search import CompareOp, Goal

if TYPE_CHECKING:
    from app.graphql.tracking.types import Run

strawberry.enum(
    Stage,
    description="Lifecycle stage. Allowed moves: DEVELOPMENT→STAGING, STAGING→PRODUCTION, "
    "STAGING→DEVELOPMENT, any→ARCHIVED, ARCHIVED→STAGING.",
)


@strawberry.type
class ValidationMetric:
    key: str
    value: float


strawberry.enum(models.ValidationStatus, description="A CI check's result.")


@strawberry.type(description="One reported result of a named check on a version.")
class Validation:
    check: str
    status: models.ValidationStatus
    details_url: str | None
    actor: str
    at: datetime
    metric_map: strawberry.Private[dict[str, float]]

    @classmethod
    def of(cls, v: models.Validation) -> "Validation":
        return cls(
            check=v.check,
            status=v.status,
            details_url=v.details_url,
            actor=v.actor,
            at=v.at,
            metric_map=v.metrics or {},
        )

    @strawberry.field(description="Numbers the check reported, by name.")
    def metrics(self) -> list[ValidationMetric]:
        return charged(
            [ValidationMetric(key=k, value=v) for k, v in sorted(self.metric_map.items())]
        )


RunRef = Annotated["Run", strawberry.lazy("app.graphql.tracking.types")]


@strawberry.type
class MetricRule:
    metric: str
    op: CompareOp
    value: float


@strawberry.type
class BeatProduction:
    metric: str
    goal: Goal


def metric_rules(conditions: policy.Conditions) -> list[MetricRule]:
    return [MetricRule(metric=r.metric, op=r.op, value=r.value) for r in conditions.metric_rules]


def beat_production(conditions: policy.Conditions) -> BeatProduction | None:
    beat = conditions.must_beat_production
    return BeatProduction(metric=beat.metric, goal=beat.goal) if beat else None


@strawberry.type(
    description="The promotion policy a move was checked against: its conditions then. A "
    "move passes it, except a rollback, which goes ahead regardless and records what it bypassed."
)
class PassedPolicy:
    required_checks: list[str]
    metric_rules: list[MetricRule]
    must_beat_production: BeatProduction | None
    bypassed: bool = strawberry.field(
        description="True when a rollback restored a version that does not meet the policy."
    )
    unmet: list["UnmetCondition"] = strawberry.field(
        description="The conditions a rollback bypassed (empty for every other move)."
    )

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> "PassedPolicy | None":
        """From a move's audit row or event (`policy.Checked`'s JSON), if a policy applied."""
        if not stored:
            return None
        checked = policy.Checked.from_json(stored)
        conditions = checked.conditions
        return cls(
            required_checks=list(conditions.required_checks),
            metric_rules=metric_rules(conditions),
            must_beat_production=beat_production(conditions),
            bypassed=checked.bypassed,
            unmet=unmet_conditions(list(checked.unmet)),
        )


@strawberry.type(description="One recorded stage move: the audit trail.")
class StageTransition:
    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str | None
    rollback: bool = strawberry.field(
        description="True for the move a rollback made to restore a version."
    )
    policy: PassedPolicy | None = strawberry.field(
        description="The promotion policy this move passed, when one applied."
    )
    at: datetime
    version_id: strawberry.Private[int]
    as_of: strawberry.Private[AsOf | None] = None

    @classmethod
    def of(cls, t: models.StageTransition, as_of: AsOf | None = None) -> "StageTransition":
        return cls(
            from_stage=t.from_stage,
            to_stage=t.to_stage,
            actor=t.actor,
            reason=t.reason,
            rollback=t.rollback,
            policy=PassedPolicy.of(t.policy),
            at=t.at,
            version_id=t.version_id,
            as_of=as_of,
        )

    @strawberry.field
    async def model_version(self, info: Ctx) -> "ModelVersion":
        if self.as_of is not None and self.version_id in self.as_of.versions:
            return ModelVersion.of(self.as_of.versions[self.version_id], self.as_of)
        return ModelVersion.of(await loaders.version_by_id(info.context).load(self.version_id))


@strawberry.type
class ModelVersion:
    version: int = strawberry.field(description="1, 2, 3… per model.")
    stage: Stage
    source: str | None
    digest: str | None = strawberry.field(
        description="SHA-256 over the version's file set (lines `<path>\\t<digest>\\t<size>\\n` "
        "sorted by path): equal for versions with identical files. Null only for versions "
        "registered before versions had files."
    )
    description: str | None
    run_link: str | None = strawberry.field(
        description="A link to the run that made it, where it was tracked (MLflow's run_link)."
    )
    logged_model_id: str | None = strawberry.field(
        description="The MLflow 3 logged model it was registered from (`models:/<id>`), if any."
    )
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    model_id: strawberry.Private[int]
    run_id: strawberry.Private[str | None]
    tag_map: strawberry.Private[dict[str, str]]
    # Set on a keyed mutation's answer: this version and its history as that answer saw them.
    as_of: strawberry.Private[AsOf | None] = None

    @classmethod
    def of(cls, v: models.ModelVersion, as_of: AsOf | None = None) -> "ModelVersion":
        if as_of is not None:
            v = as_of.versions.get(stored(v.id), v)
        return cls(
            version=v.version,
            stage=v.stage,
            source=v.source,
            digest=v.digest,
            description=v.description,
            run_link=v.run_link,
            logged_model_id=v.logged_model_id,
            created_at=v.created_at,
            updated_at=v.updated_at,
            pk=stored(v.id),
            model_id=v.model_id,
            run_id=v.run_id,
            tag_map=v.tags or {},
            as_of=as_of,
        )

    @strawberry.field
    async def model(self, info: Ctx) -> "RegisteredModel":
        return RegisteredModel.of(await loaders.model_by_id(info.context).load(self.model_id))

    @strawberry.field(description="The run this version was made from, if any.")
    async def run(self, info: Ctx) -> RunRef | None:
        if self.run_id is None:
            return None
        run = await tracking_loaders.run_by_id(info.context).load(self.run_id)
        return tracking_types.Run.of(run) if run else None

    @strawberry.field
    def tags(self) -> list[KeyValue]:
        return from_items(self.tag_map)

    @strawberry.field(description="The version's files, by path: fixed at registration.")
    async def files(self, info: Ctx) -> list[artifact_types.VersionFile]:
        found = await artifact_loaders.files_by_version(info.context).load(self.pk)
        return charged([artifact_types.VersionFile.of(info, f) for f in found])

    @strawberry.field
    async def aliases(self, info: Ctx) -> list[str]:
        if self.as_of is not None:
            return charged(list(self.as_of.aliases.get(self.pk, [])))
        return charged(await loaders.aliases_by_version(info.context).load(self.pk))

    async def _validations(self, info: Ctx) -> list[models.Validation]:
        history = await loaders.validations_by_version(info.context).load(self.pk)
        if self.as_of is not None:
            return [v for v in history if v.id <= self.as_of.last_validation]
        return history

    @strawberry.field(description="The latest result of each check, by check name.")
    async def validations(self, info: Ctx) -> list[Validation]:
        history = await self._validations(info)
        return charged([Validation.of(v) for v in registry_reads.latest_per_check(history)])

    @strawberry.field(description="Every reported result (of one check, if given), newest first.")
    async def validation_history(self, info: Ctx, check: str | None = None) -> list[Validation]:
        history = await self._validations(info)
        return charged([Validation.of(v) for v in history if check is None or v.check == check])

    @strawberry.field(description="This version's stage moves, newest first.")
    async def transitions(self, info: Ctx) -> list[StageTransition]:
        found = await loaders.transitions_by_version(info.context).load(self.pk)
        if self.as_of is not None:
            found = [t for t in found if t.id <= self.as_of.last_transition]
        return charged([StageTransition.of(t, self.as_of) for t in found])


@strawberry.type(description="An alias and the version it points at.")
class ModelAlias:
    alias: str
    version: ModelVersion


@strawberry.type
class RegisteredModel:
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    tag_map: strawberry.Private[dict[str, str]]

    @classmethod
    def of(cls, m: models.RegisteredModel) -> "RegisteredModel":
        return cls(
            name=m.name,
            description=m.description,
            created_at=m.created_at,
            updated_at=m.updated_at,
            pk=stored(m.id),
            tag_map=m.tags or {},
        )

    @strawberry.field
    def tags(self) -> list[KeyValue]:
        return from_items(self.tag_map)

    @strawberry.field(description="Versions, newest first; only those in `stage` if given.")
    async def versions(
        self,
        info: Ctx,
        stage: Stage | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ModelVersion]:
        size = info.context.page_size(first)
        page = await loaders.version_page(info.context).load((self.pk, stage, size, after))
        return to_connection(page, ModelVersion.of)

    @strawberry.field(description="The version in PRODUCTION, if any (at most one, by constraint).")
    async def production_version(self, info: Ctx) -> ModelVersion | None:
        found = await loaders.latest_version(info.context).load((self.pk, Stage.PRODUCTION))
        return ModelVersion.of(found) if found else None

    @strawberry.field(description="The highest-numbered version (in `stage`, if given).")
    async def latest_version(self, info: Ctx, stage: Stage | None = None) -> ModelVersion | None:
        found = await loaders.latest_version(info.context).load((self.pk, stage))
        return ModelVersion.of(found) if found else None

    @strawberry.field
    async def aliases(self, info: Ctx) -> list[ModelAlias]:
        found = await loaders.aliases_by_model(info.context).load(self.pk)
        return charged([ModelAlias(alias=a, version=ModelVersion.of(v)) for a, v in found])

    @strawberry.field(description="What versions must satisfy to move into each stage.")
    async def promotion_policy(self, info: Ctx) -> list["PromotionPolicy"]:
        async with info.context.read() as session:
            found = await registry_reads.promotion_policies(session, model_id=self.pk)
        return [PromotionPolicy.of(p) for p in found]

    @strawberry.field(
        description="The version that was in `stage`, or that `alias` pointed at, at time "
        "`at` (give exactly one of stage and alias): what was in production at 14:05?"
    )
    async def version_at(
        self, info: Ctx, at: datetime, stage: Stage | None = None, alias: str | None = None
    ) -> ModelVersion | None:
        async with info.context.read() as session:
            found = await registry_reads.version_at(
                session, model_id=self.pk, at=at, stage=stage, alias=alias
            )
        return ModelVersion.of(found) if found else None

    @strawberry.field(
        description="Every stage move of every version, newest first: the audit trail."
    )
    async def transitions(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> Connection[StageTransition]:
        size = info.context.page_size(first)
        page = await loaders.transition_page(info.context).load((self.pk, size, after))
        return to_connection(page, StageTransition.of)


@strawberry.type(description="The lifecycle does not allow this move.")
class InvalidTransition(Error):
    from_stage: Stage
    to_stage: Stage
    allowed_moves: list[Stage] = strawberry.field(description="Stages reachable from fromStage.")


@strawberry.type(description="There is no earlier PRODUCTION version to return to.")
class NoRollbackTarget(Error):
    field: str


@strawberry.type(description="A condition a version does not meet.")
class UnmetCondition:
    condition: str
    actual: str | None
    required: str


@strawberry.type(description="The model's promotion policy refuses this move; nothing changed.")
class PolicyViolation(Error):
    field: str
    unmet: list[UnmetCondition] = strawberry.field(description="Every unmet condition.")


@strawberry.type(description="What would block a move, without moving anything.")
class PromotionCheck:
    unmet: list[UnmetCondition]

    @strawberry.field(description="True when the move would go through now.")
    def allowed(self) -> bool:
        return not self.unmet


def unmet_conditions(unmet: list[policy.Unmet]) -> list[UnmetCondition]:
    return [
        UnmetCondition(condition=u.condition, actual=u.actual, required=u.required) for u in unmet
    ]


@strawberry.type(description="What a version must satisfy to move into `stage`.")
class PromotionPolicy:
    stage: Stage
    required_checks: list[str]
    metric_rules: list[MetricRule]
    must_beat_production: BeatProduction | None
    updated_at: datetime

    @classmethod
    def of(cls, p: models.PromotionPolicy) -> "PromotionPolicy":
        conditions = policy.Conditions.of(p)
        return cls(
            stage=conditions.stage,
            required_checks=list(conditions.required_checks),
            metric_rules=metric_rules(conditions),
            must_beat_production=beat_production(conditions),
            updated_at=p.updated_at,
        )


HANDLERS: list[Refusal[Any, Any]] = [
    Refusal(
        registry_errors.InvalidTransitionError,
        InvalidTransition,
        lambda e: InvalidTransition(
            message=e.message,
            code=e.code,
            from_stage=e.from_stage,
            to_stage=e.to_stage,
            allowed_moves=e.allowed,
        ),
    ),
    Refusal(
        registry_errors.NoRollbackTargetError,
        NoRollbackTarget,
        lambda e: NoRollbackTarget(message=e.message, code=e.code, field="model"),
    ),
    Refusal(
        policy.PolicyViolationError,
        PolicyViolation,
        lambda e: PolicyViolation(
            message=e.message, code=e.code, field="stage", unmet=unmet_conditions(e.unmet)
        ),
    ),
]
