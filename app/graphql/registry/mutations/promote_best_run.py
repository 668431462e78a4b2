import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.mutations.descriptions import EXPECTED_PRODUCTION, IDEMPOTENCY
from app.graphql.registry.types import (
    InvalidTransition,
    ModelVersion,
    PolicyViolation,
    StageTransition,
)
from app.graphql.tracking.types import Run, RunFilter, domain_filter
from app.registry import idempotency, lifecycle
from app.registry.stages import Stage
from app.tracking import search


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
    artifact_path: str = strawberry.field(
        default="model",
        description="The run's folder whose files a new version owns (none if it has none).",
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


PromoteBestRunPayload = payload(
    "PromoteBestRunPayload",
    PromoteBestRunSuccess,
    lookups=True,
    refusals=[InvalidTransition, PolicyViolation],
)


@strawberry.mutation(
    graphql_type=PromoteBestRunPayload,
    description="In one transaction: find the best run, register it (or reuse its version) "
    "and move it to `stage`. The one call a CI job needs.",
)
async def promote_best_run(info: Ctx, input: PromoteBestRunInput) -> PromoteBestRunSuccess:
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
            artifact_path=input.artifact_path,
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
