import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.mutations.descriptions import IDEMPOTENCY
from app.graphql.registry.types import ModelVersion
from app.registry import catalog, idempotency


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


SetModelAliasPayload = payload("SetModelAliasPayload", SetModelAliasSuccess, lookups=True)


@strawberry.mutation(
    graphql_type=SetModelAliasPayload,
    description="Point an alias at a version, moving it if it exists.",
)
async def set_model_alias(info: Ctx, input: SetModelAliasInput) -> SetModelAliasSuccess:
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
    return SetModelAliasSuccess(alias=input.alias, model_version=ModelVersion.of(version, as_of))
