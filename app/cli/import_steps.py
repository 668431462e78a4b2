"""The bookkeeping import-mlflow's copy steps share: what was copied, already here,
skipped or failed (Summary), progress ticks, and the guard that reports one entity's
refusal and goes on. The steps per kind are app/cli/import_tracking.py and
app/cli/import_registry.py; the command is app/cli/import_mlflow.py."""

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.client.mlflow_rest import MlflowReader, MlflowSourceError

if TYPE_CHECKING:
    from app.cli.import_mlflow import Progress


def time_from_ms(value: Any) -> datetime | None:
    if value in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def tags_of(entries: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in entries or []}


@dataclass
class Summary:
    source: str
    copied: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "copied": dict(self.copied),
            "alreadyPresent": dict(self.present),
            "skipped": self.skipped,
            "failed": self.failed,
        }


class ImportSteps:
    """State and bookkeeping of one import; the copy steps are its subclasses."""

    def __init__(
        self,
        db: Any,
        blobs: Any,
        reader: MlflowReader,
        *,
        max_artifact_bytes: int,
        max_artifacts_per_run: int,
        actor: str,
        progress: "Progress | None" = None,
    ) -> None:
        self.db, self.blobs, self.reader = db, blobs, reader
        self.max_bytes, self.max_files = max_artifact_bytes, max_artifacts_per_run
        self.actor = actor
        self.progress = progress
        self.summary = Summary(source=reader.url)
        self.phase = "starting"

    # ---------------------------------------------------------------- bookkeeping

    def _tick(self, *, force: bool = False) -> None:
        if self.progress is not None:
            self.progress.show(self.summary.copied, self.phase, force=force)

    def _count(self, kind: str, created: bool, n: int = 1) -> None:
        (self.summary.copied if created else self.summary.present)[kind] += n
        self._tick()

    def _skip(self, kind: str, name: str, reason: str) -> None:
        self.summary.skipped.append({"kind": kind, "name": name, "reason": reason})

    async def _guard(self, kind: str, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one entity's import; a refusal is reported and the import goes on."""
        from app.errors import DomainError

        try:
            await work()
        except DomainError as exc:
            self.summary.failed.append({"kind": kind, "name": name, "reason": exc.message})
        except MlflowSourceError as exc:
            if exc.status is None:
                raise  # the source is gone: nothing more can be read
            self.summary.failed.append({"kind": kind, "name": name, "reason": exc.message})
