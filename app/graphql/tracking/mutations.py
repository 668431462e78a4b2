from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.types.arguments import InputContext

from app.graphql.context import Ctx
from app.graphql.inputs import KeyValueInput, to_dict
from app.graphql.payloads import payload
from app.graphql.registry import loaders as registry_loaders
from app.graphql.scalars import EpochMillis, Long, LongList, MetricValue, MetricValueList
from app.graphql.tracking import loaders
from app.graphql.tracking.lifecycle_mutations import TrackingLifecycleMutation
from app.graphql.tracking.types import Experiment, Run
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service
from app.tracking.metrics import MetricPoint, MetricSeries
from app.tracking.models import RunStatus


@strawberry.input
class CreateExperimentInput:
    name: str
    description: str | None = None
    tags: list[KeyValueInput] | None = None


@strawberry.type
class CreateExperimentSuccess:
    experiment: Experiment


CreateExperimentPayload = payload("CreateExperimentPayload", CreateExperimentSuccess, creates=True)


@strawberry.input
class StartRunInput:
    experiment: str = strawberry.field(description="Experiment name; created if missing.")
    name: str | None = None
    params: list[KeyValueInput] | None = None
    tags: list[KeyValueInput] | None = None
    start_time: datetime | None = strawberry.field(default=None, description="Default: now.")
    parent_run_id: strawberry.ID | None = strawberry.field(
        default=None, description="The run this one is nested in."
    )
    user_id: str | None = None


@strawberry.type
class StartRunSuccess:
    run: Run


StartRunPayload = payload("StartRunPayload", StartRunSuccess, lookups=True)


@strawberry.input
class MetricPointInput:
    key: str
    value: MetricValue
    step: Long = Long(0)
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


def _log_metrics_input(
    cls: type, value: Mapping[str, Any], _context: InputContext
) -> "LogMetricsInput":
    """LogMetricsInput in one pass over the coerced variables: each point becomes the
    service's MetricPoint (and each series its MetricSeries) directly. Strawberry's own
    conversion builds a MetricPointInput per point through its type machinery, which cost
    more than everything else a 1,000-point batch does. graphql-core has already checked
    and coerced every field (types, scalars, defaults); the service checks the rest."""
    points, series = value.get("points"), value.get("series")
    return cls(
        run_id=value["runId"],
        points=None
        if points is None
        else [MetricPoint(p["key"], p["value"], p["step"], p.get("timestamp")) for p in points],
        series=None
        if series is None
        else [
            MetricSeries(s["key"], s["values"], s.get("steps"), s.get("timestamps")) for s in series
        ],
    )


# The points and series of a LogMetricsInput are the service's own values, not input
# objects (see _log_metrics_input); the schema is unchanged.
LogMetricsInput.__strawberry_definition__.from_input = _log_metrics_input  # type: ignore[attr-defined]


@strawberry.type
class LogMetricsSuccess:
    run: Run
    count: int = strawberry.field(description="Points written.")


LogMetricsPayload = payload("LogMetricsPayload", LogMetricsSuccess, lookups=True)


@strawberry.input
class LogParamsInput:
    run_id: strawberry.ID
    params: list[KeyValueInput]


@strawberry.type
class LogParamsSuccess:
    run: Run


LogParamsPayload = payload("LogParamsPayload", LogParamsSuccess, lookups=True)


@strawberry.input
class SetRunTagsInput:
    run_id: strawberry.ID
    tags: list[KeyValueInput]


@strawberry.type
class SetRunTagsSuccess:
    run: Run


SetRunTagsPayload = payload("SetRunTagsPayload", SetRunTagsSuccess, lookups=True)


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


EndRunPayload = payload("EndRunPayload", EndRunSuccess, lookups=True)


@strawberry.type
class TrackingMutation(TrackingLifecycleMutation):
    @strawberry.mutation(graphql_type=CreateExperimentPayload)
    async def create_experiment(
        self, info: Ctx, input: CreateExperimentInput
    ) -> CreateExperimentSuccess:
        async with info.context.unit_of_work() as session:
            experiment = await tracking_service.create_experiment(
                session,
                name=input.name,
                description=input.description,
                tags=to_dict("tags", input.tags),
                actor=info.context.actor,
            )
        answer = Experiment.of(experiment)
        # The answer is what the unit of work holds: a new experiment has no runs to count.
        loaders.run_count(info.context).prime(answer.pk, 0)
        return CreateExperimentSuccess(experiment=answer)

    @strawberry.mutation(
        graphql_type=StartRunPayload,
        description="Start a run; its experiment is created if missing.",
    )
    async def start_run(self, info: Ctx, input: StartRunInput) -> StartRunSuccess:
        params, tags = to_dict("params", input.params), to_dict("tags", input.tags)
        async with info.context.unit_of_work() as session:
            run = await tracking_service.start_run(
                session,
                experiment=input.experiment,
                name=input.name,
                params=params,
                tags=tags,
                start_time=input.start_time,
                parent_run_id=str(input.parent_run_id) if input.parent_run_id else None,
                user_id=input.user_id,
                actor=info.context.actor,
            )
        # The answer is what the unit of work holds, not a re-read: the run's params and
        # tags are the ones it wrote, and a new run has no metrics or versions yet.
        ctx = info.context
        loaders.params_by_run(ctx).prime(run.id, sorted(params.items()))
        loaders.tags_by_run(ctx).prime(run.id, sorted(tags.items()))
        loaders.latest_metrics_by_run(ctx).prime(run.id, [])
        registry_loaders.versions_by_run(ctx).prime(run.id, [])
        return StartRunSuccess(run=Run.of(run))

    @strawberry.mutation(
        graphql_type=LogMetricsPayload,
        description="Append metric points; NaN and infinities are kept as sent.",
    )
    async def log_metrics(self, info: Ctx, input: LogMetricsInput) -> LogMetricsSuccess:
        # Built by _log_metrics_input: the service's values already.
        points = cast(list[MetricPoint], input.points or [])
        series = cast(list[MetricSeries], input.series or [])
        async with info.context.unit_of_work() as session:
            run = await tracking_metrics.log_metrics(
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

    @strawberry.mutation(
        graphql_type=LogParamsPayload,
        description="Params are write-once: the same value again is a no-op.",
    )
    async def log_params(self, info: Ctx, input: LogParamsInput) -> LogParamsSuccess:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.log_params(
                session,
                run_id=str(input.run_id),
                params=to_dict("params", input.params),
                actor=info.context.actor,
            )
        return LogParamsSuccess(run=Run.of(run))

    @strawberry.mutation(graphql_type=SetRunTagsPayload)
    async def set_run_tags(self, info: Ctx, input: SetRunTagsInput) -> SetRunTagsSuccess:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.set_run_tags(
                session,
                run_id=str(input.run_id),
                tags=to_dict("tags", input.tags),
                actor=info.context.actor,
            )
        return SetRunTagsSuccess(run=Run.of(run))

    @strawberry.mutation(
        graphql_type=EndRunPayload,
        description="End a RUNNING run. Ending an ended run the same way again (its status, "
        "and its end time or none) returns it unchanged; another status or end time is a "
        "Conflict.",
    )
    async def end_run(self, info: Ctx, input: EndRunInput) -> EndRunSuccess:
        async with info.context.unit_of_work() as session:
            run = await tracking_service.end_run(
                session,
                run_id=str(input.run_id),
                status=input.status,
                end_time=input.end_time,
                actor=info.context.actor,
            )
        return EndRunSuccess(run=Run.of(run))
