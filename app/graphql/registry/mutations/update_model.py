import strawberry

from app.graphql.context import Ctx
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.payloads import payload
from app.graphql.registry.types import RegisteredModel
from app.registry import catalog


@strawberry.input
class UpdateModelInput:
    name: str
    description: str | None = None
    set_tags: list[KeyValueInput] | None = None
    remove_tags: list[str] | None = None


@strawberry.type
class UpdateModelSuccess:
    model: RegisteredModel


UpdateModelPayload = payload("UpdateModelPayload", UpdateModelSuccess, lookups=True)


@strawberry.mutation(
    graphql_type=UpdateModelPayload, description="Edit a model's description and tags."
)
async def update_model(info: Ctx, input: UpdateModelInput) -> UpdateModelSuccess:
    async with info.context.unit_of_work() as session:
        model = await catalog.update_model(
            session,
            name=input.name,
            description=input.description,
            set_tags=to_dict("setTags", input.set_tags),
            remove_tags=input.remove_tags,
            actor=info.context.actor,
        )
    return UpdateModelSuccess(model=RegisteredModel.of(model))
