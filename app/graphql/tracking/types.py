"""GraphQL types of the tracking graph: Experiment, Run, metrics; filters and orderings."""

import math
from array import array
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.artifacts.content import normalize_path
from app.artifacts.runs import children
from app.db.pagination import Page
from app.graphql.artifacts import loaders as artifact_loaders
from app.graphql.artifacts import types as artifact_types
from app.graphql.context import Ctx
from app.graphql.inputs import KeyValue, KeyValueInput, from_items, to_dict
from app.graphql.limits import charged
from app.graphql.pagination import Connection, PageInfo, to_connection
from app.graphql.registry import loaders as registry_loaders
from app.graphql.registry import types as registry_types
from app.graphql.scalars import (
    EpochMillis,
    Float64Array,
    Int64Array,
    Long,
    LongList,
    MetricValue,
    MetricValueList,
)
from app.graphql.tracking import loaders
from app.tracking import models, search
from app.tracking import reads as tracking_reads
from app.tracking.models import RunStatus

if TYPE_CHECKING:
    from app.graphql.registry.types import ModelVersion

strawberry.enum(RunStatus, description="A run's state; MLflow's names.")
strawberry.enum(search.CompareOp, name="CompareOp", description="A comparison on a metric value.")
strawberry.enum(
    search.Aggregate,
    name="MetricAggregate",
    description="Which value of a metric: LAST (at the highest step), MIN or MAX over its history.",
)
strawberry.enum(
    search.Goal, name="MetricGoal", description="Whether a higher or lower value is better."
)
strawberry.enum(search.Direction, name="SortDirection")


@strawberry.input(
    description='A condition on a run\'s metric, e.g. {metric: "accuracy", op: GT, value: 0.9}.'
)
class MetricFilter:
    metric: str
    op: search.CompareOp
    value: float
    aggregate: search.Aggregate = search.Aggregate.LAST


@strawberry.input(description="Conditions that must all hold.")
class RunFilter:
    metrics: list[MetricFilter] | None = None
    params: list[KeyValueInput] | None = strawberry.field(
        default=None, description="Params that must equal these values."
    )
    tags: list[KeyValueInput] | None = strawberry.field(
        default=None, description="Tags that must equal these values."
    )
    status: list[RunStatus] | None = strawberry.field(
        default=None, description="The run's status is one of these."
    )

    def to_domain(self) -> search.RunFilter:
        return search.RunFilter(
            metrics=tuple(
                search.MetricCondition(m.metric, m.op, m.value, m.aggregate)
                for m in self.metrics or ()
            ),
            params=tuple(to_dict("filter.params", self.params).items()),
            tags=tuple(to_dict("filter.tags", self.tags).items()),
            statuses=tuple(self.status or ()),
        )


@strawberry.input(
    description="Sort by a metric's value (runs without it come last) or, with no metric, by start time."
)
class RunOrder:
    metric: str | None = None
    direction: search.Direction = search.Direction.DESC
    aggregate: search.Aggregate = search.Aggregate.LAST

    def to_domain(self) -> search.RunOrder:
        return search.RunOrder(
            metric=self.metric, direction=self.direction, aggregate=self.aggregate
        )


def domain_filter(run_filter: RunFilter | None) -> search.RunFilter | None:
    return run_filter.to_domain() if run_filter else None


def domain_order(order: RunOrder | None) -> search.RunOrder | None:
    return order.to_domain() if order else None


@strawberry.type(
    description="A metric's summary for one run: the last value, and min and max ever."
)
class Metric:
    key: str
    value: MetricValue = strawberry.field(description="The value at the highest step.")
    step: Long
    timestamp: EpochMillis
    min: MetricValue | None = strawberry.field(description="Smallest non-NaN value logged.")
    max: MetricValue | None = strawberry.field(description="Largest non-NaN value logged.")

    @classmethod
    def of(cls, lm: models.LatestMetric) -> "Metric":
        return cls(
            key=lm.key,
            value=MetricValue(lm.last_value),
            step=Long(lm.step),
            timestamp=EpochMillis(lm.timestamp),
            min=None if lm.min_value is None else MetricValue(lm.min_value),
            max=None if lm.max_value is None else MetricValue(lm.max_value),
        )


@strawberry.type(description="One logged point of a metric's history.")
class MetricPoint:
    key: str
    value: MetricValue
    step: Long
    timestamp: EpochMillis

    @classmethod
    def of(cls, m: Any) -> "MetricPoint":
        """From a history row (key, value, is_nan, step, timestamp attributes)."""
        value = MetricValue(math.nan if m.is_nan else m.value)
        return cls(key=m.key, value=value, step=Long(m.step), timestamp=EpochMillis(m.timestamp))


@strawberry.type(
    description="One page of a metric's history as three packed columns (see Float64Array "
    "and Int64Array): point i is (steps[i], values[i], timestamps[i])."
)
class PackedMetricColumns:
    steps: Int64Array
    values: Float64Array
    timestamps: Int64Array


@strawberry.type(
    description="A page of one metric's history as columns: the compact form for charts."
)
class MetricSeries:
    key: str
    page: strawberry.Private[PageInfo]
    # The page's columns as the database gave them: value is NULL where is_nan is true.
    columns: strawberry.Private[tuple[list[Any], ...]]

    @classmethod
    def of(cls, key: str, page: Page[Any]) -> "MetricSeries":
        # One C-level pass per column. Not zip(*rows): its 10,000 row iterators are objects
        # the garbage collector tracks, and allocating them set off full collections.
        rows = page.items
        columns = tuple(list(map(itemgetter(i), rows)) for i in (1, 2, 3, 4))
        return cls(
            key=key,
            page=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            columns=columns,
        )

    def _values(self) -> list[float]:
        values, is_nan = self.columns[0], self.columns[1]
        if True not in is_nan:  # one C-level scan; most series hold no NaN
            return list(values)
        return [math.nan if nan else v for v, nan in zip(values, is_nan, strict=True)]

    @strawberry.field
    def steps(self) -> LongList:
        return LongList(self.columns[2])

    @strawberry.field
    def values(self) -> MetricValueList:
        return MetricValueList(self._values())

    @strawberry.field
    def timestamps(self) -> LongList:
        return LongList(self.columns[3])

    @strawberry.field
    def page_info(self) -> PageInfo:
        return self.page

    @strawberry.field(
        description="The same columns packed, one string each: for long series, far less "
        "to serialise, send and parse than the JSON arrays."
    )
    def packed(self) -> PackedMetricColumns:
        return PackedMetricColumns(
            steps=Int64Array(array("q", self.columns[2])),
            values=Float64Array(array("d", self._values())),
            timestamps=Int64Array(array("q", self.columns[3])),
        )


@strawberry.type(
    description="A dataset as runs used it: the same name and digest is the same data."
)
class Dataset:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = strawberry.field(description="As the client sent it (JSON text).")
    profile: str | None

    @classmethod
    def of(cls, d: models.Dataset) -> "Dataset":
        return cls(
            name=d.name,
            digest=d.digest,
            source_type=d.source_type,
            source=d.source,
            schema=d.schema_,
            profile=d.profile,
        )


@strawberry.type(description="A dataset a run used, and what for.")
class RunInput:
    dataset: Dataset
    context: str | None = strawberry.field(
        description='What the run used it for ("training", "evaluation", ...), if said.'
    )
    tags: list[KeyValue]


@strawberry.type
class Run:
    id: strawberry.ID = strawberry.field(description="32 hex characters, as MLflow's run_id.")
    name: str | None
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    user_id: str | None = strawberry.field(description="Who started it, as the client said.")
    deleted: bool = strawberry.field(
        description="Deleted runs are hidden from lists and searches unless asked for, and "
        "can be restored."
    )
    deleted_at: datetime | None
    experiment_id: strawberry.Private[int]
    parent_run_id: strawberry.Private[str | None]

    @classmethod
    def of(cls, run: models.Run) -> "Run":
        return cls(
            id=strawberry.ID(run.id),
            name=run.name,
            status=run.status,
            start_time=run.start_time,
            end_time=run.end_time,
            user_id=run.user_id,
            deleted=run.deleted,
            deleted_at=run.deleted_at,
            experiment_id=run.experiment_id,
            parent_run_id=run.parent_run_id,
        )

    @strawberry.field(description="The run this one is nested in, if any.")
    async def parent(self, info: Ctx) -> "Run | None":
        if self.parent_run_id is None:
            return None
        found = await loaders.run_by_id(info.context).load(self.parent_run_id)
        return Run.of(found) if found else None

    @strawberry.field(description="The runs nested directly in this one, oldest first.")
    async def children(self, info: Ctx) -> list["Run"]:
        found = await loaders.children_by_run(info.context).load(str(self.id))
        return charged([Run.of(r) for r in found])

    @strawberry.field(description="The datasets this run used (lineage: the data behind a model).")
    async def inputs(self, info: Ctx) -> list[RunInput]:
        found = await loaders.inputs_by_run(info.context).load(str(self.id))
        return charged(
            [
                RunInput(dataset=Dataset.of(i.dataset), context=i.context, tags=from_items(i.tags))
                for i in found
            ]
        )

    @strawberry.field
    async def experiment(self, info: Ctx) -> "Experiment":
        return Experiment.of(await loaders.experiment_by_id(info.context).load(self.experiment_id))

    @strawberry.field
    async def params(self, info: Ctx) -> list[KeyValue]:
        return from_items(await loaders.params_by_run(info.context).load(str(self.id)))

    @strawberry.field
    async def tags(self, info: Ctx) -> list[KeyValue]:
        return from_items(await loaders.tags_by_run(info.context).load(str(self.id)))

    @strawberry.field(description="The latest value of every metric the run logged.")
    async def metrics(self, info: Ctx) -> list[Metric]:
        latest = await loaders.latest_metrics_by_run(info.context).load(str(self.id))
        return charged([Metric.of(m) for m in latest])

    @strawberry.field(description="The latest value of one metric, or null if never logged.")
    async def metric(self, info: Ctx, key: str) -> Metric | None:
        for m in await loaders.latest_metrics_by_run(info.context).load(str(self.id)):
            if m.key == key:
                return Metric.of(m)
        return None

    @strawberry.field(description="Every point of one metric, by step then timestamp.")
    async def metric_history(
        self, info: Ctx, key: str, first: int | None = None, after: str | None = None
    ) -> Connection[MetricPoint]:
        size = info.context.history_page_size(first)
        async with info.context.read() as session:
            page = await tracking_reads.metric_history(
                session, run_id=str(self.id), key=key, first=size, after=after
            )
        return to_connection(page, MetricPoint.of)

    @strawberry.field(
        description="The same points as metricHistory, as columns: far less to send and parse."
    )
    async def metric_series(
        self, info: Ctx, key: str, first: int | None = None, after: str | None = None
    ) -> MetricSeries:
        size = info.context.history_page_size(first)
        async with info.context.read() as session:
            page = await tracking_reads.metric_history(
                session, run_id=str(self.id), key=key, first=size, after=after
            )
        return MetricSeries.of(key, page)

    @strawberry.field(
        description="The direct children (files and folders) of folder `path` of the run's "
        'artifacts, by path; "" for the root.'
    )
    async def artifacts(self, info: Ctx, path: str = "") -> list[artifact_types.ArtifactEntry]:
        folder = path.rstrip("/")
        if folder:
            folder = normalize_path("path", folder)
        found = await artifact_loaders.artifacts_by_run(info.context).load((str(self.id), folder))
        return charged(
            [
                artifact_types.ArtifactEntry.of(info, str(self.id), e)
                for e in children(found, folder)
            ]
        )

    @strawberry.field(description="Model versions registered from this run.")
    async def model_versions(
        self, info: Ctx
    ) -> list[Annotated["ModelVersion", strawberry.lazy("app.graphql.registry.types")]]:
        versions = await registry_loaders.versions_by_run(info.context).load(str(self.id))
        return charged([registry_types.ModelVersion.of(v) for v in versions])


@strawberry.type
class Experiment:
    id: strawberry.ID = strawberry.field(description="An integer, as MLflow's experiment_id.")
    name: str
    description: str | None
    created_at: datetime
    last_update_time: datetime = strawberry.field(
        description="When its name, tags or lifecycle last changed (its creation if never)."
    )
    deleted: bool = strawberry.field(
        description="Deleted experiments (and the runs deleted with them) are hidden unless "
        "asked for, and can be restored."
    )
    deleted_at: datetime | None
    tag_map: strawberry.Private[dict[str, str]]

    @classmethod
    def of(cls, e: models.Experiment) -> "Experiment":
        return cls(
            id=strawberry.ID(str(e.id)),
            name=e.name,
            description=e.description,
            created_at=e.created_at,
            last_update_time=e.last_update_time,
            deleted=e.deleted,
            deleted_at=e.deleted_at,
            tag_map=e.tags or {},
        )

    @property
    def pk(self) -> int:
        return int(self.id)

    @strawberry.field
    def tags(self) -> list[KeyValue]:
        return from_items(self.tag_map)

    @strawberry.field
    async def run_count(self, info: Ctx) -> int:
        return await loaders.run_count(info.context).load(self.pk)

    @strawberry.field(description="This experiment's runs; the same arguments as Query.runs.")
    async def runs(
        self,
        info: Ctx,
        filter: RunFilter | None = None,
        order_by: RunOrder | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Run]:
        size = info.context.page_size(first)
        key = (self.pk, domain_filter(filter), domain_order(order_by), size, after)
        return to_connection(await loaders.run_page(info.context).load(key), Run.of)

    @strawberry.field(
        description="The best run of this experiment; the same arguments as Query.bestRun."
    )
    async def best_run(
        self,
        info: Ctx,
        metric: str,
        goal: search.Goal = search.Goal.MAXIMIZE,
        aggregate: search.Aggregate = search.Aggregate.LAST,
        filter: RunFilter | None = None,
    ) -> Run | None:
        key = (self.pk, metric, goal, aggregate, domain_filter(filter))
        run = await loaders.best_run(info.context).load(key)
        return Run.of(run) if run else None
