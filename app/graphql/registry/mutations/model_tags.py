"""One tag of a model or a version at a time (MLflow's set/delete tag calls); updateModel
and updateModelVersion edit several at once."""

import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.types import ModelVersion, RegisteredModel
from app.registry import entries


@strawberry.input
class SetModelTagInput:
    name: str
    key: str
    value: str


@strawberry.type
class SetModelTagSuccess:
    model: RegisteredModel


SetModelTagPayload = payload("SetModelTagPayload", SetModelTagSuccess, lookups=True)


@strawberry.mutation(graphql_type=SetModelTagPayload, description="Set one tag of a model.")
async def set_model_tag(info: Ctx, input: SetModelTagInput) -> SetModelTagSuccess:
    async with info.context.unit_of_work() as session:
        model = await entries.set_model_tag(
            session, name=input.name, key=input.key, value=input.value, actor=info.context.actor
        )
    return SetModelTagSuccess(model=RegisteredModel.of(model))


@strawberry.input
class DeleteModelTagInput:
    name: str
    key: str


@strawberry.type
class DeleteModelTagSuccess:
    model: RegisteredModel


DeleteModelTagPayload = payload("DeleteModelTagPayload", DeleteModelTagSuccess, lookups=True)


@strawberry.mutation(
    graphql_type=DeleteModelTagPayload,
    description="Remove one tag of a model (NotFound if it has no such tag).",
)
async def delete_model_tag(info: Ctx, input: DeleteModelTagInput) -> DeleteModelTagSuccess:
    async with info.context.unit_of_work() as session:
        model = await entries.delete_model_tag(
            session, name=input.name, key=input.key, actor=info.context.actor
        )
    return DeleteModelTagSuccess(model=RegisteredModel.of(model))


@strawberry.input
class SetModelVersionTagInput:
    model: str
    version: int
    key: str
    value: str


@strawberry.type
class SetModelVersionTagSuccess:
    model_version: ModelVersion


SetModelVersionTagPayload = payload(
    "SetModelVersionTagPayload", SetModelVersionTagSuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=SetModelVersionTagPayload, description="Set one tag of a version."
)
async def set_model_version_tag(
    info: Ctx, input: SetModelVersionTagInput
) -> SetModelVersionTagSuccess:
    async with info.context.unit_of_work() as session:
        version = await entries.set_version_tag(
            session,
            model=input.model,
            version=input.version,
            key=input.key,
            value=input.value,
            actor=info.context.actor,
        )
    return SetModelVersionTagSuccess(model_version=ModelVersion.of(version))


@strawberry.input
class DeleteModelVersionTagInput:
    model: str
    version: int
    key: str


@strawberry.type
class DeleteModelVersionTagSuccess:
    model_version: ModelVersion


DeleteModelVersionTagPayload = payload(
    "DeleteModelVersionTagPayload", DeleteModelVersionTagSuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=DeleteModelVersionTagPayload,
    description="Remove one tag of a version (NotFound if it has no such tag).",
)
async def delete_model_version_tag(
    info: Ctx, input: DeleteModelVersionTagInput
) -> DeleteModelVersionTagSuccess:
    async with info.context.unit_of_work() as session:
        version = await entries.delete_version_tag(
            session,
            model=input.model,
            version=input.version,
            key=input.key,
            actor=info.context.actor,
        )
    return DeleteModelVersionTagSuccess(model_version=ModelVersion.of(version))
