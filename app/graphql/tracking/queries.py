import strawberry

from app.errors import ValidationError
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

strawberry.enum(
    search.ViewType,
    name="RunViewType",
    description="Which runs a search sees: active ones (the default), deleted ones, or all.",
)


def _experiment_pks(ids: list[strawberry.ID] | None) -> list[int] | None:
    if ids is None:
        return None
    out = []
    for i, value in enumerate(ids):
        try:
            pk = int(str(value))
        except ValueError:
            raise ValidationError(f"experimentIds[{i}]", "is not an experiment id") from None
        if not 0 <= pk < 2**31:
            raise ValidationError(f"experimentIds[{i}]", "is not an experiment id")
        out.append(pk)
    return out


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

    @strawberry.field(
        description="Runs across experiments (all when experimentIds is not given) that match "
        "`filter`, in MLflow's grammar: clauses joined by AND on metrics.<key> (its latest "
        "value), params.<key>, tags.<key>, attributes.<run_id|run_name|status|user_id|"
        "start_time|end_time> and datasets.<name|digest|context>, e.g. "
        "\"metrics.acc > 0.9 and params.lr = '0.01'\". `orderBy` items are "
        '"<prefix>.<key> [ASC|DESC]" (runs without the value last); default newest first. '
        "Ordered by a metric, it reads the same index as bestRun."
    )
    async def search_runs(
        self,
        info: Ctx,
        filter: str | None = None,
        order_by: list[str] | None = None,
        experiment_ids: list[strawberry.ID] | None = None,
        view_type: search.ViewType = search.ViewType.ACTIVE_ONLY,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Run]:
        size = info.context.page_size(first)
        parsed = tracking_reads.parse_search(filter=filter, order_by=order_by, view=view_type)
        async with info.context.read() as session:
            page = await tracking_reads.search_runs_matching(
                session,
                search=parsed,
                experiment_ids=_experiment_pks(experiment_ids),
                first=size,
                after=after,
            )
        return to_connection(page, Run.of)
