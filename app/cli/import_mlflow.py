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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

from app.cli.exits import EXIT_CONNECTION, EXIT_ERROR, EXIT_OK, exit_code
from app.cli.token import cli_actor
from app.client.mlflow_rest import MlflowReader, MlflowSourceError

# MLflow's stage names -> modelgraph's stages.
STAGES = {
    "None": "DEVELOPMENT",
    "Staging": "STAGING",
    "Production": "PRODUCTION",
    "Archived": "ARCHIVED",
}
RUN_STATUSES = {
    "RUNNING": "RUNNING",
    "SCHEDULED": "RUNNING",
    "FINISHED": "FINISHED",
    "FAILED": "FAILED",
    "KILLED": "KILLED",
}
POINTS_PER_BATCH = 10_000


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


def _ms(value: Any) -> datetime | None:
    if value in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _tags(entries: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in entries or []}


def _logged_model_id(source: str | None) -> str | None:
    if source and source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    return None


def _float(value: Any) -> float:
    # proto-JSON writes NaN and the infinities as strings.
    return float(value)


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


class Importer:
    def __init__(
        self,
        db: Any,
        blobs: Any,
        reader: MlflowReader,
        *,
        max_artifact_bytes: int,
        max_artifacts_per_run: int,
        actor: str,
        progress: Progress | None = None,
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

    # ---------------------------------------------------------------- tracking

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

    async def _experiment(self, source: dict[str, Any]) -> None:
        from app.tracking import imports

        async with self.db.unit_of_work() as session:
            experiment, created = await imports.import_experiment(
                session,
                name=source["name"],
                tags=_tags(source.get("tags")),
                created_at=_ms(source.get("creation_time")),
                actor=self.actor,
            )
        self._count("experiments", created)
        outputs: dict[str, list[tuple[str, int]]] = {}
        async for run in self.reader.runs(source["experiment_id"]):
            info = run["info"]
            await self._guard("run", info["run_id"], partial(self._run, experiment, run))
            made = run.get("outputs", {}).get("model_outputs", [])
            if made:
                outputs[info["run_id"]] = [(o["model_id"], int(o.get("step", 0))) for o in made]
        async for model in self.reader.logged_models(source["experiment_id"]):
            await self._guard(
                "loggedModel",
                model["info"]["model_id"],
                partial(self._logged_model, experiment, model),
            )
        for run_id, made in outputs.items():
            await self._guard("runOutputs", run_id, partial(self._outputs, run_id, made))
        if source.get("lifecycle_stage") == "deleted":
            async with self.db.unit_of_work() as session:
                experiment = await session.merge(experiment)
                deleted = await imports.mark_experiment_deleted(
                    session,
                    experiment=experiment,
                    at=_ms(source.get("last_update_time")),
                    actor=self.actor,
                )
            self._count("deletedExperiments", deleted)

    async def _run(self, experiment: Any, source: dict[str, Any]) -> None:
        from app.tracking import datasets, imports
        from app.tracking.datasets import DatasetInput
        from app.tracking.models import RunStatus

        info, data = source["info"], source.get("data", {})
        run_id = info["run_id"]
        start = _ms(info.get("start_time")) or datetime.now(UTC)
        async with self.db.unit_of_work() as session:
            run, created = await imports.import_run(
                session,
                run_id=run_id,
                experiment=experiment,
                name=info.get("run_name") or None,
                start_time=start,
                user_id=info.get("user_id") or None,
                parent_run_id=_tags(data.get("tags")).get("mlflow.parentRunId"),
                actor=self.actor,
            )
            if run.deleted_at is not None:
                # Deleted here (by an earlier import or since): left exactly as it is.
                self._count("runs", False)
                return
            params = {p["key"]: p.get("value", "") for p in data.get("params", [])}
            new_params = await imports.add_missing_params(
                session, run_id=run.id, params=params, actor=self.actor
            )
            new_tags = await imports.add_missing_tags(
                session, run_id=run.id, tags=_tags(data.get("tags")), actor=self.actor
            )
            inputs = [
                DatasetInput(
                    name=d["dataset"]["name"],
                    digest=d["dataset"]["digest"],
                    source_type=d["dataset"].get("source_type", ""),
                    source=d["dataset"].get("source", ""),
                    schema=d["dataset"].get("schema") or None,
                    profile=d["dataset"].get("profile") or None,
                    tags=_tags(d.get("tags")),
                )
                for d in source.get("inputs", {}).get("dataset_inputs", [])
            ]
            if inputs:
                # Idempotent: an input the run already has is left as it is.
                await datasets.log_inputs(session, run_id=run.id, inputs=inputs, actor=self.actor)
        self._count("datasetInputs", created, len(inputs))
        self._count("runs", created)
        self._count("params", True, new_params)
        self._count("runTags", True, new_tags)
        latest = {
            m["key"]: (int(m.get("step", 0)), int(m.get("timestamp", 0)))
            for m in data.get("metrics", [])
        }
        here: dict[str, tuple[int, int]] = {}
        if not created:
            async with self.db.read() as session:
                here = await imports.latest_positions(session, run_id=run_id)
        for key in sorted(latest):
            if here.get(key) == latest[key]:
                # Its latest point is already here: nothing was appended since.
                continue
            history = await self.reader.metric_history(run_id, key)
            points = [
                imports.Point(
                    key=key,
                    value=_float(m.get("value", 0.0)),
                    step=int(m.get("step", 0)),
                    timestamp=int(m.get("timestamp", 0)),
                )
                for m in history
            ]
            async with self.db.read() as session:
                missing = await imports.missing_points(
                    session, run_id=run_id, key=key, points=points
                )
            self._count("points", False, len(points) - len(missing))
            for i in range(0, len(missing), POINTS_PER_BATCH):
                batch = missing[i : i + POINTS_PER_BATCH]
                async with self.db.unit_of_work() as session:
                    await imports.append_points(
                        session, run_id=run_id, points=batch, actor=self.actor
                    )
                self._count("points", True, len(batch))
        await self._run_files(run_id, info.get("artifact_uri") or "")
        status = RunStatus(RUN_STATUSES.get(info.get("status", "RUNNING"), "RUNNING"))
        async with self.db.unit_of_work() as session:
            await imports.end_if_running(
                session,
                run_id=run_id,
                status=status,
                end_time=_ms(info.get("end_time")),
                actor=self.actor,
            )
        if info.get("lifecycle_stage") == "deleted":
            # MLflow's REST API does not say when a run was deleted: the import's time.
            async with self.db.unit_of_work() as session:
                deleted = await imports.mark_run_deleted(
                    session, run_id=run_id, at=None, actor=self.actor
                )
            self._count("deletedRuns", deleted)

    async def _logged_model(self, experiment: Any, source: dict[str, Any]) -> None:
        from app.artifacts import service as artifacts
        from app.tracking import imports
        from app.tracking.logged_model_models import LoggedModelStatus

        info, data = source["info"], source.get("data", {})
        model_id = info["model_id"]
        async with self.db.unit_of_work() as session:
            model, created = await imports.import_logged_model(
                session,
                model_id=model_id,
                experiment=experiment,
                name=info.get("name") or model_id,
                source_run_id=info.get("source_run_id") or None,
                model_type=info.get("model_type") or None,
                params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                tags=_tags(info.get("tags")),
                created_at=_ms(info.get("creation_timestamp_ms")),
                actor=self.actor,
            )
        self._count("loggedModels", created)
        if model.deleted_at is not None:
            return  # deleted here: left exactly as it is
        root = self.reader.proxied_path(info.get("artifact_uri") or "")
        if root is None:
            self._skip("loggedModelFiles", model_id, f"{info.get('artifact_uri')} is not proxied")
        else:
            async with self.db.read() as session:
                have = {
                    a.path for a in await artifacts.list_model_artifacts(session, model_id=model_id)
                }
            for entry in await self.reader.walk_artifacts(root):
                if entry["path"] in have:
                    continue
                uploaded = await artifacts.store_content(
                    self.db,
                    self.blobs,
                    self.reader.download(root, entry["path"]),
                    max_bytes=self.max_bytes,
                )
                async with self.db.unit_of_work() as session:
                    await artifacts.log_model_artifact(
                        session,
                        self.blobs,
                        model_id=model_id,
                        path=entry["path"],
                        uploaded=uploaded,
                        actor=self.actor,
                        max_files=self.max_files,
                    )
                self._count("loggedModelFiles", True)
        status = {
            "LOGGED_MODEL_READY": LoggedModelStatus.READY,
            "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
        }.get(info.get("status", ""), LoggedModelStatus.PENDING)
        async with self.db.unit_of_work() as session:
            await imports.finish_logged_model(
                session,
                model_id=model_id,
                status=status,
                updated_at=_ms(info.get("last_updated_timestamp_ms")),
                actor=self.actor,
            )

    async def _outputs(self, run_id: str, made: list[tuple[str, int]]) -> None:
        from app.tracking import logged_models
        from app.tracking.logged_model_models import LoggedModel

        async with self.db.unit_of_work() as session:
            found = {m: await session.get(LoggedModel, m) for m, _step in made}
            known = [
                (m, step)
                for m, step in made
                if (model := found[m]) is not None and model.deleted_at is None
            ]
            # Idempotent: an output already recorded at this step is left as it is.
            await logged_models.log_outputs(session, run_id=run_id, outputs=known, actor=self.actor)

    async def _run_files(self, run_id: str, artifact_uri: str) -> None:
        from app.artifacts import service as artifacts

        root = self.reader.proxied_path(artifact_uri)
        if root is None:
            if artifact_uri:
                self._skip(
                    "runFiles",
                    run_id,
                    f"{artifact_uri} is not served by the MLflow server (start it with "
                    "--serve-artifacts, or copy the files with `modelgraph artifacts upload`)",
                )
            return
        files = await self.reader.walk_artifacts(root)
        async with self.db.read() as session:
            have = {a.path: a.size for a in await artifacts.list_artifacts(session, run_id=run_id)}
        for entry in files:
            path = entry["path"]
            if path in have:
                self._count("files", False)
                continue
            uploaded = await artifacts.store_content(
                self.db, self.blobs, self.reader.download(root, path), max_bytes=self.max_bytes
            )
            async with self.db.unit_of_work() as session:
                await artifacts.log_artifact(
                    session,
                    self.blobs,
                    run_id=run_id,
                    path=path,
                    uploaded=uploaded,
                    actor=self.actor,
                    max_files=self.max_files,
                )
            self._count("files", True)

    # ---------------------------------------------------------------- registry

    async def _registry(self, wanted: list[str] | None) -> None:
        found = [m async for m in self.reader.registered_models()]
        if wanted is not None:
            names = {m["name"] for m in found}
            for name in sorted(set(wanted) - names):
                self.summary.failed.append(
                    {"kind": "model", "name": name, "reason": "not found in the source"}
                )
            found = [m for m in found if m["name"] in set(wanted)]
        for i, model in enumerate(found, 1):
            self.phase = f"model {i}/{len(found)} {model['name']}"
            tags = _tags(model.get("tags"))
            if tags.get("mlflow.prompt.is_prompt") == "true":
                self._skip("model", model["name"], "an MLflow prompt, not a model")
                continue
            await self._guard("model", model["name"], partial(self._model, model))

    async def _model(self, source: dict[str, Any]) -> None:
        from app.registry import imports
        from app.registry.stages import Stage

        name = source["name"]
        async with self.db.unit_of_work() as session:
            _model, created = await imports.import_model(
                session,
                name=name,
                description=source.get("description") or None,
                tags=_tags(source.get("tags")),
                created_at=_ms(source.get("creation_timestamp")),
                updated_at=_ms(source.get("last_updated_timestamp")),
                actor=self.actor,
            )
        self._count("models", created)
        versions = await self.reader.versions(name)
        async with self.db.read() as session:
            have = await imports.version_numbers(session, model=name)
        imported: list[dict[str, Any]] = []
        for version in versions:
            number = int(version["version"])
            if version.get("status", "READY") != "READY":
                self._skip("version", f"{name}/{number}", f"status {version.get('status')}")
                continue
            before = len(self.summary.failed)
            await self._guard(
                "version", f"{name}/{number}", partial(self._version, name, version, have)
            )
            if len(self.summary.failed) == before:
                imported.append(version)
        # Oldest change first, and at one instant an archiving before a promotion, so the
        # version MLflow promoted last is the one left in PRODUCTION.
        order = {"Archived": 0, "None": 1, "Staging": 2, "Production": 3}
        imported.sort(
            key=lambda v: (
                int(v.get("last_updated_timestamp") or 0),
                order.get(v.get("current_stage", "None"), 1),
            )
        )
        for version in imported:
            stage = Stage(STAGES.get(version.get("current_stage") or "None", "DEVELOPMENT"))
            at = _ms(version.get("last_updated_timestamp")) or datetime.now(UTC)

            async def move(v: dict[str, Any] = version, s: Stage = stage, t: datetime = at) -> None:
                async with self.db.unit_of_work() as session:
                    moves = await imports.import_stage(
                        session,
                        model=name,
                        version=int(v["version"]),
                        stage=s,
                        at=t,
                        source_name=f"MLflow {self.reader.url}",
                        actor=self.actor,
                    )
                self._count("transitions", True, len(moves))

            await self._guard("stage", f"{name}/{version['version']}", move)
        detail = await self.reader.registered_model(name)
        for alias in detail.get("aliases", []):

            async def point(a: dict[str, Any] = alias) -> None:
                async with self.db.unit_of_work() as session:
                    created = await imports.add_missing_alias(
                        session,
                        model=name,
                        alias=a["alias"],
                        version=int(a["version"]),
                        actor=self.actor,
                    )
                self._count("aliases", created)

            await self._guard("alias", f"{name}@{alias['alias']}", point)

    async def _version(self, name: str, source: dict[str, Any], have: set[int]) -> None:
        from app.registry import imports

        number = int(source["version"])
        # A version already here keeps its files: they are not downloaded again.
        files = [] if number in have else await self._version_files(source)
        async with self.db.unit_of_work() as session:
            _version, created = await imports.import_version(
                session,
                model=name,
                version=number,
                run_id=source.get("run_id") or None,
                source=source.get("source") or None,
                description=source.get("description") or None,
                tags=_tags(source.get("tags")),
                created_at=_ms(source.get("creation_timestamp")),
                files=files,
                run_link=source.get("run_link") or None,
                logged_model_id=source.get("model_id") or _logged_model_id(source.get("source")),
                actor=self.actor,
            )
        self._count("versions", created)

    async def _version_root(self, source: dict[str, Any]) -> str | None:
        """Where the version's files are on the artifact proxy, if they are there."""
        uri = source.get("storage_location") or ""
        origin = source.get("source") or ""
        if not uri and origin.startswith("models:/m-"):
            model_id = origin.removeprefix("models:/").split("/")[0]
            answer = await self.reader.api("GET", f"logged-models/{model_id}")
            uri = answer.get("model", {}).get("info", {}).get("artifact_uri", "")
        elif not uri and origin.startswith("runs:/"):
            run_id, _, sub = origin.removeprefix("runs:/").partition("/")
            answer = await self.reader.api("GET", "runs/get", params={"run_id": run_id})
            base = answer["run"]["info"].get("artifact_uri", "")
            uri = f"{base.rstrip('/')}/{sub.strip('/')}" if sub.strip("/") else base
        elif not uri:
            uri = origin
        return self.reader.proxied_path(uri)

    async def _version_files(self, source: dict[str, Any]) -> list[tuple[str, str, int]]:
        from app.artifacts import service as artifacts

        root = await self._version_root(source)
        label = f"{source['name']}/{source['version']}"
        if root is None:
            self._skip(
                "versionFiles", label, f"{source.get('source')} is not on the artifact proxy"
            )
            return []
        try:
            entries = await self.reader.walk_artifacts(root)
        except MlflowSourceError as exc:
            if exc.status is None:
                raise
            self._skip("versionFiles", label, exc.message)
            return []
        if not entries:
            # A runs:/ source naming one file rather than a folder.
            parent, _, leaf = root.rpartition("/")
            listed = await self.reader.list_artifacts(parent) if parent else []
            if any(e["path"] == leaf and not e.get("is_dir") for e in listed):
                root, entries = parent, [e for e in listed if e["path"] == leaf]
        files = []
        for entry in entries:
            uploaded = await artifacts.store_content(
                self.db,
                self.blobs,
                self.reader.download(root, entry["path"]),
                max_bytes=self.max_bytes,
            )
            files.append((entry["path"], uploaded.digest, uploaded.size))
            self._count("versionFiles", True)
        return files


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
