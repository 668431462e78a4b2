"""A training script's calls through the official MLflow client against a real server:
what the client reads back, and what GraphQL shows of the same changes."""

import asyncio
import math

import mlflow
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

from tests.e2e.ws import Subscriber

RUN = """
query($id: ID!) {
  run(id: $id) {
    id name status deleted userId
    experiment { id name }
    parent { id }
    children { id }
    params { key value }
    tags { key value }
    metrics { key value step }
    inputs { context tags { key value } dataset { name digest sourceType source schema } }
  }
}
"""
EXPERIMENTS = """
query($deleted: Boolean!) {
  experiments(includeDeleted: $deleted) { nodes { id name deleted tags { key value } } }
}
"""


def gql_run(server, run_id: str) -> dict:
    return server.gql(RUN, id=run_id)["run"]


def experiment_names(server, *, deleted: bool = False) -> dict[str, bool]:
    nodes = server.gql(EXPERIMENTS, deleted=deleted)["experiments"]["nodes"]
    return {n["name"]: n["deleted"] for n in nodes}


def test_set_experiment_new_then_existing_and_lookups(mlflow_server, mlflow_client):
    created = mlflow.set_experiment("exp-a")
    again = mlflow.set_experiment("exp-a")
    by_id = mlflow.set_experiment(experiment_id=created.experiment_id)

    assert created.experiment_id == again.experiment_id == by_id.experiment_id
    assert created.name == "exp-a"
    assert created.lifecycle_stage == "active"
    assert created.artifact_location == f"mlflow-artifacts:/{created.experiment_id}"
    assert mlflow_client.get_experiment_by_name("missing") is None
    with pytest.raises(MlflowException) as missing:
        mlflow_client.get_experiment("987654")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert experiment_names(mlflow_server) == {"Default": False, "exp-a": False}


def test_create_search_rename_tag_delete_and_restore_experiments(mlflow_server, mlflow_client):
    b = mlflow_client.create_experiment("exp-b", tags={"team": "fraud"})
    c = mlflow_client.create_experiment("exp-c")
    with pytest.raises(MlflowException) as taken:
        mlflow_client.create_experiment("exp-b")
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"

    mlflow_client.set_experiment_tag(c, "stage", "dev")
    mlflow_client.rename_experiment(c, "exp-c2")
    mlflow_client.delete_experiment_tag(b, "team")
    mlflow_client.delete_experiment(b)

    active = mlflow_client.search_experiments()
    assert [e.name for e in active] == ["exp-c2", "Default"]
    assert mlflow_client.get_experiment(c).tags == {"stage": "dev"}
    deleted = mlflow_client.search_experiments(view_type=ViewType.DELETED_ONLY)
    assert [(e.name, e.lifecycle_stage, e.tags) for e in deleted] == [("exp-b", "deleted", {})]
    assert [
        e.name for e in mlflow_client.search_experiments(filter_string="name LIKE 'exp-%'")
    ] == ["exp-c2"]
    assert [
        e.name for e in mlflow_client.search_experiments(filter_string="tags.stage = 'dev'")
    ] == ["exp-c2"]
    assert experiment_names(mlflow_server) == {"Default": False, "exp-c2": False}
    assert experiment_names(mlflow_server, deleted=True)["exp-b"] is True

    mlflow_client.restore_experiment(b)
    assert mlflow_client.get_experiment(b).lifecycle_stage == "active"
    assert experiment_names(mlflow_server)["exp-b"] is False
    paged = mlflow_client.search_experiments(max_results=2)
    assert len(paged) == 2
    assert paged.token
    rest = mlflow_client.search_experiments(max_results=2, page_token=paged.token)
    assert {e.name for e in [*paged, *rest]} == {"exp-b", "exp-c2", "Default"}


def test_a_training_script(mlflow_server, mlflow_client):
    mlflow.set_experiment("training")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"epochs": 3, "optimizer": "adam"})
        mlflow.log_metric("acc", 0.5, step=0)
        mlflow.log_metrics({"acc": 0.7, "loss": 0.3}, step=1)
        mlflow.log_metric("acc", 0.9, step=2)
        mlflow.set_tag("team", "fraud")
        mlflow.set_tags({"a": "1", "b": "2"})
        mlflow.delete_tag("b")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.1)
    finished = mlflow_client.get_run(parent.info.run_id)
    kid = mlflow_client.get_run(child.info.run_id)

    assert finished.info.status == "FINISHED"
    assert finished.info.run_name == "parent"
    assert finished.info.end_time >= finished.info.start_time
    assert finished.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert finished.info.user_id
    assert finished.data.params == {"lr": "0.01", "epochs": "3", "optimizer": "adam"}
    assert finished.data.metrics == {"acc": 0.9, "loss": 0.3}
    assert finished.data.tags["team"] == "fraud"
    assert finished.data.tags["a"] == "1"
    assert "b" not in finished.data.tags
    assert finished.data.tags["mlflow.runName"] == "parent"
    assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id
    history = mlflow_client.get_metric_history(parent.info.run_id, "acc")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.7), (2, 0.9)]

    shown = gql_run(mlflow_server, parent.info.run_id)
    assert shown["name"] == "parent"
    assert shown["status"] == "FINISHED"
    assert shown["userId"] == finished.info.user_id
    assert {p["key"]: p["value"] for p in shown["params"]} == finished.data.params
    assert {m["key"]: m["value"] for m in shown["metrics"]} == {"acc": 0.9, "loss": 0.3}
    assert [c["id"] for c in shown["children"]] == [child.info.run_id]
    assert gql_run(mlflow_server, child.info.run_id)["parent"] == {"id": parent.info.run_id}


def test_start_run_without_an_experiment_uses_default_and_run_id_resumes(
    mlflow_server, mlflow_client
):
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    assert run.info.experiment_id == "0"
    assert run.info.run_name  # the server named it

    with mlflow.start_run(run_id=run.info.run_id):
        assert mlflow_client.get_run(run.info.run_id).info.status == "RUNNING"
        mlflow.log_metric("m", 2.0, step=1)
    resumed = mlflow_client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.metrics == {"m": 2.0}
    shown = gql_run(mlflow_server, run.info.run_id)
    assert (shown["status"], shown["experiment"]["name"]) == ("FINISHED", "Default")


def test_log_batch_with_nan_and_its_limits(mlflow_server, mlflow_client):
    run = mlflow_client.create_run("0")
    run_id = run.info.run_id

    mlflow_client.log_batch(
        run_id,
        metrics=[Metric("x", float(i), 1000 + i, i) for i in range(50)]
        + [Metric("n", math.nan, 5, 0)],
        params=[Param("p", "1")],
        tags=[RunTag("t", "v")],
    )
    got = mlflow_client.get_run(run_id)
    assert got.data.metrics["x"] == 49.0
    assert math.isnan(got.data.metrics["n"])
    assert got.data.params == {"p": "1"}
    assert len(mlflow_client.get_metric_history(run_id, "x")) == 50

    # The client splits big batches itself: 1,500 points arrive as two requests.
    mlflow_client.log_batch(run_id, metrics=[Metric("y", float(i), 0, i) for i in range(1500)])
    assert len(mlflow_client.get_metric_history(run_id, "y")) == 1500

    with pytest.raises(MlflowException) as changed:
        mlflow_client.log_param(run_id, "p", "2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_input_and_lineage_through_graphql(mlflow_server, mlflow_client):
    mlflow.set_experiment("data")
    dataset = Dataset(
        name="iris", digest="abc123", source_type="local", source="/data/iris.csv", schema="{}"
    )
    with mlflow.start_run() as run:
        mlflow_client.log_inputs(
            run.info.run_id,
            [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])],
        )
    got = mlflow_client.get_run(run.info.run_id)

    [used] = got.inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest, used.dataset.source) == (
        "iris",
        "abc123",
        "/data/iris.csv",
    )
    assert {t.key: t.value for t in used.tags} == {"mlflow.data.context": "training"}
    [shown] = gql_run(mlflow_server, run.info.run_id)["inputs"]
    assert shown["context"] == "training"
    assert shown["dataset"] == {
        "name": "iris",
        "digest": "abc123",
        "sourceType": "local",
        "source": "/data/iris.csv",
        "schema": "{}",
    }
    runs = mlflow_client.search_runs(
        [got.info.experiment_id], "datasets.context = 'training' and datasets.name = 'iris'"
    )
    assert [r.info.run_id for r in runs] == [run.info.run_id]


def test_delete_and_restore_a_run(mlflow_server, mlflow_client):
    run = mlflow_client.create_run("0")
    run_id = run.info.run_id

    mlflow_client.delete_run(run_id)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert mlflow_client.search_runs(["0"]) == []
    assert [
        r.info.run_id for r in mlflow_client.search_runs(["0"], run_view_type=ViewType.ALL)
    ] == [run_id]
    assert gql_run(mlflow_server, run_id)["deleted"] is True
    with pytest.raises(MlflowException) as refused:
        mlflow_client.log_metric(run_id, "m", 1.0)
    assert refused.value.error_code == "INVALID_STATE"

    mlflow_client.restore_run(run_id)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"
    assert gql_run(mlflow_server, run_id)["deleted"] is False
    with pytest.raises(MlflowException) as missing:
        mlflow_client.get_run("f" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_runs_grammar_ordering_and_pages(mlflow_server, mlflow_client):
    e1 = mlflow_client.create_experiment("s1")
    e2 = mlflow_client.create_experiment("s2")
    made = {}
    for name, exp, acc, lr in [
        ("a", e1, 0.9, "0.01"),
        ("b", e1, 0.7, "0.1"),
        ("c", e2, 0.95, "0.01"),
        ("d", e2, None, "0.5"),
    ]:
        run = mlflow_client.create_run(exp, run_name=name)
        if acc is not None:
            mlflow_client.log_metric(run.info.run_id, "acc", acc)
        mlflow_client.log_param(run.info.run_id, "lr", lr)
        mlflow_client.set_terminated(run.info.run_id)
        made[run.info.run_id] = name

    def names(runs) -> list[str]:
        return [made[r.info.run_id] for r in runs]

    both = [e1, e2]
    assert names(mlflow_client.search_runs(both)) == ["d", "c", "b", "a"]
    assert names(mlflow_client.search_runs(both, "metrics.acc > 0.8 and params.lr = '0.01'")) == [
        "c",
        "a",
    ]
    assert names(mlflow_client.search_runs(both, "attributes.run_name IN ('b', 'd')")) == [
        "d",
        "b",
    ]
    assert names(mlflow_client.search_runs(both, order_by=["metrics.acc DESC"])) == [
        "c",
        "a",
        "b",
        "d",
    ]
    first = mlflow_client.search_runs(both, order_by=["metrics.acc DESC"], max_results=3)
    assert names(first) == ["c", "a", "b"]
    assert first.token
    rest = mlflow_client.search_runs(
        both, order_by=["metrics.acc DESC"], max_results=3, page_token=first.token
    )
    assert names(rest) == ["d"]
    assert rest.token is None

    # mlflow.search_runs follows the page tokens into one DataFrame.
    frame = mlflow.search_runs(
        experiment_ids=both, filter_string="params.lr = '0.01'", order_by=["metrics.acc DESC"]
    )
    assert [made[r] for r in frame["run_id"]] == ["c", "a"]
    assert list(frame["metrics.acc"]) == [0.95, 0.9]
    assert list(frame["params.lr"]) == ["0.01", "0.01"]
    everything = mlflow.search_runs(experiment_ids=both, max_results=2)
    assert [made[r] for r in everything["run_id"]] == ["d", "c"]
    with pytest.raises(MlflowException) as refused:
        mlflow_client.search_runs(both, "metrics.acc > 0.8 or params.lr = '0.01'")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Invalid clause(s) in filter string" in refused.value.message
    with pytest.raises(MlflowException) as too_many:
        mlflow_client.search_runs(both, max_results=60_000)
    assert too_many.value.error_code == "INVALID_PARAMETER_VALUE"


def test_metric_history_pages(mlflow_server, mlflow_client):
    run = mlflow_client.create_run("0")
    mlflow_client.log_batch(
        run.info.run_id, metrics=[Metric("h", float(i), 0, i) for i in range(30)]
    )

    # The client asks in pages of its own size and follows the tokens.
    page = mlflow_client._tracking_client.store.get_metric_history(
        run.info.run_id, "h", max_results=7
    )
    assert len(page) == 7
    assert page.token
    following = mlflow_client._tracking_client.store.get_metric_history(
        run.info.run_id, "h", max_results=7, page_token=page.token
    )
    assert [m.step for m in following] == list(range(7, 14))
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "h")] == list(
        range(30)
    )


WATCH_METRICS = """
subscription($run: ID!) { runMetrics(runId: $run) { points { key value step } } }
"""


def test_a_watcher_sees_the_points_the_client_logs(mlflow_server, mlflow_client):
    run = mlflow_client.create_run("0")
    run_id = run.info.run_id

    async def watch() -> tuple[list[dict], list[dict], dict]:
        async with Subscriber(mlflow_server.server.ws, WATCH_METRICS, {"run": run_id}) as live:
            # The subscription is live once it answers: log until the first batch arrives.
            for step in range(50):
                await asyncio.to_thread(mlflow_client.log_metric, run_id, "warmup", 0.0, step=step)
                try:
                    await asyncio.wait_for(live.next(), 0.5)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("no live metrics")
            await asyncio.to_thread(
                mlflow_client.log_batch,
                run_id,
                metrics=[Metric("loss", 1.0 / (i + 1), 0, i) for i in range(3)],
            )
            batch = (await live.next())["runMetrics"]["points"]
            await asyncio.to_thread(mlflow_client.log_metric, run_id, "acc", 0.5, step=7)
            single = (await live.next())["runMetrics"]["points"]
            await asyncio.to_thread(mlflow_client.set_terminated, run_id)
            return batch, single, await live.message()

    batch, single, end = asyncio.run(watch())

    assert batch == [{"key": "loss", "value": 1.0 / (i + 1), "step": i} for i in range(3)]
    assert single == [{"key": "acc", "value": 0.5, "step": 7}]
    assert end["type"] == "complete"


LINEAGE = """
query($name: String!) {
  model(name: $name) {
    productionVersion {
      version
      run { id inputs { context dataset { name digest source } } }
    }
  }
}
"""


@pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")
def test_the_data_behind_the_production_version(mlflow_server, mlflow_client):
    mlflow.set_experiment("lineage")
    train = Dataset(name="churn", digest="d41d8cd9", source_type="s3", source="s3://d/churn")
    with mlflow.start_run() as run:
        mlflow_client.log_inputs(
            run.info.run_id,
            [DatasetInput(train, tags=[InputTag("mlflow.data.context", "training")])],
        )
    mlflow_client.create_registered_model("churn-clf")
    version = mlflow_client.create_model_version(
        "churn-clf", "s3://models/churn", run_id=run.info.run_id
    )
    mlflow_client.transition_model_version_stage("churn-clf", version.version, "Production")

    production = mlflow_server.gql(LINEAGE, name="churn-clf")["model"]["productionVersion"]

    assert production["run"]["id"] == run.info.run_id
    assert production["run"]["inputs"] == [
        {
            "context": "training",
            "dataset": {"name": "churn", "digest": "d41d8cd9", "source": "s3://d/churn"},
        }
    ]
