"""import-mlflow's copy steps for tracking: experiments, runs (params, tags, dataset
inputs, metric histories, files, status), logged models (files, status) and the runs'
model outputs, through app/tracking/imports.py and app/artifacts (runs.py,
model_files.py)."""

from datetime import UTC, datetime
from functools import partial
from typing import Any

from app.cli.import_steps import ImportSteps, tags_of, time_from_ms

# MLflow's run statuses -> modelgraph's.
RUN_STATUSES = {
    "RUNNING": "RUNNING",
    "SCHEDULED": "RUNNING",
    "FINISHED": "FINISHED",
    "FAILED": "FAILED",
    "KILLED": "KILLED",
}
POINTS_PER_BATCH = 10_000


def _float(value: Any) -> float:
    # proto-JSON writes NaN and the infinities as strings.
    return float(value)


class TrackingSteps(ImportSteps):
    async def _experiment(self, source: dict[str, Any]) -> None:
        from app.tracking import imports

        async with self.db.unit_of_work() as session:
            experiment, created = await imports.import_experiment(
                session,
                name=source["name"],
                tags=tags_of(source.get("tags")),
                created_at=time_from_ms(source.get("creation_time")),
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
                    at=time_from_ms(source.get("last_update_time")),
                    actor=self.actor,
                )
            self._count("deletedExperiments", deleted)

    async def _run(self, experiment: Any, source: dict[str, Any]) -> None:
        from app.tracking import datasets, imports
        from app.tracking.datasets import DatasetInput
        from app.tracking.models import RunStatus

        info, data = source["info"], source.get("data", {})
        run_id = info["run_id"]
        start = time_from_ms(info.get("start_time")) or datetime.now(UTC)
        async with self.db.unit_of_work() as session:
            run, created = await imports.import_run(
                session,
                run_id=run_id,
                experiment=experiment,
                name=info.get("run_name") or None,
                start_time=start,
                user_id=info.get("user_id") or None,
                parent_run_id=tags_of(data.get("tags")).get("mlflow.parentRunId"),
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
                session, run_id=run.id, tags=tags_of(data.get("tags")), actor=self.actor
            )
            inputs = [
                DatasetInput(
                    name=d["dataset"]["name"],
                    digest=d["dataset"]["digest"],
                    source_type=d["dataset"].get("source_type", ""),
                    source=d["dataset"].get("source", ""),
                    schema=d["dataset"].get("schema") or None,
                    profile=d["dataset"].get("profile") or None,
                    tags=tags_of(d.get("tags")),
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
                end_time=time_from_ms(info.get("end_time")),
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
        from app.artifacts.content import store_content
        from app.artifacts.model_files import list_model_artifacts, log_model_artifact
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
                tags=tags_of(info.get("tags")),
                created_at=time_from_ms(info.get("creation_timestamp_ms")),
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
                have = {a.path for a in await list_model_artifacts(session, model_id=model_id)}
            for entry in await self.reader.walk_artifacts(root):
                if entry["path"] in have:
                    continue
                uploaded = await store_content(
                    self.db,
                    self.blobs,
                    self.reader.download(root, entry["path"]),
                    max_bytes=self.max_bytes,
                )
                async with self.db.unit_of_work() as session:
                    await log_model_artifact(
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
                updated_at=time_from_ms(info.get("last_updated_timestamp_ms")),
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
        from app.artifacts.content import store_content
        from app.artifacts.runs import list_artifacts, log_artifact

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
            have = {a.path: a.size for a in await list_artifacts(session, run_id=run_id)}
        for entry in files:
            path = entry["path"]
            if path in have:
                self._count("files", False)
                continue
            uploaded = await store_content(
                self.db, self.blobs, self.reader.download(root, path), max_bytes=self.max_bytes
            )
            async with self.db.unit_of_work() as session:
                await log_artifact(
                    session,
                    self.blobs,
                    run_id=run_id,
                    path=path,
                    uploaded=uploaded,
                    actor=self.actor,
                    max_files=self.max_files,
                )
            self._count("files", True)
