from datetime import datetime
from typing import Annotated

import strawberry

from app.graphql.context import Ctx
from app.graphql.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PermissionDenied
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.scalars import EpochMillis, Long, LongList, MetricValue, MetricValueList
from app.graphql.tracking.types import Experiment, Run
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus


@strawberry.input
class CreateExperimentInput:
    name: str
    description: str | None = None
    tags: list[KeyValueInput] | None = None


@strawberry.type
class CreateExperimentSuccess:
    experiment: Experiment


CreateExperimentPayload = Annotated[
    CreateExperimentSuccess | AlreadyExists | InvalidInput | PermissionDenied,
    strawberry.union("CreateExperimentPayload"),
]


@strawberry.input
class StartRunInput:
    experiment: str = strawberry.field(description="Experiment name; created if missing.")
    name: str | None = None
    params: list[KeyValueInput] | None = None
    tags: list[KeyValueInput] | None = None
    start_time: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.type
class StartRunSuccess:
    run: Run


StartRunPayload = Annotated[
    StartRunSuccess | InvalidInput | PermissionDenied, strawberry.union("StartRunPayload")
]


@strawberry.input
class MetricPointInput:
    key: str
    value: MetricValue
    step: Long = 0  # type: ignore[assignment]
    timestamp: EpochMillis | None = strawberry.field(default=None, description="Default: now.")


@strawberry.input(
    description="Many points of one metric as columns: the fast form for large batches."
)
class MetricSeriesInput:
    key: str
    values: MetricValueList
    steps: LongList | None = strawberry.field(default=None, description="Default: 0, 1, 2, …")
    timestamps: LongList | None = strawberry.field(
        default=None, description="EpochMillis per value. Default: now."
    )


@strawberry.input(
    description="Up to 10,000 points in all (points plus series values; the server's "
    "MODELGRAPH_MAX_METRIC_BATCH), written in one transaction."
)
class LogMetricsInput:
    run_id: strawberry.ID
    points: list[MetricPointInput] | None = None
    series: list[MetricSeriesInput] | None = None


@strawberry.type
class LogMetricsSuccess:
    run: Run
    count: int = strawberry.field(description="Points written.")


LogMetricsPayload = Annotated[
    LogMetricsSuccess | NotFound | InvalidInput | PermissionDenied,
    strawberry.union("LogMetricsPayload"),
]


@strawberry.input
class LogParamsInput:
    run_id: strawberry.ID
    params: list[KeyValueInput]


@strawberry.type
class LogParamsSuccess:
    run: Run


LogParamsPayload = Annotated[
    LogParamsSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("LogParamsPayload"),
]


@strawberry.input
class SetRunTagsInput:
    run_id: strawberry.ID
    tags: list[KeyValueInput]


@strawberry.type
class SetRunTagsSuccess:
    run: Run


SetRunTagsPayload = Annotated[
    SetRunTagsSuccess | NotFound | InvalidInput | PermissionDenied,
    strawberry.union("SetRunTagsPayload"),
]


@strawberry.input
class EndRunInput:
    run_id: strawberry.ID
    status: RunStatus = strawberry.field(
        default=RunStatus.FINISHED, description="FINISHED, FAILED or KILLED."
    )
    end_time: datetime | None = strawberry.field(
        default=None, description="Default: now. Not before the run's start time."
    )


@strawberry.type
class EndRunSuccess:
    run: Run


EndRunPayload = Annotated[
    EndRunSuccess | NotFound | InvalidInput | Conflict | PermissionDenied,
    strawberry.union("EndRunPayload"),
]


@strawberry.type
class TrackingMutation:
    @strawberry.mutation
    async def create_experiment(
        self, info: Ctx, input: CreateExperimentInput
    ) -> CreateExperimentPayload:
        async with info.context.unit_of_work() as session:
            experiment = await tracking_service.create_experiment(
                session,
                name=input.name,
                description=input.description,
                tags=to_dict("tags", input.tags),
                actor=info.context.actor,
            )
        return CreateExperimentSuccess(experiment=Experiment.of(experiment))

    @strawberry.mutation(description="Start a run; its experiment is created if missing.")
    async def start_run(self, info: Ctx, input: StartRunInput) -> StartRunPayload:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.start_run(
                session,
                experiment=input.experiment,
                name=input.name,
                params=to_dict("params", input.params),
                tags=to_dict("tags", input.tags),
                start_time=input.start_time,
                actor=info.context.actor,
            )
        return StartRunSuccess(run=Run.of(run))

    @strawberry.mutation(description="Append metric points; NaN and infinities are kept as sent.")
    async def log_metrics(self, info: Ctx, input: LogMetricsInput) -> LogMetricsPayload:
        points = [
            tracking_service.MetricPoint(p.key, p.value, p.step, p.timestamp)
            for p in input.points or ()
        ]
        series = [
            tracking_service.MetricSeries(s.key, s.values, s.steps, s.timestamps)
            for s in input.series or ()
        ]
        async with info.context.unit_of_work() as session:
            run = await tracking_service.log_metrics(
                session,
                run_id=str(input.run_id),
                points=points,
                series=series,
                actor=info.context.actor,
                max_points=info.context.settings.max_metric_batch,
            )
        return LogMetricsSuccess(
            run=Run.of(run), count=len(points) + sum(len(s.values) for s in series)
        )

    @strawberry.mutation(description="Params are write-once: the same value again is a no-op.")
    async def log_params(self, info: Ctx, input: LogParamsInput) -> LogParamsPayload:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.log_params(
                session,
                run_id=str(input.run_id),
                params=to_dict("params", input.params),
                actor=info.context.actor,
            )
        return LogParamsSuccess(run=Run.of(run))

    @strawberry.mutation
    async def set_run_tags(self, info: Ctx, input: SetRunTagsInput) -> SetRunTagsPayload:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.set_run_tags(
                session,
                run_id=str(input.run_id),
                tags=to_dict("tags", input.tags),
                actor=info.context.actor,
            )
        return SetRunTagsSuccess(run=Run.of(run))

    @strawberry.mutation(
        description="End a RUNNING run. Ending an ended run the same way again (its status, "
        "and its end time or none) returns it unchanged; another status or end time is a "
        "Conflict."
    )
    async def end_run(self, info: Ctx, input: EndRunInput) -> EndRunPayload:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.end_run(
                session,
                run_id=str(input.run_id),
                status=input.status,
                end_time=input.end_time,
                actor=info.context.actor,
            )
        return EndRunSuccess(run=Run.of(run))
