import strawberry

from app.graphql.context import Ctx
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.payloads import payload
from app.graphql.registry.types import ModelVersion
from app.registry import catalog


@strawberry.input
class UpdateModelVersionInput:
    model: str
    version: int
    description: str | None = None
    set_tags: list[KeyValueInput] | None = None
    remove_tags: list[str] | None = None


@strawberry.type
class UpdateModelVersionSuccess:
    model_version: ModelVersion


UpdateModelVersionPayload = payload(
    "UpdateModelVersionPayload", UpdateModelVersionSuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=UpdateModelVersionPayload, description="Edit a version's description and tags."
)
async def update_model_version(
    info: Ctx, input: UpdateModelVersionInput
) -> UpdateModelVersionSuccess:
    async with info.context.unit_of_work() as session:
        version = await catalog.update_version(
            session,
            model=input.model,
            version=input.version,
            description=input.description,
            set_tags=to_dict("setTags", input.set_tags),
            remove_tags=input.remove_tags,
            actor=info.context.actor,
        )
    return UpdateModelVersionSuccess(model_version=ModelVersion.of(version))
