"""What training code does with the official client, against a real server: run artifacts
(log_artifact, log_artifacts, log_dict, list_artifacts, download_artifacts) by content
and stored once; `mlflow.pyfunc.log_model` and `mlflow.sklearn.log_model` (MLflow 3
logged models, their files in the content-addressed store) loaded back and predicting;
`mlflow.sklearn.autolog()`; and registering versions from `runs:/` and `models:/` sources
that load by number, alias and stage."""

import hashlib
import json
from pathlib import Path

import httpx
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus
from sklearn.linear_model import LogisticRegression

PIP = ["mlflow-skinny==3.17.2", "scikit-learn"]


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, context, model_input: list[int], params=None) -> list[int]:
        return [x + self.n for x in model_input]


def blob_names(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "blobs" / "blobs").rglob("*") if p.is_file()}


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])
    y = np.array([0, 1, 0, 1, 0, 1])
    return x, y


def test_run_artifacts_round_trip_by_content_stored_once(mlflow_env, mlflow_client, tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (tmp_path / "same.txt").write_bytes(b"alpha")
    mlflow.set_experiment("exp")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "same.txt"))
        mlflow.log_artifacts(str(source), artifact_path="tree")
        mlflow.log_dict({"lr": 0.01, "layers": [1, 2]}, "config/params.json")
    run_id = run.info.run_id
    top = [(f.path, f.is_dir) for f in mlflow_client.list_artifacts(run_id)]
    assert top == [("config", True), ("same.txt", False), ("tree", True)]
    inside = [(f.path, f.file_size) for f in mlflow_client.list_artifacts(run_id, "tree/sub")]
    assert inside == [("tree/sub/b.bin", 25600)]
    out = tmp_path / "out"
    out.mkdir()
    got = Path(mlflow_client.download_artifacts(run_id, "tree", str(out)))
    assert (got / "a.txt").read_bytes() == b"alpha"
    assert (got / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json") == {
        "lr": 0.01,
        "layers": [1, 2],
    }
    # four files, "alpha" twice among them: three blobs
    names = blob_names(tmp_path)
    assert hashlib.sha256(b"alpha").hexdigest() in names
    assert hashlib.sha256(bytes(range(256)) * 100).hexdigest() in names
    assert len(names) == 3, names
    shown = mlflow_env.gql(
        'query($id: ID!) { run(id: $id) { artifacts(path: "tree") { path isDir digest } } }',
        id=run_id,
    )["run"]["artifacts"]
    assert shown == [
        {"path": "tree/a.txt", "isDir": False, "digest": hashlib.sha256(b"alpha").hexdigest()},
        {"path": "tree/sub", "isDir": True, "digest": None},
    ]


def test_pyfunc_log_model_is_a_ready_logged_model_that_loads(mlflow_env, mlflow_client):
    mlflow.set_experiment("exp")
    with mlflow.start_run() as run:
        mlflow.log_param("n", 3)
        mlflow.log_metric("acc", 0.9)
        info = mlflow.pyfunc.log_model(name="model", python_model=AddN(3), pip_requirements=PIP)
    assert info.model_id.startswith("m-")
    model = mlflow_client.get_logged_model(info.model_id)
    assert model.status == LoggedModelStatus.READY
    assert (model.name, model.source_run_id) == ("model", run.info.run_id)
    assert model.params == {"n": "3"}
    assert [(m.key, m.value) for m in model.metrics] == [("acc", 0.9)]
    files = {f.path for f in mlflow_client.list_logged_model_artifacts(info.model_id)}
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= files
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string="metrics.acc > 0.5 AND name = 'model'",
        output_format="list",
    )
    assert [m.model_id for m in found] == [info.model_id]
    assert (
        mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string="metrics.acc > 0.95",
            output_format="list",
        )
        == []
    )
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert list(loaded.predict([1, 2])) == [4, 5]
    outputs = mlflow_env.gql(
        "query($id: ID!) { loggedModel(id: $id) { status outputs { run { id } step } metrics { key value } } }",
        id=info.model_id,
    )["loggedModel"]
    assert outputs == {
        "status": "READY",
        "outputs": [{"run": {"id": run.info.run_id}, "step": 0}],
        "metrics": [{"key": "acc", "value": 0.9}],
    }
    # log_model re-sent the run's metrics at the model's step, naming the model: the run's
    # history still holds the point once, as on MLflow's server.
    history = mlflow_client.get_metric_history(run.info.run_id, "acc")
    assert [(m.value, m.step) for m in history] == [(0.9, 0)]


def test_sklearn_log_model_loads_and_predicts_the_same(mlflow_env):
    x, y = data()
    classifier = LogisticRegression(C=0.5).fit(x, y)
    mlflow.set_experiment("exp")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(classifier, name="clf", pip_requirements=PIP)
    again = mlflow.sklearn.load_model(info.model_uri)
    assert list(again.predict(x)) == list(classifier.predict(x))
    as_pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    assert list(as_pyfunc.predict(x)) == list(classifier.predict(x))


def test_sklearn_autolog_logs_params_metrics_and_model(mlflow_env, mlflow_client):
    x, y = data()
    mlflow.set_experiment("exp")
    mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=False)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.25, max_iter=50).fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = mlflow_client.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.25"
    assert got.data.params["max_iter"] == "50"
    assert "training_accuracy_score" in got.data.metrics
    models = mlflow_client.search_logged_models([run.info.experiment_id])
    assert [(m.source_run_id, m.status) for m in models] == [
        (run.info.run_id, LoggedModelStatus.READY)
    ]
    assert "training_accuracy_score" in {m.key for m in models[0].metrics}
    loaded = mlflow.sklearn.load_model(f"models:/{models[0].model_id}")
    assert list(loaded.predict(x)) == list(y)


@pytest.mark.parametrize("source", ["runs", "models", "log_model"])
def test_registered_versions_load_by_number_alias_and_stage(mlflow_env, mlflow_client, source):
    mlflow.set_experiment("exp")
    registered = "adder" if source == "log_model" else None
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AddN(10),
            pip_requirements=PIP,
            registered_model_name=registered,
        )
    if source == "log_model":
        assert info.registered_model_version == "1"
    else:
        uri = f"runs:/{run.info.run_id}/model" if source == "runs" else info.model_uri
        assert mlflow.register_model(uri, "adder").version == "1"
    linked = mlflow_env.gql('{ modelVersion(model: "adder", version: 1) { loggedModelId } }')
    assert linked["modelVersion"]["loggedModelId"] == info.model_id
    mlflow_client.set_registered_model_alias("adder", "champion", "1")
    with pytest.warns(FutureWarning, match="stages"):  # deprecated by MLflow, still used
        mlflow_client.transition_model_version_stage("adder", "1", "Production")
    for model_uri in ("models:/adder/1", "models:/adder@champion", "models:/adder/Production"):
        loaded = mlflow.pyfunc.load_model(model_uri)
        assert list(loaded.predict([1])) == [11], model_uri
    # the version owns a snapshot of the logged model's files
    shown = mlflow_env.gql(
        '{ modelVersion(model: "adder", version: 1) { digest files { path digest } } }'
    )["modelVersion"]
    model_files = {f.path for f in mlflow_client.list_logged_model_artifacts(info.model_id)}
    assert {f["path"] for f in shown["files"]} == model_files
    # so deleting the logged model's MLmodel changes nothing the version serves
    experiment = run.info.experiment_id
    with httpx.Client(base_url=mlflow_env.url, timeout=30) as http:
        deleted = http.delete(
            f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/models/{info.model_id}"
            "/artifacts/MLmodel",
            headers={"Authorization": f"Bearer {mlflow_env.token}"},
        )
    assert deleted.status_code == 200
    with pytest.raises(Exception, match="MLmodel"):
        mlflow.pyfunc.load_model(info.model_uri)
    assert list(mlflow.pyfunc.load_model("models:/adder/1").predict([2])) == [12]
    tags = mlflow_client.get_logged_model(info.model_id).tags
    assert json.loads(tags["mlflow.modelVersions"]) == [{"name": "adder", "version": "1"}]
