import strawberry

from app.graphql.context import Ctx
from app.graphql.pagination import Connection, to_connection
from app.graphql.tracking import loaders
from app.graphql.tracking.types import (
    Experiment,
    Run,
    RunFilter,
    RunOrder,
    domain_filter,
    domain_order,
)
from app.tracking import reads as tracking_reads
from app.tracking import search
from app.tracking import service as tracking_service


@strawberry.type
class TrackingQuery:
    @strawberry.field(
        description="Experiments in creation order; deleted ones only with includeDeleted."
    )
    async def experiments(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        include_deleted: bool = False,
    ) -> Connection[Experiment]:
        size = info.context.page_size(first)
        async with info.context.read() as session:
            page = await tracking_service.list_experiments(
                session, first=size, after=after, include_deleted=include_deleted
            )
        return to_connection(page, Experiment.of)

    @strawberry.field
    async def experiment(self, info: Ctx, name: str) -> Experiment | None:
        async with info.context.read() as session:
            found = await tracking_service.get_experiment(session, name=name)
        return Experiment.of(found) if found else None

    @strawberry.field
    async def run(self, info: Ctx, id: strawberry.ID) -> Run | None:
        found = await loaders.run_by_id(info.context).load(str(id))
        return Run.of(found) if found else None

    @strawberry.field(
        description="Runs of an experiment that match `filter`, sorted by `orderBy` "
        "(default: newest first)."
    )
    async def runs(
        self,
        info: Ctx,
        experiment: str,
        filter: RunFilter | None = None,
        order_by: RunOrder | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Run]:
        size = info.context.page_size(first)
        async with info.context.read() as session:
            page = await tracking_reads.search_runs(
                session,
                experiment=experiment,
                run_filter=domain_filter(filter),
                order=domain_order(order_by),
                first=size,
                after=after,
            )
        return to_connection(page, Run.of)

    @strawberry.field(
        description="The run with the best value of `metric` among those matching `filter`; "
        "runs without the metric are never best; ties go to the earlier start, then the lower id."
    )
    async def best_run(
        self,
        info: Ctx,
        experiment: str,
        metric: str,
        goal: search.Goal = search.Goal.MAXIMIZE,
        aggregate: search.Aggregate = search.Aggregate.LAST,
        filter: RunFilter | None = None,
    ) -> Run | None:
        async with info.context.read() as session:
            run = await tracking_reads.best_run(
                session,
                experiment=experiment,
                metric=metric,
                goal=goal,
                aggregate=aggregate,
                run_filter=domain_filter(filter),
            )
        return Run.of(run) if run else None
