"""Per-request loaders for the registry graph; each batch is one SQL statement."""

from typing import Any

from strawberry.dataloader import DataLoader

from app.db.pagination import Page
from app.graphql.context import Context
from app.registry import reads as registry_reads
from app.registry.stages import Stage


def model_by_id(ctx: Context) -> DataLoader[int, Any]:
    return ctx.loader("model_by_id", lambda s, ids: registry_reads.models_by_ids(s, ids=ids))


def version_by_id(ctx: Context) -> DataLoader[int, Any]:
    return ctx.loader("version_by_id", lambda s, ids: registry_reads.versions_by_ids(s, ids=ids))


def versions_by_run(ctx: Context) -> DataLoader[str, list[Any]]:
    return ctx.loader(
        "versions_by_run", lambda s, ids: registry_reads.versions_by_runs(s, run_ids=ids), list
    )


def aliases_by_model(ctx: Context) -> DataLoader[int, list[tuple[str, Any]]]:
    return ctx.loader(
        "aliases_by_model",
        lambda s, ids: registry_reads.aliases_by_models(s, model_ids=ids),
        list,
    )


def aliases_by_version(ctx: Context) -> DataLoader[int, list[str]]:
    return ctx.loader(
        "aliases_by_version",
        lambda s, ids: registry_reads.aliases_by_versions(s, version_ids=ids),
        list,
    )


def transitions_by_version(ctx: Context) -> DataLoader[int, list[Any]]:
    return ctx.loader(
        "transitions_by_version",
        lambda s, ids: registry_reads.transitions_by_versions(s, version_ids=ids),
        list,
    )


def version_page(ctx: Context) -> DataLoader[tuple[int, Stage | None, int, str | None], Page[Any]]:
    """Keyed by (model id, stage, first, after)."""
    return ctx.grouped_loader(
        "version_page",
        lambda s, ids, stage, first, after: registry_reads.versions_per_model(
            s, model_ids=ids, stage=stage, first=first, after=after
        ),
    )


def latest_version(ctx: Context) -> DataLoader[tuple[int, Stage | None], Any]:
    """Keyed by (model id, stage or None): the highest-numbered version there, or None."""
    return ctx.grouped_loader(
        "latest_version",
        lambda s, ids, stage: registry_reads.latest_versions(s, model_ids=ids, stage=stage),
    )


def transition_page(ctx: Context) -> DataLoader[tuple[int, int, str | None], Page[Any]]:
    """Keyed by (model id, first, after)."""
    return ctx.grouped_loader(
        "transition_page",
        lambda s, ids, first, after: registry_reads.transitions_per_model(
            s, model_ids=ids, first=first, after=after
        ),
    )


def validations_by_version(ctx: Context) -> DataLoader[int, list[Any]]:
    return ctx.loader(
        "validations_by_version",
        lambda s, ids: registry_reads.validations_by_versions(s, version_ids=ids),
        list,
    )
