"""Per-request loaders for artifacts; each batch is one SQL statement."""

from typing import Any

from strawberry.dataloader import DataLoader

from app.artifacts.model_files import files_by_versions
from app.artifacts.runs import artifacts_by_runs
from app.graphql.context import Context


def files_by_version(ctx: Context) -> DataLoader[int, list[Any]]:
    return ctx.loader(
        "files_by_version",
        lambda s, ids: files_by_versions(s, version_ids=ids),
        list,
    )


def artifacts_by_run(ctx: Context) -> DataLoader[tuple[str, str], list[Any]]:
    """Keyed by (run id, folder): the run's files under the folder."""
    return ctx.grouped_loader(
        "artifacts_by_run",
        lambda s, ids, prefix: artifacts_by_runs(s, run_ids=ids, prefix=prefix),
        list,
    )
