import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.types import ModelVersion
from app.registry import catalog


@strawberry.input
class DeleteModelAliasInput:
    model: str
    alias: str


@strawberry.type
class DeleteModelAliasSuccess:
    alias: str
    model_version: ModelVersion = strawberry.field(description="The version it pointed at.")


DeleteModelAliasPayload = payload("DeleteModelAliasPayload", DeleteModelAliasSuccess, lookups=True)


@strawberry.mutation(graphql_type=DeleteModelAliasPayload)
async def delete_model_alias(info: Ctx, input: DeleteModelAliasInput) -> DeleteModelAliasSuccess:
    async with info.context.unit_of_work() as session:
        version = await catalog.delete_alias(
            session, model=input.model, alias=input.alias, actor=info.context.actor
        )
    return DeleteModelAliasSuccess(alias=input.alias, model_version=ModelVersion.of(version))
