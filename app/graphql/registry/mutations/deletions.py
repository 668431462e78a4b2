"""Deleting a version or a whole model: refused while a version is in PRODUCTION."""

import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.registry import removal
from app.registry.stages import Stage


@strawberry.input
class DeleteModelVersionInput:
    model: str
    version: int


@strawberry.type
class DeleteModelVersionSuccess:
    model: str
    version: int
    stage: Stage = strawberry.field(description="The stage it was in.")


DeleteModelVersionPayload = payload(
    "DeleteModelVersionPayload", DeleteModelVersionSuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=DeleteModelVersionPayload,
    description="Delete a version with its aliases, validations, stage history and file "
    "list (a Conflict while it is in PRODUCTION: archive it first). Its number is never "
    "given again; a VERSION_DELETED event keeps what it was.",
)
async def delete_model_version(
    info: Ctx, input: DeleteModelVersionInput
) -> DeleteModelVersionSuccess:
    async with info.context.unit_of_work() as session:
        deleted = await removal.delete_version(
            session, model=input.model, version=input.version, actor=info.context.actor
        )
    return DeleteModelVersionSuccess(
        model=input.model, version=deleted.version, stage=deleted.stage
    )


@strawberry.input
class DeleteModelInput:
    name: str


@strawberry.type
class DeleteModelSuccess:
    name: str


DeleteModelPayload = payload("DeleteModelPayload", DeleteModelSuccess, lookups=True)


@strawberry.mutation(
    graphql_type=DeleteModelPayload,
    description="Delete a model and all its versions (a Conflict while one is in "
    "PRODUCTION: archive it first); a MODEL_DELETED event keeps what they were.",
)
async def delete_model(info: Ctx, input: DeleteModelInput) -> DeleteModelSuccess:
    async with info.context.unit_of_work() as session:
        deleted = await removal.delete_model(session, name=input.name, actor=info.context.actor)
    return DeleteModelSuccess(name=deleted.name)
