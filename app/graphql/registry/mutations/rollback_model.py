import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.mutations.descriptions import IDEMPOTENCY
from app.graphql.registry.types import (
    ModelVersion,
    NoRollbackTarget,
    StageTransition,
    UnmetCondition,
    unmet_conditions,
)
from app.registry import idempotency, lifecycle


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


RollbackModelPayload = payload(
    "RollbackModelPayload", RollbackModelSuccess, lookups=True, refusals=[NoRollbackTarget]
)


@strawberry.mutation(
    graphql_type=RollbackModelPayload,
    description="Archive the PRODUCTION version and restore the one in PRODUCTION before it.",
)
async def rollback_model(info: Ctx, input: RollbackModelInput) -> RollbackModelSuccess:
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
