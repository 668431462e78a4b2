import strawberry

from app.graphql.context import Ctx
from app.graphql.pagination import Connection, to_connection
from app.graphql.registry.types import (
    ModelVersion,
    PromotionCheck,
    RegisteredModel,
    unmet_conditions,
)
from app.registry import catalog, policy
from app.registry.stages import Stage


@strawberry.type
class RegistryQuery:
    @strawberry.field(description="Registered models by name.")
    async def models(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> Connection[RegisteredModel]:
        size = info.context.page_size(first)
        async with info.context.read() as session:
            page = await catalog.list_models(session, first=size, after=after)
        return to_connection(page, RegisteredModel.of)

    @strawberry.field
    async def model(self, info: Ctx, name: str) -> RegisteredModel | None:
        async with info.context.read() as session:
            found = await catalog.get_model(session, name=name)
        return RegisteredModel.of(found) if found else None

    @strawberry.field(description="A version by number or by alias: give exactly one.")
    async def model_version(
        self, info: Ctx, model: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersion | None:
        async with info.context.read() as session:
            found = await catalog.get_version(session, model=model, version=version, alias=alias)
        return ModelVersion.of(found) if found else None

    @strawberry.field(
        description="Dry run: what would block moving a version into `stage` now (the "
        "lifecycle and the model's policy), without moving anything."
    )
    async def check_promotion(
        self, info: Ctx, model: str, version: int, stage: Stage
    ) -> PromotionCheck:
        async with info.context.read() as session:
            unmet = await policy.check_promotion(session, model=model, version=version, stage=stage)
        return PromotionCheck(unmet=unmet_conditions(unmet))
