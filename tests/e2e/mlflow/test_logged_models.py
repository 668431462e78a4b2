"""MLflow 3 logged models through the official client against a real server: created
PENDING, files uploaded through the artifact proxy into the content-addressed store,
finalized READY, read back, searched with MLflow's grammar, tagged, deleted, loaded with
`mlflow.pyfunc.load_model("models:/m-...")`; and what the graph shows of them."""

import hashlib
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException, RestException

EXPERIMENT = 'mutation { createExperiment(input: {name: "exp"}) { ... on CreateExperimentSuccess { experiment { id } } } }'
PIP = ["mlflow-skinny==3.17.2"]
GRAPH = """query($exp: String!) { loggedModels(experiment: $exp) { nodes {
    id name status params { key value } tags { key value }
    files { path digest size downloadUrl } } } }"""


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, context, model_input: list[int], params=None) -> list[int]:
        return [x + self.n for x in model_input]


def experiment_id(server) -> str:
    created: str = server.gql(EXPERIMENT)["createExperiment"]["experiment"]["id"]
    return created


def saved_model(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"add{n}"
    mlflow.pyfunc.save_model(str(path), python_model=AddN(n), pip_requirements=PIP)
    return path


def test_create_upload_finalize_load_and_search(mlflow_server, mlflow_client, tmp_path):
    exp = experiment_id(mlflow_server)
    model = mlflow_client.create_logged_model(
        exp, name="adder", params={"n": "2"}, tags={"team": "a"}, model_type="toy"
    )
    assert model.model_id.startswith("m-")
    assert model.status == LoggedModelStatus.PENDING
    assert model.artifact_location == f"mlflow-artifacts:/{exp}/models/{model.model_id}/artifacts"
    local = saved_model(tmp_path, 2)
    mlflow_client.log_model_artifacts(model.model_id, str(local))
    done = mlflow_client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert done.status == LoggedModelStatus.READY
    listed = {f.path for f in mlflow_client.list_logged_model_artifacts(model.model_id)}
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= listed

    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert list(loaded.predict([1, 2])) == [3, 4]

    mlflow_client.log_model_params(model.model_id, {"n": "2", "precision": "int"})
    got = mlflow_client.get_logged_model(model.model_id)
    assert (got.name, got.params, got.model_type) == (
        "adder",
        {"n": "2", "precision": "int"},
        "toy",
    )
    assert got.tags == {"team": "a"}
    mlflow_client.set_logged_model_tags(model.model_id, {"stage": "candidate"})
    mlflow_client.delete_logged_model_tag(model.model_id, "team")
    assert mlflow_client.get_logged_model(model.model_id).tags == {"stage": "candidate"}

    other = mlflow_client.create_logged_model(exp, name="other")
    found = mlflow_client.search_logged_models([exp], filter_string="name = 'adder'")
    assert [m.model_id for m in found] == [model.model_id]
    found = mlflow_client.search_logged_models(
        [exp], filter_string="tags.stage = 'candidate' AND status = 'LOGGED_MODEL_READY'"
    )
    assert [m.model_id for m in found] == [model.model_id]
    page = mlflow_client.search_logged_models(
        [exp], max_results=1, order_by=[{"field_name": "name", "ascending": True}]
    )
    assert [m.name for m in page] == ["adder"]
    rest = mlflow_client.search_logged_models(
        [exp], max_results=1, order_by=[{"field_name": "name"}], page_token=page.token
    )
    assert ([m.name for m in rest], rest.token) == (["other"], None)

    # the graph shows the same model, its files by digest
    pickle = (local / "python_model.pkl").read_bytes()
    shown = mlflow_server.gql(GRAPH, exp="exp")["loggedModels"]["nodes"]
    assert [(m["id"], m["name"], m["status"]) for m in shown] == [
        (other.model_id, "other", "PENDING"),
        (model.model_id, "adder", "READY"),
    ]
    assert shown[1]["params"] == [
        {"key": "n", "value": "2"},
        {"key": "precision", "value": "int"},
    ]
    assert shown[1]["tags"] == [{"key": "stage", "value": "candidate"}]
    files = {f["path"]: f for f in shown[1]["files"]}
    assert files["python_model.pkl"]["digest"] == hashlib.sha256(pickle).hexdigest()
    assert files["python_model.pkl"]["size"] == len(pickle)
    assert files["MLmodel"]["downloadUrl"].endswith(f"/models/{model.model_id}/artifacts/MLmodel")
    mlflow_client.delete_logged_model(other.model_id)
    with pytest.raises(MlflowException) as gone:
        mlflow_client.get_logged_model(other.model_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    blobs = {p.name for p in (tmp_path / "blobs" / "blobs").rglob("*") if p.is_file()}
    assert hashlib.sha256(pickle).hexdigest() in blobs


def test_refusals_are_mlflow_errors(mlflow_server, mlflow_client):
    exp = experiment_id(mlflow_server)
    model = mlflow_client.create_logged_model(exp, name="m", params={"n": "1"})
    cases = [
        lambda: mlflow_client.create_logged_model("999", name="m"),
        lambda: mlflow_client.get_logged_model("m-" + "0" * 32),
        lambda: mlflow_client.search_logged_models([exp], filter_string="name = 'a' OR name = 'b'"),
        lambda: mlflow_client.search_logged_models([exp], filter_string="metrics.acc > 'x'"),
        lambda: mlflow_client.delete_logged_model_tag(model.model_id, "absent"),
        lambda: mlflow_client.log_model_params(model.model_id, {"n": "2"}),
    ]
    codes = []
    for case in cases:
        with pytest.raises(RestException) as refused:
            case()
        codes.append(refused.value.error_code)
    assert codes == [
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
        "INVALID_PARAMETER_VALUE",
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    ]
    assert mlflow_client.get_logged_model(model.model_id).params == {"n": "1"}
    assert mlflow_client.get_logged_model(model.model_id).status == LoggedModelStatus.PENDING
