import strawberry

from app.db.types import stored
from app.graphql.artifacts.loaders import files_by_version
from app.graphql.artifacts.types import VersionFileInput
from app.graphql.context import Ctx
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.payloads import payload
from app.graphql.registry import loaders
from app.graphql.registry.mutations.descriptions import IDEMPOTENCY
from app.graphql.registry.types import ModelVersion
from app.graphql.tracking import loaders as tracking_loaders
from app.registry import catalog, idempotency


@strawberry.input
class RegisterModelVersionInput:
    model: str = strawberry.field(description="Model name; registered if missing.")
    run_id: strawberry.ID | None = None
    source: str | None = strawberry.field(
        default=None,
        description="Where the model came from. `runs:/<runId>/<path>` without `files`: the "
        "version owns the run's files under that folder (paths relative to it).",
    )
    files: list[VersionFileInput] | None = strawberry.field(
        default=None,
        description="The version's files, each uploaded first by PUT /artifacts/uploads.",
    )
    description: str | None = None
    tags: list[KeyValueInput] | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY)


@strawberry.type
class RegisterModelVersionSuccess:
    model_version: ModelVersion


RegisterModelVersionPayload = payload(
    "RegisterModelVersionPayload", RegisterModelVersionSuccess, lookups=True
)


@strawberry.mutation(
    graphql_type=RegisterModelVersionPayload,
    description="A new DEVELOPMENT version, numbered next; the model is registered if missing.",
)
async def register_model_version(
    info: Ctx, input: RegisterModelVersionInput
) -> RegisterModelVersionSuccess:
    async with info.context.unit_of_work() as session:
        registered = await catalog.register_version(
            session,
            model=input.model,
            run_id=str(input.run_id) if input.run_id is not None else None,
            source=input.source,
            files=[(f.path, f.digest) for f in input.files] if input.files is not None else None,
            description=input.description,
            tags=to_dict("tags", input.tags),
            idempotency_key=input.idempotency_key,
            actor=info.context.actor,
        )
        as_of = idempotency.answer_as_of(session)
    # The answer is what the unit of work holds: the model and run it registered under and,
    # without a key (so certainly a new version), the empty history a new version has. A
    # keyed answer may be a retry's, whose version has moved on since: its history is read.
    ctx, version = info.context, registered.version
    loaders.model_by_id(ctx).prime(stored(registered.model.id), registered.model)
    if registered.run is not None:
        tracking_loaders.run_by_id(ctx).prime(registered.run.id, registered.run)
    if as_of is None:
        for history in (
            loaders.aliases_by_version,
            loaders.validations_by_version,
            loaders.transitions_by_version,
        ):
            history(ctx).prime(stored(version.id), [])
        files_by_version(ctx).prime(stored(version.id), registered.files)
    return RegisterModelVersionSuccess(model_version=ModelVersion.of(version, as_of))
