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
from app.registry import idempotency, lifecycle
from app.registry.stages import Stage


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


TransitionModelVersionPayload = payload(
    "TransitionModelVersionPayload",
    TransitionModelVersionSuccess,
    lookups=True,
    refusals=[InvalidTransition, PolicyViolation],
)


@strawberry.mutation(
    graphql_type=TransitionModelVersionPayload, description="Move a version along the lifecycle."
)
async def transition_model_version(
    info: Ctx, input: TransitionModelVersionInput
) -> TransitionModelVersionSuccess:
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
