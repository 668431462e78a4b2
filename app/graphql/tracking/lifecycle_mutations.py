"""Tracking mutations for what MLflow's model has beyond logging: soft delete and restore
of experiments and runs, renames and tags, resume, dataset inputs."""

import strawberry

from app.errors import ValidationError
from app.graphql.context import Ctx
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.payloads import payload
from app.graphql.tracking.types import Experiment, Run
from app.tracking import datasets as tracking_datasets
from app.tracking import lifecycle
from app.tracking import service as tracking_service
from app.tracking.models import INPUT_CONTEXT_TAG


def _experiment_pk(value: strawberry.ID) -> int:
    try:
        pk = int(str(value))
    except ValueError:
        raise ValidationError("id", "is not an experiment id") from None
    if not 0 <= pk < 2**31:
        raise ValidationError("id", "is not an experiment id")
    return pk


@strawberry.input
class ExperimentIdInput:
    id: strawberry.ID


@strawberry.type
class DeleteExperimentSuccess:
    experiment: Experiment


@strawberry.type
class RestoreExperimentSuccess:
    experiment: Experiment


@strawberry.type
class UpdateExperimentSuccess:
    experiment: Experiment


DeleteExperimentPayload = payload("DeleteExperimentPayload", DeleteExperimentSuccess, lookups=True)
RestoreExperimentPayload = payload(
    "RestoreExperimentPayload", RestoreExperimentSuccess, lookups=True
)


@strawberry.input(description="Rename an experiment and set or delete its tags, in one change.")
class UpdateExperimentInput:
    id: strawberry.ID
    name: str | None = None
    set_tags: list[KeyValueInput] | None = None
    delete_tags: list[str] | None = strawberry.field(
        default=None, description="Keys to remove; each must be there."
    )


UpdateExperimentPayload = payload(
    "UpdateExperimentPayload", UpdateExperimentSuccess, lookups=True, creates=True
)


@strawberry.input
class RunIdInput:
    run_id: strawberry.ID


@strawberry.type
class DeleteRunSuccess:
    run: Run


@strawberry.type
class RestoreRunSuccess:
    run: Run


@strawberry.type
class UpdateRunSuccess:
    run: Run


@strawberry.type
class DeleteRunTagSuccess:
    run: Run


@strawberry.type
class LogInputsSuccess:
    run: Run


DeleteRunPayload = payload("DeleteRunPayload", DeleteRunSuccess, lookups=True)
RestoreRunPayload = payload("RestoreRunPayload", RestoreRunSuccess, lookups=True)
UpdateRunPayload = payload("UpdateRunPayload", UpdateRunSuccess, lookups=True)
DeleteRunTagPayload = payload("DeleteRunTagPayload", DeleteRunTagSuccess, lookups=True)
LogInputsPayload = payload("LogInputsPayload", LogInputsSuccess, lookups=True)


@strawberry.input
class UpdateRunInput:
    run_id: strawberry.ID
    name: str | None = None
    resume: bool = strawberry.field(
        default=False, description="Put an ended run back to RUNNING (its end time cleared)."
    )


@strawberry.input
class DeleteRunTagInput:
    run_id: strawberry.ID
    key: str


@strawberry.input(description="A dataset the run used, identified by name and digest.")
class DatasetInputInput:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None
    context: str | None = strawberry.field(
        default=None, description='What for: "training", "evaluation", ...'
    )
    tags: list[KeyValueInput] | None = None


@strawberry.input
class LogInputsInput:
    run_id: strawberry.ID
    datasets: list[DatasetInputInput]


@strawberry.type
class TrackingLifecycleMutation:
    @strawberry.mutation(
        graphql_type=DeleteExperimentPayload,
        description="Soft-delete an experiment and the runs still active in it: hidden, "
        "never lost. Again is a no-op.",
    )
    async def delete_experiment(
        self, info: Ctx, input: ExperimentIdInput
    ) -> DeleteExperimentSuccess:
        async with info.context.unit_of_work() as session:
            experiment = await lifecycle.delete_experiment(
                session, experiment_id=_experiment_pk(input.id), actor=info.context.actor
            )
        return DeleteExperimentSuccess(experiment=Experiment.of(experiment))

    @strawberry.mutation(
        graphql_type=RestoreExperimentPayload,
        description="Restore a deleted experiment and the runs deleted with it.",
    )
    async def restore_experiment(
        self, info: Ctx, input: ExperimentIdInput
    ) -> RestoreExperimentSuccess:
        async with info.context.unit_of_work() as session:
            experiment = await lifecycle.restore_experiment(
                session, experiment_id=_experiment_pk(input.id), actor=info.context.actor
            )
        return RestoreExperimentSuccess(experiment=Experiment.of(experiment))

    @strawberry.mutation(graphql_type=UpdateExperimentPayload)
    async def update_experiment(
        self, info: Ctx, input: UpdateExperimentInput
    ) -> UpdateExperimentSuccess:
        pk, actor = _experiment_pk(input.id), info.context.actor
        async with info.context.unit_of_work() as session:
            experiment = await tracking_service.require_experiment_by_id(
                session, experiment_id=pk, field="id"
            )
            if input.name is not None:
                experiment = await lifecycle.rename_experiment(
                    session, experiment_id=pk, name=input.name, actor=actor
                )
            if input.set_tags:
                experiment = await lifecycle.set_experiment_tags(
                    session, experiment_id=pk, tags=to_dict("setTags", input.set_tags), actor=actor
                )
            for key in input.delete_tags or ():
                experiment = await lifecycle.delete_experiment_tag(
                    session, experiment_id=pk, key=key, actor=actor
                )
        return UpdateExperimentSuccess(experiment=Experiment.of(experiment))

    @strawberry.mutation(
        graphql_type=DeleteRunPayload,
        description="Soft-delete a run: hidden from runs, searches and bestRun, never lost.",
    )
    async def delete_run(self, info: Ctx, input: RunIdInput) -> DeleteRunSuccess:
        async with info.context.unit_of_work() as session:
            run = await lifecycle.delete_run(
                session, run_id=str(input.run_id), actor=info.context.actor
            )
        return DeleteRunSuccess(run=Run.of(run))

    @strawberry.mutation(graphql_type=RestoreRunPayload, description="Restore a deleted run.")
    async def restore_run(self, info: Ctx, input: RunIdInput) -> RestoreRunSuccess:
        async with info.context.unit_of_work() as session:
            run = await lifecycle.restore_run(
                session, run_id=str(input.run_id), actor=info.context.actor
            )
        return RestoreRunSuccess(run=Run.of(run))

    @strawberry.mutation(graphql_type=UpdateRunPayload, description="Rename a run, or resume it.")
    async def update_run(self, info: Ctx, input: UpdateRunInput) -> UpdateRunSuccess:
        run_id, actor = str(input.run_id), info.context.actor
        async with info.context.unit_of_work() as session:
            run = await tracking_service.require_run(session, run_id=run_id)
            if input.name is not None:
                run = await lifecycle.rename_run(
                    session, run_id=run_id, name=input.name, actor=actor
                )
            if input.resume:
                run = await lifecycle.resume_run(session, run_id=run_id, actor=actor)
        return UpdateRunSuccess(run=Run.of(run))

    @strawberry.mutation(graphql_type=DeleteRunTagPayload, description="Remove one tag from a run.")
    async def delete_run_tag(self, info: Ctx, input: DeleteRunTagInput) -> DeleteRunTagSuccess:
        async with info.context.unit_of_work() as session:
            run = await lifecycle.delete_run_tag(
                session, run_id=str(input.run_id), key=input.key, actor=info.context.actor
            )
        return DeleteRunTagSuccess(run=Run.of(run))

    @strawberry.mutation(
        graphql_type=LogInputsPayload,
        description="Record the datasets a run used; one it already has is left as it is.",
    )
    async def log_inputs(self, info: Ctx, input: LogInputsInput) -> LogInputsSuccess:
        inputs = []
        for i, d in enumerate(input.datasets):
            tags = to_dict(f"datasets[{i}].tags", d.tags)
            if d.context is not None:
                tags[INPUT_CONTEXT_TAG] = d.context
            inputs.append(
                tracking_datasets.DatasetInput(
                    name=d.name,
                    digest=d.digest,
                    source_type=d.source_type,
                    source=d.source,
                    schema=d.schema,
                    profile=d.profile,
                    tags=tags,
                )
            )
        async with info.context.unit_of_work() as session:
            run = await tracking_datasets.log_inputs(
                session, run_id=str(input.run_id), inputs=inputs, actor=info.context.actor
            )
        return LogInputsSuccess(run=Run.of(run))
