"""Per-request loaders for the tracking graph; each batch is one SQL statement."""

from typing import Any

from strawberry.dataloader import DataLoader

from app.graphql.context import Context
from app.tracking import datasets as tracking_datasets
from app.tracking import reads as tracking_reads


def experiment_by_id(ctx: Context) -> DataLoader[int, Any]:
    return ctx.loader(
        "experiment_by_id", lambda s, ids: tracking_reads.experiments_by_ids(s, ids=ids)
    )


def run_by_id(ctx: Context) -> DataLoader[str, Any]:
    return ctx.loader("run_by_id", lambda s, ids: tracking_reads.runs_by_ids(s, ids=ids))


def run_count(ctx: Context) -> DataLoader[int, int]:
    return ctx.loader(
        "run_count",
        lambda s, ids: tracking_reads.run_counts(s, experiment_ids=ids),
        default=lambda: 0,
    )


def params_by_run(ctx: Context) -> DataLoader[str, list[tuple[str, str]]]:
    return ctx.loader(
        "params_by_run", lambda s, ids: tracking_reads.params_by_runs(s, run_ids=ids), list
    )


def tags_by_run(ctx: Context) -> DataLoader[str, list[tuple[str, str]]]:
    return ctx.loader(
        "tags_by_run", lambda s, ids: tracking_reads.tags_by_runs(s, run_ids=ids), list
    )


def latest_metrics_by_run(ctx: Context) -> DataLoader[str, list[Any]]:
    return ctx.loader(
        "latest_metrics_by_run",
        lambda s, ids: tracking_reads.latest_metrics_by_runs(s, run_ids=ids),
        list,
    )


def run_page(ctx: Context) -> DataLoader[tuple[Any, ...], Any]:
    """Keyed by (experiment id, filter, order, first, after)."""
    return ctx.grouped_loader(
        "run_page",
        lambda s, ids, run_filter, order, first, after: tracking_reads.search_runs_per_experiment(
            s, experiment_ids=ids, run_filter=run_filter, order=order, first=first, after=after
        ),
    )


def best_run(ctx: Context) -> DataLoader[tuple[Any, ...], Any]:
    """Keyed by (experiment id, metric, goal, aggregate, filter)."""
    return ctx.grouped_loader(
        "best_run",
        lambda s, ids, metric, goal, aggregate, run_filter: tracking_reads.best_runs_per_experiment(
            s,
            experiment_ids=ids,
            metric=metric,
            goal=goal,
            aggregate=aggregate,
            run_filter=run_filter,
        ),
    )


def children_by_run(ctx: Context) -> DataLoader[str, list[Any]]:
    return ctx.loader(
        "children_by_run", lambda s, ids: tracking_reads.children_by_runs(s, run_ids=ids), list
    )


def inputs_by_run(ctx: Context) -> DataLoader[str, list[Any]]:
    return ctx.loader(
        "inputs_by_run", lambda s, ids: tracking_datasets.inputs_by_runs(s, run_ids=ids), list
    )
