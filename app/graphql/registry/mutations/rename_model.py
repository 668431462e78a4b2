import strawberry

from app.graphql.context import Ctx
from app.graphql.payloads import payload
from app.graphql.registry.types import RegisteredModel
from app.registry import entries


@strawberry.input
class RenameModelInput:
    name: str
    new_name: str


@strawberry.type
class RenameModelSuccess:
    previous_name: str
    model: RegisteredModel


RenameModelPayload = payload("RenameModelPayload", RenameModelSuccess, lookups=True, creates=True)


@strawberry.mutation(
    graphql_type=RenameModelPayload,
    description="Give a model a new name: its versions, aliases, policies, stage history "
    "and past events follow it (events are then found under the new name); a "
    "MODEL_RENAMED event names both.",
)
async def rename_model(info: Ctx, input: RenameModelInput) -> RenameModelSuccess:
    async with info.context.unit_of_work() as session:
        model = await entries.rename_model(
            session, name=input.name, new_name=input.new_name, actor=info.context.actor
        )
    return RenameModelSuccess(previous_name=input.name, model=RegisteredModel.of(model))
