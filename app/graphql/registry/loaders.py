"""Per-request loaders for the registry graph; each batch is one SQL statement."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from app.db.pagination import Page
from app.graphql.context import Context
from app.registry import service as registry_service
from app.registry.stages import Stage


def model_by_id(ctx: Context) -> DataLoader[int, Any]:
    return ctx.loader("model_by_id", lambda s, ids: registry_service.models_by_ids(s, ids=ids))


def version_by_id(ctx: Context) -> DataLoader[int, Any]:
    return ctx.loader("version_by_id", lambda s, ids: registry_service.versions_by_ids(s, ids=ids))


def versions_by_run(ctx: Context) -> DataLoader[str, list[Any]]:
    return ctx.loader(
        "versions_by_run", lambda s, ids: registry_service.versions_by_runs(s, run_ids=ids), list
    )


def aliases_by_model(ctx: Context) -> DataLoader[int, list[tuple[str, Any]]]:
    return ctx.loader(
        "aliases_by_model",
        lambda s, ids: registry_service.aliases_by_models(s, model_ids=ids),
        list,
    )


def aliases_by_version(ctx: Context) -> DataLoader[int, list[str]]:
    return ctx.loader(
        "aliases_by_version",
        lambda s, ids: registry_service.aliases_by_versions(s, version_ids=ids),
        list,
    )


def transitions_by_version(ctx: Context) -> DataLoader[int, list[Any]]:
    return ctx.loader(
        "transitions_by_version",
        lambda s, ids: registry_service.transitions_by_versions(s, version_ids=ids),
        list,
    )


async def _latest_versions(session: Any, keys: Sequence[tuple[int, Stage | None]]) -> dict:
    by_stage: dict[Stage | None, list[int]] = defaultdict(list)
    for model_id, stage in keys:
        by_stage[stage].append(model_id)
    out: dict[tuple[int, Stage | None], Any] = {}
    for stage, model_ids in by_stage.items():
        found = await registry_service.latest_versions(session, model_ids=model_ids, stage=stage)
        out.update({(mid, stage): v for mid, v in found.items()})
    return out


def latest_version(ctx: Context) -> DataLoader[tuple[int, Stage | None], Any]:
    """Keyed by (model id, stage or None): one statement per distinct stage in a batch."""
    return ctx.loader("latest_version", _latest_versions)


async def _version_pages(
    session: Any, keys: Sequence[tuple[int, Stage | None, int, str | None]]
) -> dict:
    groups: dict[tuple[Stage | None, int, str | None], list[int]] = defaultdict(list)
    for model_id, *args in keys:
        groups[tuple(args)].append(model_id)  # type: ignore[index]
    out: dict[tuple[int, Stage | None, int, str | None], Page[Any]] = {}
    for (stage, first, after), model_ids in groups.items():
        pages = await registry_service.versions_by_models(
            session, model_ids=model_ids, stage=stage, first=first, after=after
        )
        out.update({(mid, stage, first, after): page for mid, page in pages.items()})
    return out


def version_page(ctx: Context) -> DataLoader[tuple[int, Stage | None, int, str | None], Page[Any]]:
    """Keyed by (model id, stage, first, after): one windowed statement per argument set."""
    return ctx.loader("version_page", _version_pages)
