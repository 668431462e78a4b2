"""Fill a real MLflow server with what a team's history holds, through the official client.

Run by the MLflow environment's own python (scripts/mlflow-env), never by the app's:
    <mlflow-python> populate_mlflow.py FACTS.json   (MLFLOW_TRACKING_URI set to the server)
Writes one JSON object to FACTS.json: the facts the import tests compare modelgraph against, as the
client wrote them (ids, metric histories, file digests, stages and times)."""

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.pyfunc import PythonModel


class Doubler(PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return [2 * x for x in model_input]


def tick() -> None:
    # MLflow's times are milliseconds: keep consecutive changes apart.
    time.sleep(0.02)


def main() -> None:
    client = MlflowClient()
    facts: dict = {"experiments": {}, "runs": {}, "models": {}}

    alpha_id = client.create_experiment("imp-alpha", tags={"team": "vision", "note": "first"})
    beta_id = client.create_experiment("imp-beta")
    gone_id = client.create_experiment("imp-gone")
    facts["experiments"] = {"imp-alpha": alpha_id, "imp-beta": beta_id, "imp-gone": gone_id}

    # A finished training run with params, tags, metric histories, a dataset and files.
    mlflow.set_experiment(experiment_id=alpha_id)
    with mlflow.start_run(run_name="train-1") as run:
        mlflow.log_params({"lr": "0.01", "epochs": "5"})
        mlflow.set_tags({"owner": "ana", "purpose": "baseline"})
        base = 1_700_000_000_000
        points = [Metric("acc", 0.5 + i / 10, base + i * 1000, i) for i in range(5)]
        points += [Metric("loss", 1.0 / (i + 1), base + i * 1000, i) for i in range(5)]
        # A repeated step: MLflow keeps both points.
        points.append(Metric("loss", 0.15, base + 9000, 4))
        client.log_batch(run.info.run_id, metrics=points)
        dataset = mlflow.data.from_numpy(np.arange(12).reshape(4, 3), name="digits-train")
        mlflow.log_input(dataset, context="training")
        facts["dataset_digest"] = dataset.digest
        mlflow.log_dict({"classes": ["cat", "dog"]}, "meta/classes.json")
        mlflow.log_text("hello artifacts\n", "notes.txt")
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "weights.bin"
            blob.write_bytes(bytes(range(256)) * 64)
            mlflow.log_artifact(str(blob), "model-files")
        # A nested child run.
        with mlflow.start_run(run_name="train-1-fold-0", nested=True) as child:
            mlflow.log_metric("acc", 0.61, step=0)
            child_id = child.info.run_id
        # An MLflow 3 logged model, registered as version 1 of imp-clf.
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=Doubler(),
            pip_requirements=["mlflow"],
            registered_model_name="imp-clf",
        )
        train_id = run.info.run_id
    facts["logged_model_id"] = info.model_id

    # A second run (also a logged model, version 2), and a failed run.
    with mlflow.start_run(run_name="train-2") as run2:
        mlflow.log_param("lr", "0.02")
        mlflow.log_metric("acc", 0.93, step=0)
        info2 = mlflow.pyfunc.log_model(
            name="model",
            python_model=Doubler(),
            pip_requirements=["mlflow"],
            registered_model_name="imp-clf",
        )
    facts["logged_model_id_2"] = info2.model_id
    with mlflow.start_run(run_name="broken") as broken:
        mlflow.log_metric("acc", 0.1)
    client.set_terminated(broken.info.run_id, status="FAILED")
    # A deleted run.
    with mlflow.start_run(run_name="discarded") as discarded:
        mlflow.log_param("lr", "9")
    client.delete_run(discarded.info.run_id)

    # Version 3 from a run's folder (not a logged model).
    v3 = client.create_model_version(
        "imp-clf",
        source=f"runs:/{train_id}/model-files",
        run_id=train_id,
        tags={"kind": "raw-weights"},
        description="weights only",
    )
    assert v3.version == "3", v3.version

    # The stage history: v1 None -> Staging -> Production; v2 None -> Staging -> Production
    # (archiving v1); v3 stays None.
    for version, stage in (("1", "Staging"), ("1", "Production"), ("2", "Staging")):
        tick()
        client.transition_model_version_stage("imp-clf", version, stage)
    tick()
    client.transition_model_version_stage(
        "imp-clf", "2", "Production", archive_existing_versions=True
    )
    tick()
    client.set_registered_model_alias("imp-clf", "champion", "2")
    client.set_registered_model_alias("imp-clf", "challenger", "3")
    client.set_registered_model_tag("imp-clf", "domain", "pets")
    client.update_registered_model("imp-clf", description="classifies pets")
    client.set_model_version_tag("imp-clf", "2", "validated", "yes")

    # Another experiment and model, for the filters.
    mlflow.set_experiment(experiment_id=beta_id)
    with mlflow.start_run(run_name="beta-run") as beta_run:
        mlflow.log_metric("rmse", 3.5, step=0)
        mlflow.log_metric("rmse", 2.5, step=1)
        mlflow.log_text("b", "b.txt")
    client.create_registered_model("imp-other", tags={"team": "ops"})
    client.create_model_version(
        "imp-other", source=f"runs:/{beta_run.info.run_id}", run_id=beta_run.info.run_id
    )
    client.delete_experiment(gone_id)

    # The facts, read back through the client (what MLflow holds).
    for run_id in (train_id, child_id, run2.info.run_id, broken.info.run_id):
        got = client.get_run(run_id)
        histories = {
            key: [[m.step, m.timestamp, m.value] for m in client.get_metric_history(run_id, key)]
            for key in got.data.metrics
        }
        facts["runs"][got.info.run_name] = {
            "id": run_id,
            "experiment_id": got.info.experiment_id,
            "status": got.info.status,
            "start_time": got.info.start_time,
            "end_time": got.info.end_time,
            "params": got.data.params,
            "tags": {k: v for k, v in got.data.tags.items()},
            "metrics": histories,
        }
    facts["runs"]["discarded"] = {"id": discarded.info.run_id}
    facts["runs"]["beta-run"] = {"id": beta_run.info.run_id}
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(train_id, "", tmp))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            files[path.relative_to(local).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    facts["runs"]["train-1"]["files"] = files
    model_files = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{info2.model_id}", dst_path=tmp))
        # registered_model_meta is written by the client's download, not kept by the server.
        for path in sorted(
            p for p in local.rglob("*") if p.is_file() and p.name != "registered_model_meta"
        ):
            model_files[path.relative_to(local).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    facts["logged_model_2_files"] = model_files
    for name in ("imp-clf", "imp-other"):
        model = client.get_registered_model(name)
        facts["models"][name] = {
            "created": model.creation_timestamp,
            "aliases": dict(model.aliases),
            "tags": dict(model.tags),
            "description": model.description,
            "versions": {
                v.version: {
                    "stage": v.current_stage,
                    "created": v.creation_timestamp,
                    "updated": v.last_updated_timestamp,
                    "source": v.source,
                    "run_id": v.run_id,
                    "tags": dict(v.tags),
                }
                for v in client.search_model_versions(f"name='{name}'")
            },
        }
    Path(sys.argv[1]).write_text(json.dumps(facts))


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    main()
