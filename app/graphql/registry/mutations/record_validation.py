import strawberry

from app.graphql.context import Ctx
from app.graphql.inputs import to_dict
from app.graphql.payloads import payload
from app.graphql.registry.mutations.descriptions import IDEMPOTENCY
from app.graphql.registry.types import ModelVersion, Validation
from app.registry import idempotency, models, validations
from app.registry.models import ValidationStatus


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


RecordValidationPayload = payload("RecordValidationPayload", RecordValidationSuccess, lookups=True)


@strawberry.mutation(
    graphql_type=RecordValidationPayload,
    description="Record a CI check's result on a version; watchers get VALIDATION_RECORDED.",
)
async def record_validation(info: Ctx, input: RecordValidationInput) -> RecordValidationSuccess:
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
