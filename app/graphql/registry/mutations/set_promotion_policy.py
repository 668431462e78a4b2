import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.types import PromotionPolicy, RegisteredModel
from app.registry import policy
from app.registry.stages import Stage
from app.tracking.search import CompareOp, Goal


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


SetPromotionPolicyPayload = payload(
    "SetPromotionPolicyPayload", SetPromotionPolicySuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=SetPromotionPolicyPayload,
    description="Set what a version must satisfy to move into STAGING or PRODUCTION.",
)
async def set_promotion_policy(
    info: Ctx, input: SetPromotionPolicyInput
) -> SetPromotionPolicySuccess:
    beat = input.must_beat_production
    async with info.context.unit_of_work() as session:
        model, found = await policy.set_promotion_policy(
            session,
            model=input.model,
            stage=input.stage,
            required_checks=input.required_checks or [],
            metric_rules=[(r.metric, r.op, r.value) for r in input.metric_rules or ()],
            must_beat_production=(beat.metric, beat.goal) if beat else None,
            actor=info.context.actor,
        )
    return SetPromotionPolicySuccess(
        model=RegisteredModel.of(model), policy=PromotionPolicy.of(found)
    )
