"""modelgraph import-mlflow --from URL: copy an MLflow tracking server into modelgraph.

Reads the source through MLflow's own REST API (app/client/mlflow_rest.py) and writes
straight into modelgraph's database, like `token` and `artifacts verify`, through the
import functions of the domains (app/tracking/imports.py, app/registry/imports.py) and
the artifact service: one unit of work per imported entity (per 10,000 points for a metric
history, per file for artifacts), each change with its Event. Not through GraphQL: an
import keeps the source's ids and times (run ids, start and end times, creation times,
version numbers, when a version reached its stage), which no client-facing mutation
takes; the rules stay in the services the import functions call.

Re-running copies only what is new; nothing already in modelgraph is changed (see
app/tracking/imports.py). Progress goes to stderr, the summary to stdout."""

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from functools import partial
from typing import Any, TextIO

from app.cli.exits import EXIT_CONNECTION, EXIT_ERROR, EXIT_OK, exit_code
from app.cli.import_registry import RegistrySteps
from app.cli.import_steps import Summary
from app.cli.import_tracking import TrackingSteps
from app.cli.token import cli_actor
from app.client.mlflow_rest import MlflowReader, MlflowSourceError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import-mlflow",
        help="copy an MLflow tracking server (experiments, runs, metrics, files, registry)",
        description="Copy an MLflow server's experiments, runs (params, tags, metric "
        "histories, status and times), run files, registered models, versions (with their "
        "files and stage) and aliases into modelgraph's database (MODELGRAPH_DATABASE_URL). "
        "Re-running copies only what is new and changes nothing already copied.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the MLflow server")
    p.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this experiment (repeatable); with any --experiment or --model, only "
        "what is named is copied",
    )
    p.add_argument(
        "--model", action="append", default=[], metavar="NAME", help="copy this registered model"
    )
    p.add_argument(
        "--mlflow-token",
        metavar="TOKEN",
        help="bearer token for the source (default: MLFLOW_TRACKING_TOKEN)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


class Progress:
    """Counts on one line of stderr, redrawn in place on a terminal, or a line per step
    (at most one every few seconds) when stderr is a file or a pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.phase = ""

    def show(self, counts: Counter[str], phase: str, *, force: bool = False) -> None:
        now = time.monotonic()
        changed = phase != self.phase
        if not (self.tty or force or changed) and now - self.last < 5:
            return
        if self.tty and not force and not changed and now - self.last < 0.1:
            return
        self.last, self.phase = now, phase
        line = (
            f"{phase}: experiments {counts['experiments']}  runs {counts['runs']}  "
            f"points {counts['points']}  files {counts['files']}  models {counts['models']}  "
            f"versions {counts['versions']}  transitions {counts['transitions']}  "
            f"aliases {counts['aliases']}"
        )
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Importer(TrackingSteps, RegistrySteps):
    """Experiments (with their runs and logged models) first, then the registry."""

    async def run(self, *, experiments: list[str], models: list[str]) -> Summary:
        named = bool(experiments or models)
        self.phase = "experiments"
        found = [e async for e in self.reader.experiments()]
        wanted = set(experiments)
        for name in sorted(wanted - {e["name"] for e in found}):
            self.summary.failed.append(
                {"kind": "experiment", "name": name, "reason": "not found in the source"}
            )
        chosen = [e for e in found if not named or e["name"] in wanted]
        for i, experiment in enumerate(chosen, 1):
            self.phase = f"experiment {i}/{len(chosen)} {experiment['name']}"
            await self._guard(
                "experiment", experiment["name"], partial(self._experiment, experiment)
            )
        self.phase = "registered models"
        self._tick(force=True)
        await self._registry(models if named else None)
        self.phase = "done"
        self._tick(force=True)
        if self.progress is not None:
            self.progress.done()
        return self.summary


async def import_mlflow(
    settings: Any,
    url: str,
    *,
    experiments: list[str] = (),  # type: ignore[assignment]
    models: list[str] = (),  # type: ignore[assignment]
    token: str | None = None,
    progress: Progress | None = None,
    actor: str | None = None,
) -> Summary:
    """Copy the MLflow server at `url` into the database of `settings` (migrated first)."""
    from app.artifacts.store import BlobStore
    from app.db import Database, migrate

    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    db = Database.from_settings(settings)
    blobs = BlobStore.from_setting(settings.artifact_store, settings.database_url)
    try:
        async with MlflowReader(url, token=token) as reader:
            importer = Importer(
                db,
                blobs,
                reader,
                max_artifact_bytes=settings.max_artifact_bytes,
                max_artifacts_per_run=settings.max_artifacts_per_run,
                actor=actor or f"{cli_actor()}/import-mlflow",
                progress=progress,
            )
            return await importer.run(experiments=list(experiments), models=list(models))
    finally:
        await db.dispose()


def _print_summary(summary: Summary, out: TextIO) -> None:
    kinds = sorted(set(summary.copied) | set(summary.present))
    out.write(f"imported from {summary.source}\n")
    out.write(f"{'':20}{'copied':>10}{'already here':>14}\n")
    for kind in kinds:
        out.write(f"{kind:<20}{summary.copied[kind]:>10}{summary.present[kind]:>14}\n")
    for item in summary.skipped:
        out.write(f"skipped {item['kind']} {item['name']}: {item['reason']}\n")
    for item in summary.failed:
        out.write(f"FAILED  {item['kind']} {item['name']}: {item['reason']}\n")
    out.write("ok\n" if not summary.failed else f"{len(summary.failed)} failed\n")


def run(args: argparse.Namespace) -> int:
    import os

    from app.config import Settings
    from app.errors import DomainError

    token = args.mlflow_token or os.environ.get("MLFLOW_TRACKING_TOKEN") or None
    try:
        summary = asyncio.run(
            import_mlflow(
                Settings(),
                args.source,
                experiments=args.experiment,
                models=args.model,
                token=token,
                progress=Progress(sys.stderr),
            )
        )
    except MlflowSourceError as exc:
        print(f"modelgraph import-mlflow: {exc.message}", file=sys.stderr)
        return EXIT_CONNECTION
    except DomainError as exc:
        print(f"modelgraph import-mlflow: {exc.message}", file=sys.stderr)
        return exit_code(exc.code)
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        _print_summary(summary, sys.stdout)
    return EXIT_OK if not summary.failed else EXIT_ERROR
