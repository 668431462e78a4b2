from typing import Annotated

import strawberry

from app.graphql.context import Ctx
from app.graphql.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.registry.types import (
    InvalidTransition,
    ModelVersion,
    NoRollbackTarget,
    PolicyViolation,
    PromotionPolicy,
    RegisteredModel,
    StageTransition,
    UnmetCondition,
    Validation,
    unmet_conditions,
)
from app.graphql.tracking.types import Run, RunFilter, domain_filter
from app.registry import catalog, idempotency, lifecycle, models, policy, validations
from app.registry.models import ValidationStatus
from app.registry.stages import Stage
from app.tracking import search
from app.tracking.search import CompareOp, Goal

IDEMPOTENCY = (
    "Retry-safe: a repeat with the same key and input returns the first answer and changes "
    "nothing; the same key with another input is a Conflict. Keys are kept 48 hours. The "
    "answer is the first one as it was: its versions' fields, stage history, validations and "
    "aliases as of then (a model or run reached from them is read as it is now)."
)


@strawberry.input
class RegisterModelVersionInput:
    model: str = strawberry.field(description="Model name; registered if missing.")
    run_id: strawberry.ID | None = None
    source: str | None = strawberry.field(default=None, description="Where the artifacts are.")
    description: str | None = None
    tags: list[KeyValueInput] | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class RegisterModelVersionSuccess:
    model_version: ModelVersion


RegisterModelVersionPayload = Annotated[
    RegisterModelVersionSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("RegisterModelVersionPayload"),
]


EXPECTED_PRODUCTION = (
    "Compare-and-set: the version number you saw in PRODUCTION (0: none). If the model "
    "moved on since, the answer is a Conflict with the current state and nothing changes."
)


@strawberry.input
class TransitionModelVersionInput:
    model: str
    version: int
    stage: Stage
    reason: str | None = None
    expected_production_version: int | None = strawberry.field(
        default=None, description=EXPECTED_PRODUCTION
    )
    expected_stage: Stage | None = strawberry.field(
        default=None, description="Compare-and-set: the stage you saw this version in."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class TransitionModelVersionSuccess:
    model_version: ModelVersion
    transitions: list[StageTransition] = strawberry.field(
        description="Every move made, in order (a move to PRODUCTION archives the version it replaces)."
    )


TransitionModelVersionPayload = Annotated[
    TransitionModelVersionSuccess
    | NotFound
    | InvalidTransition
    | PolicyViolation
    | InvalidInput
    | Conflict
    | PermissionDenied,
    strawberry.union("TransitionModelVersionPayload"),
]


@strawberry.input
class PromoteBestRunInput:
    experiment: str
    metric: str
    model: str
    goal: search.Goal = search.Goal.MAXIMIZE
    aggregate: search.Aggregate = search.Aggregate.LAST
    filter: RunFilter | None = None
    stage: Stage = strawberry.field(
        default=Stage.STAGING, description="STAGING or PRODUCTION; a version already there stays."
    )
    reason: str | None = None
    expected_production_version: int | None = strawberry.field(
        default=None, description=EXPECTED_PRODUCTION
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class PromoteBestRunSuccess:
    run: Run
    model_version: ModelVersion
    created: bool = strawberry.field(
        description="False when the run's existing version was reused."
    )
    transitions: list[StageTransition]


PromoteBestRunPayload = Annotated[
    PromoteBestRunSuccess
    | NotFound
    | InvalidTransition
    | PolicyViolation
    | InvalidInput
    | Conflict
    | PermissionDenied,
    strawberry.union("PromoteBestRunPayload"),
]


@strawberry.input
class RollbackModelInput:
    model: str
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class RollbackModelSuccess:
    model_version: ModelVersion = strawberry.field(description="The version back in PRODUCTION.")
    transitions: list[StageTransition]
    bypassed_conditions: list[UnmetCondition] = strawberry.field(
        description="The model's PRODUCTION policy conditions the restored version does not "
        "meet. A rollback goes ahead regardless (it is the emergency exit); these are also "
        "recorded in the restoring move's `policy` and its STAGE_CHANGED event."
    )


RollbackModelPayload = Annotated[
    RollbackModelSuccess | NotFound | NoRollbackTarget | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("RollbackModelPayload"),
]


@strawberry.input
class SetModelAliasInput:
    model: str
    alias: str
    version: int
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class SetModelAliasSuccess:
    alias: str
    model_version: ModelVersion


SetModelAliasPayload = Annotated[
    SetModelAliasSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("SetModelAliasPayload"),
]


@strawberry.input
class DeleteModelAliasInput:
    model: str
    alias: str


@strawberry.type
class DeleteModelAliasSuccess:
    alias: str
    model_version: ModelVersion = strawberry.field(description="The version it pointed at.")


DeleteModelAliasPayload = Annotated[
    DeleteModelAliasSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("DeleteModelAliasPayload"),
]


@strawberry.input
class UpdateModelInput:
    name: str
    description: str | None = None
    set_tags: list[KeyValueInput] | None = None
    remove_tags: list[str] | None = None


@strawberry.type
class UpdateModelSuccess:
    model: RegisteredModel


UpdateModelPayload = Annotated[
    UpdateModelSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("UpdateModelPayload"),
]


@strawberry.input
class UpdateModelVersionInput:
    model: str
    version: int
    description: str | None = None
    set_tags: list[KeyValueInput] | None = None
    remove_tags: list[str] | None = None


@strawberry.type
class UpdateModelVersionSuccess:
    model_version: ModelVersion


UpdateModelVersionPayload = Annotated[
    UpdateModelVersionSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("UpdateModelVersionPayload"),
]


@strawberry.input
class ValidationMetricInput:
    key: str
    value: float


@strawberry.input
class RecordValidationInput:
    model: str
    version: int
    check: str = strawberry.field(description="The check's name, e.g. integration-tests.")
    status: ValidationStatus
    details_url: str | None = None
    metrics: list[ValidationMetricInput] | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class RecordValidationSuccess:
    validation: Validation
    model_version: ModelVersion


RecordValidationPayload = Annotated[
    RecordValidationSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("RecordValidationPayload"),
]


@strawberry.input
class MetricRuleInput:
    metric: str
    op: CompareOp
    value: float


@strawberry.input
class BeatProductionInput:
    metric: str
    goal: Goal = Goal.MAXIMIZE


@strawberry.input
class SetPromotionPolicyInput:
    model: str
    stage: Stage = strawberry.field(description="STAGING or PRODUCTION.")
    required_checks: list[str] | None = strawberry.field(
        default=None, description="Checks whose latest result must be PASSED."
    )
    metric_rules: list[MetricRuleInput] | None = strawberry.field(
        default=None, description="Thresholds on the version's run's latest metric values."
    )
    must_beat_production: BeatProductionInput | None = strawberry.field(
        default=None, description="Beat the PRODUCTION version's run on this metric."
    )


@strawberry.type
class SetPromotionPolicySuccess:
    model: RegisteredModel
    policy: PromotionPolicy


SetPromotionPolicyPayload = Annotated[
    SetPromotionPolicySuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("SetPromotionPolicyPayload"),
]


@strawberry.type
class RegistryMutation:
    @strawberry.mutation(
        description="A new DEVELOPMENT version, numbered next; the model is registered if missing."
    )
    async def register_model_version(
        self, info: Ctx, input: RegisterModelVersionInput
    ) -> RegisterModelVersionPayload:
        async with info.context.unit_of_work() as session:
            version = await catalog.register_version(
                session,
                model=input.model,
                run_id=str(input.run_id) if input.run_id is not None else None,
                source=input.source,
                description=input.description,
                tags=to_dict("tags", input.tags),
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            as_of = idempotency.answer_as_of(session)
        return RegisterModelVersionSuccess(model_version=ModelVersion.of(version, as_of))

    @strawberry.mutation(description="Move a version along the lifecycle.")
    async def transition_model_version(
        self, info: Ctx, input: TransitionModelVersionInput
    ) -> TransitionModelVersionPayload:
        async with info.context.unit_of_work() as session:
            result = await lifecycle.transition_version(
                session,
                model=input.model,
                version=input.version,
                stage=input.stage,
                reason=input.reason,
                expected_production_version=input.expected_production_version,
                expected_stage=input.expected_stage,
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            as_of = idempotency.answer_as_of(session)
        return TransitionModelVersionSuccess(
            model_version=ModelVersion.of(result.version, as_of),
            transitions=[StageTransition.of(t, as_of) for t in result.transitions],
        )

    @strawberry.mutation(
        description="In one transaction: find the best run, register it (or reuse its version) "
        "and move it to `stage`. The one call a CI job needs."
    )
    async def promote_best_run(
        self, info: Ctx, input: PromoteBestRunInput
    ) -> PromoteBestRunPayload:
        async with info.context.unit_of_work() as session:
            result = await lifecycle.promote_best_run(
                session,
                experiment=input.experiment,
                metric=input.metric,
                model=input.model,
                goal=input.goal,
                aggregate=input.aggregate,
                run_filter=domain_filter(input.filter),
                stage=input.stage,
                reason=input.reason,
                expected_production_version=input.expected_production_version,
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            as_of = idempotency.answer_as_of(session)
        return PromoteBestRunSuccess(
            run=Run.of(as_of.run if as_of is not None and as_of.run else result.run),
            model_version=ModelVersion.of(result.version, as_of),
            created=result.created,
            transitions=[StageTransition.of(t, as_of) for t in result.transitions],
        )

    @strawberry.mutation(
        description="Archive the PRODUCTION version and restore the one in PRODUCTION before it."
    )
    async def rollback_model(self, info: Ctx, input: RollbackModelInput) -> RollbackModelPayload:
        async with info.context.unit_of_work() as session:
            result = await lifecycle.rollback_model(
                session,
                model=input.model,
                reason=input.reason,
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            as_of = idempotency.answer_as_of(session)
        return RollbackModelSuccess(
            model_version=ModelVersion.of(result.version, as_of),
            transitions=[StageTransition.of(t, as_of) for t in result.transitions],
            bypassed_conditions=unmet_conditions(result.bypassed),
        )

    @strawberry.mutation(description="Point an alias at a version, moving it if it exists.")
    async def set_model_alias(self, info: Ctx, input: SetModelAliasInput) -> SetModelAliasPayload:
        async with info.context.unit_of_work() as session:
            version = await catalog.set_alias(
                session,
                model=input.model,
                alias=input.alias,
                version=input.version,
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            as_of = idempotency.answer_as_of(session)
        return SetModelAliasSuccess(
            alias=input.alias, model_version=ModelVersion.of(version, as_of)
        )

    @strawberry.mutation
    async def delete_model_alias(
        self, info: Ctx, input: DeleteModelAliasInput
    ) -> DeleteModelAliasPayload:
        async with info.context.unit_of_work() as session:
            version = await catalog.delete_alias(
                session, model=input.model, alias=input.alias, actor=info.context.actor
            )
        return DeleteModelAliasSuccess(alias=input.alias, model_version=ModelVersion.of(version))

    @strawberry.mutation(
        description="Record a CI check's result on a version; watchers get VALIDATION_RECORDED."
    )
    async def record_validation(
        self, info: Ctx, input: RecordValidationInput
    ) -> RecordValidationPayload:
        metrics = to_dict("metrics", input.metrics)
        async with info.context.unit_of_work() as session:
            validation = await validations.record_validation(
                session,
                model=input.model,
                version=input.version,
                check=input.check,
                status=input.status,
                details_url=input.details_url,
                metrics=metrics,
                idempotency_key=input.idempotency_key,
                actor=info.context.actor,
            )
            version = await session.get_one(models.ModelVersion, validation.version_id)
            as_of = idempotency.answer_as_of(session)
        return RecordValidationSuccess(
            validation=Validation.of(validation), model_version=ModelVersion.of(version, as_of)
        )

    @strawberry.mutation(
        description="Set what a version must satisfy to move into STAGING or PRODUCTION."
    )
    async def set_promotion_policy(
        self, info: Ctx, input: SetPromotionPolicyInput
    ) -> SetPromotionPolicyPayload:
        beat = input.must_beat_production
        async with info.context.unit_of_work() as session:
            found = await policy.set_promotion_policy(
                session,
                model=input.model,
                stage=input.stage,
                required_checks=input.required_checks or [],
                metric_rules=[(r.metric, r.op, r.value) for r in input.metric_rules or ()],
                must_beat_production=(beat.metric, beat.goal) if beat else None,
                actor=info.context.actor,
            )
            model = await catalog.require_model(session, name=input.model)
        return SetPromotionPolicySuccess(
            model=RegisteredModel.of(model), policy=PromotionPolicy.of(found)
        )

    @strawberry.mutation(description="Edit a model's description and tags.")
    async def update_model(self, info: Ctx, input: UpdateModelInput) -> UpdateModelPayload:
        async with info.context.unit_of_work() as session:
            model = await catalog.update_model(
                session,
                name=input.name,
                description=input.description,
                set_tags=to_dict("setTags", input.set_tags),
                remove_tags=input.remove_tags,
                actor=info.context.actor,
            )
        return UpdateModelSuccess(model=RegisteredModel.of(model))

    @strawberry.mutation(description="Edit a version's description and tags.")
    async def update_model_version(
        self, info: Ctx, input: UpdateModelVersionInput
    ) -> UpdateModelVersionPayload:
        async with info.context.unit_of_work() as session:
            version = await catalog.update_version(
                session,
                model=input.model,
                version=input.version,
                description=input.description,
                set_tags=to_dict("setTags", input.set_tags),
                remove_tags=input.remove_tags,
                actor=info.context.actor,
            )
        return UpdateModelVersionSuccess(model_version=ModelVersion.of(version))
