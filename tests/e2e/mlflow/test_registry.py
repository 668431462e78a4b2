"""The registry workflow through the official MLflow client against a real server: what
the client reads back, and what GraphQL and a subscribed watcher see of the same changes."""

import asyncio
import time
from pathlib import Path

import pytest
from mlflow.entities.model_registry import ModelVersion as MlflowVersion
from mlflow.exceptions import MlflowException, RestException

from tests.e2e.ws import Subscriber

# Stages (transition_model_version_stage, get_latest_versions) are deprecated in MLflow
# since 2.9, and the client says so on every call; teams still use them.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")

MODEL = """
query($name: String!) {
  model(name: $name) {
    name description tags { key value }
    aliases { alias version { version } }
    versions { nodes { version stage description runLink tags { key value } } }
  }
}
"""
EVENTS = """
query($model: String) {
  events(model: $model, first: 500) { nodes { type versionNumber fromStage toStage alias actor } }
}
"""
WATCH = """
subscription($model: String, $after: String) {
  lifecycleEvents(model: $model, after: $after) {
    cursor type model versionNumber fromStage toStage actor
  }
}
"""
ACTOR = "test-admin"


def events(server, model: str) -> list[dict]:
    return server.gql(EVENTS, model=model)["events"]["nodes"]


def stages(server, name: str) -> dict[int, str]:
    nodes = server.gql(MODEL, name=name)["model"]["versions"]["nodes"]
    return {n["version"]: n["stage"] for n in nodes}


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.error_code


def test_create_get_update_and_tag_a_registered_model(mlflow_server, mlflow_client):
    created = mlflow_client.create_registered_model(
        "reg-a", tags={"team": "fraud"}, description="first"
    )
    assert (created.name, created.description, created.tags) == (
        "reg-a",
        "first",
        {"team": "fraud"},
    )

    with pytest.raises(MlflowException) as dup:
        mlflow_client.create_registered_model("reg-a")
    assert error_code(dup) == "RESOURCE_ALREADY_EXISTS"

    mlflow_client.update_registered_model("reg-a", description="second")
    mlflow_client.set_registered_model_tag("reg-a", "stage-gate", "ci")
    mlflow_client.delete_registered_model_tag("reg-a", "team")
    got = mlflow_client.get_registered_model("reg-a")

    assert got.description == "second"
    assert got.tags == {"stage-gate": "ci"}
    assert got.latest_versions == []
    assert got.creation_timestamp <= got.last_updated_timestamp
    graph = mlflow_server.gql(MODEL, name="reg-a")["model"]
    assert graph["description"] == "second"
    assert graph["tags"] == [{"key": "stage-gate", "value": "ci"}]
    assert [e["type"] for e in events(mlflow_server, "reg-a")] == [
        "MODEL_CREATED",
        "MODEL_UPDATED",
        "MODEL_UPDATED",
        "MODEL_UPDATED",
    ]
    with pytest.raises(MlflowException) as missing:
        mlflow_client.get_registered_model("nope")
    assert error_code(missing) == "RESOURCE_DOES_NOT_EXIST"


def test_versions_create_get_update_tag_search_and_download_uri(mlflow_server, mlflow_client):
    mlflow_client.create_registered_model("reg-b")
    first = mlflow_client.create_model_version(
        "reg-b", "s3://bucket/one", tags={"framework": "sk"}, run_link="http://ci/1",
        description="d1",
    )  # fmt: skip
    second = mlflow_client.create_model_version("reg-b", "s3://bucket/two")

    assert isinstance(first, MlflowVersion)
    assert (first.version, first.current_stage, first.status) == ("1", "None", "READY")
    assert (first.source, first.run_link, first.description) == (
        "s3://bucket/one",
        "http://ci/1",
        "d1",
    )
    assert first.tags == {"framework": "sk"}
    assert (second.version, second.run_id, second.description) == ("2", None, None)

    mlflow_client.update_model_version("reg-b", "2", description="better")
    mlflow_client.set_model_version_tag("reg-b", "2", "validated", "yes")
    mlflow_client.delete_model_version_tag("reg-b", "1", "framework")
    got = mlflow_client.get_model_version("reg-b", "2")
    assert (got.description, got.tags) == ("better", {"validated": "yes"})
    assert mlflow_client.get_model_version("reg-b", "1").tags == {}

    found = mlflow_client.search_model_versions("name='reg-b'")
    assert [v.version for v in found] == ["2", "1"]
    assert [
        v.version
        for v in mlflow_client.search_model_versions("name='reg-b' and version_number > 1")
    ] == ["2"]
    with pytest.raises(MlflowException) as bad:
        mlflow_client.search_model_versions("current_stage='Production'")
    assert error_code(bad) == "INVALID_PARAMETER_VALUE"

    # No files here: the client fetches them where the source says, as from MLflow.
    assert mlflow_client.get_model_version_download_uri("reg-b", "2") == "s3://bucket/two"

    nodes = mlflow_server.gql(MODEL, name="reg-b")["model"]["versions"]["nodes"]
    assert nodes[0] == {
        "version": 2,
        "stage": "DEVELOPMENT",
        "description": "better",
        "runLink": None,
        "tags": [{"key": "validated", "value": "yes"}],
    }
    assert nodes[1]["runLink"] == "http://ci/1"
    assert [(e["type"], e["versionNumber"]) for e in events(mlflow_server, "reg-b")] == [
        ("MODEL_CREATED", None),
        ("VERSION_REGISTERED", 1),
        ("VERSION_REGISTERED", 2),
        ("VERSION_UPDATED", 2),
        ("VERSION_UPDATED", 2),
        ("VERSION_UPDATED", 1),
    ]
    with pytest.raises(MlflowException) as no_model:
        mlflow_client.create_model_version("nope", "s3://x")
    assert error_code(no_model) == "RESOURCE_DOES_NOT_EXIST"


def test_search_registered_models_with_the_clients_prompt_clause(mlflow_client):
    for name in ("reg-b", "reg-a", "other", "reg-c"):
        mlflow_client.create_registered_model(name)
    mlflow_client.set_registered_model_tag("reg-c", "owner", "ml")

    names = [m.name for m in mlflow_client.search_registered_models("name LIKE 'reg-%'")]
    ordered = mlflow_client.search_registered_models(order_by=["name DESC"], max_results=2)
    tagged = mlflow_client.search_registered_models("tags.owner = 'ml'")

    assert names == ["reg-a", "reg-b", "reg-c"]
    assert [m.name for m in ordered] == ["reg-c", "reg-b"]
    assert ordered.token
    rest = mlflow_client.search_registered_models(
        order_by=["name DESC"], max_results=2, page_token=ordered.token
    )
    assert [m.name for m in rest] == ["reg-a", "other"]
    assert [m.name for m in tagged] == ["reg-c"]
    with pytest.raises(MlflowException) as bad:
        mlflow_client.search_registered_models("name = 'a' OR name = 'b'")
    assert error_code(bad) == "INVALID_PARAMETER_VALUE"


def test_stages_walk_archive_and_latest_versions(mlflow_server, mlflow_client):
    mlflow_client.create_registered_model("m")
    for _ in range(3):
        mlflow_client.create_model_version("m", "s3://bucket/m")

    # None -> Production walks through Staging: two moves, both audited.
    moved = mlflow_client.transition_model_version_stage("m", "1", "Production")
    assert moved.current_stage == "Production"
    # archive_existing_versions=False: the one-PRODUCTION rule still archives version 1.
    mlflow_client.transition_model_version_stage(
        "m", "2", "Production", archive_existing_versions=False
    )
    mlflow_client.transition_model_version_stage("m", "3", "Staging")

    assert stages(mlflow_server, "m") == {1: "ARCHIVED", 2: "PRODUCTION", 3: "STAGING"}
    moves = [
        (e["versionNumber"], e["fromStage"], e["toStage"])
        for e in events(mlflow_server, "m")
        if e["type"] == "STAGE_CHANGED"
    ]
    assert moves == [
        (1, "DEVELOPMENT", "STAGING"),
        (1, "STAGING", "PRODUCTION"),
        (2, "DEVELOPMENT", "STAGING"),
        (1, "PRODUCTION", "ARCHIVED"),
        (2, "STAGING", "PRODUCTION"),
        (3, "DEVELOPMENT", "STAGING"),
    ]
    latest = mlflow_client.get_latest_versions("m")
    assert sorted((v.version, v.current_stage) for v in latest) == [
        ("1", "Archived"),
        ("2", "Production"),
        ("3", "Staging"),
    ]
    assert [v.version for v in mlflow_client.get_latest_versions("m", stages=["Production"])] == [
        "2"
    ]
    model = mlflow_client.get_registered_model("m")
    assert sorted(v.version for v in model.latest_versions) == ["1", "2", "3"]

    # archive_existing_versions=True into Staging archives the other STAGING version.
    mlflow_client.create_model_version("m", "s3://bucket/m")
    mlflow_client.transition_model_version_stage(
        "m", "4", "Staging", archive_existing_versions=True
    )
    assert stages(mlflow_server, "m") == {
        1: "ARCHIVED",
        2: "PRODUCTION",
        3: "ARCHIVED",
        4: "STAGING",
    }

    with pytest.raises(MlflowException) as bad:
        mlflow_client.transition_model_version_stage("m", "4", "Shipped")
    assert error_code(bad) == "INVALID_PARAMETER_VALUE"


def test_policy_refusal_is_invalid_state_listing_every_unmet_condition(
    mlflow_server, mlflow_client
):
    mlflow_client.create_registered_model("gated")
    mlflow_client.create_model_version("gated", "s3://bucket/g")
    mlflow_server.gql(
        'mutation { a: setPromotionPolicy(input: {model: "gated", stage: STAGING, '
        'requiredChecks: ["unit-tests"]}) { __typename } '
        'b: setPromotionPolicy(input: {model: "gated", stage: PRODUCTION, '
        'requiredChecks: ["load-test", "bias-audit"]}) { __typename } }'
    )
    before = events(mlflow_server, "gated")

    with pytest.raises(MlflowException) as refused:
        mlflow_client.transition_model_version_stage("gated", "1", "Production")

    assert error_code(refused) == "INVALID_STATE"
    message = refused.value.message
    for check in ("unit-tests", "load-test", "bias-audit"):
        assert f"check {check}: not reported (required PASSED)" in message
    assert stages(mlflow_server, "gated") == {1: "DEVELOPMENT"}
    assert events(mlflow_server, "gated") == before


def test_aliases_set_get_delete(mlflow_server, mlflow_client):
    mlflow_client.create_registered_model("al")
    mlflow_client.create_model_version("al", "s3://bucket/a")
    mlflow_client.create_model_version("al", "s3://bucket/a")

    mlflow_client.set_registered_model_alias("al", "champion", "1")
    mlflow_client.set_registered_model_alias("al", "champion", "2")
    by_alias = mlflow_client.get_model_version_by_alias("al", "champion")
    model = mlflow_client.get_registered_model("al")

    assert (by_alias.version, by_alias.aliases) == ("2", ["champion"])
    assert model.aliases == {"champion": "2"}
    graph = mlflow_server.gql(MODEL, name="al")["model"]
    assert graph["aliases"] == [{"alias": "champion", "version": {"version": 2}}]

    mlflow_client.delete_registered_model_alias("al", "champion")
    with pytest.raises(MlflowException) as gone:
        mlflow_client.get_model_version_by_alias("al", "champion")
    assert error_code(gone) == "RESOURCE_DOES_NOT_EXIST"
    assert [(e["type"], e["versionNumber"], e["alias"]) for e in events(mlflow_server, "al")][
        -3:
    ] == [
        ("ALIAS_SET", 1, "champion"),
        ("ALIAS_SET", 2, "champion"),
        ("ALIAS_DELETED", 2, "champion"),
    ]


def test_rename_and_delete(mlflow_server, mlflow_client):
    mlflow_client.create_registered_model("before")
    mlflow_client.create_model_version("before", "s3://bucket/r")
    mlflow_client.create_model_version("before", "s3://bucket/r")
    mlflow_client.transition_model_version_stage("before", "1", "Production")

    mlflow_client.rename_registered_model("before", "after")
    assert mlflow_client.get_registered_model("after").name == "after"
    assert mlflow_client.get_model_version("after", "1").current_stage == "Production"
    assert events(mlflow_server, "before") == []
    assert events(mlflow_server, "after")[-1]["type"] == "MODEL_RENAMED"

    # What serves cannot be deleted: archive it first.
    with pytest.raises(MlflowException) as serving:
        mlflow_client.delete_model_version("after", "1")
    assert error_code(serving) == "INVALID_STATE"
    with pytest.raises(MlflowException) as serving_model:
        mlflow_client.delete_registered_model("after")
    assert error_code(serving_model) == "INVALID_STATE"

    mlflow_client.delete_model_version("after", "2")
    assert [v.version for v in mlflow_client.search_model_versions("name='after'")] == ["1"]
    assert mlflow_client.create_model_version("after", "s3://bucket/r").version == "3"

    mlflow_client.transition_model_version_stage("after", "1", "Archived")
    mlflow_client.delete_registered_model("after")
    with pytest.raises(MlflowException) as gone:
        mlflow_client.get_registered_model("after")
    assert error_code(gone) == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow_server.gql(MODEL, name="after")["model"] is None
    types = [e["type"] for e in events(mlflow_server, "after")]
    assert types[-1] == "MODEL_DELETED"
    assert "VERSION_DELETED" in types


def test_a_watcher_sees_a_promotion_made_by_the_mlflow_client(mlflow_server, mlflow_client):
    mlflow_client.create_registered_model("watched")
    mlflow_client.create_model_version("watched", "s3://bucket/w")
    start = mlflow_server.gql(
        'query { events(model: "watched", first: 100) { pageInfo { endCursor } } }'
    )["events"]["pageInfo"]["endCursor"]

    async def watch() -> list[dict]:
        async with Subscriber(
            mlflow_server.server.ws, WATCH, {"model": "watched", "after": start}
        ) as watcher:
            await asyncio.to_thread(
                mlflow_client.transition_model_version_stage, "watched", "1", "Production"
            )
            return [e["lifecycleEvents"] for e in await watcher.take(2)]

    seen = asyncio.run(watch())
    assert [(e["type"], e["fromStage"], e["toStage"], e["actor"]) for e in seen] == [
        ("STAGE_CHANGED", "DEVELOPMENT", "STAGING", ACTOR),
        ("STAGE_CHANGED", "STAGING", "PRODUCTION", ACTOR),
    ]


def test_bad_input_gets_mlflow_codes_never_a_5xx(mlflow_server):
    import httpx

    base = f"{mlflow_server.url}/api/2.0/mlflow"
    headers = {"Authorization": f"Bearer {mlflow_server.token}"}
    with httpx.Client(headers=headers, timeout=30) as http:
        calls = [
            http.get(f"{base}/model-versions/get", params={"name": "x", "version": "abc"}),
            http.get(f"{base}/model-versions/get", params={"name": "x", "version": str(2**31)}),
            http.get(f"{base}/registered-models/get"),
            http.post(f"{base}/registered-models/create", json={"name": ""}),
            http.get(f"{base}/registered-models/search", params={"page_token": "!!"}),
            http.get(f"{base}/registered-models/search", params={"max_results": "0"}),
            http.post(
                f"{base}/model-versions/transition-stage", json={"name": "x", "version": "1"}
            ),
        ]
    assert [c.status_code for c in calls] == [400] * len(calls)
    assert {c.json()["error_code"] for c in calls} == {"INVALID_PARAMETER_VALUE"}
    assert time.time() > 0  # no retries were needed to get here


def test_rest_exception_type(mlflow_client):
    with pytest.raises(RestException):
        mlflow_client.get_model_version("none", "1")


START = (
    'mutation { startRun(input: {experiment: "exp"}) '
    "{ ... on StartRunSuccess { run { id experiment { id } } } } }"
)
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
FILES = "query($n: String!) { modelVersion(model: $n, version: 1) { digest files { path size } } }"


def test_a_version_from_runs_source_owns_a_snapshot_of_the_runs_files(
    mlflow_server, mlflow_client, tmp_path
):
    import httpx
    import mlflow

    run = mlflow_server.gql(START)["startRun"]["run"]
    root = f"{run['experiment']['id']}/{run['id']}/artifacts"
    with httpx.Client(
        base_url=mlflow_server.url,
        headers={"Authorization": f"Bearer {mlflow_server.token}"},
        timeout=30,
    ) as http:
        for path, body in (("model/MLmodel", b"flavors: {}\n"), ("model/w.bin", b"\x00" * 99)):
            assert http.put(f"{PROXY}/{root}/{path}", content=body).status_code == 200
        assert http.put(f"{PROXY}/{root}/other.txt", content=b"not in it").status_code == 200

    mlflow_client.create_registered_model("snap")
    version = mlflow_client.create_model_version(
        "snap", f"runs:/{run['id']}/model", run_id=run["id"]
    )
    assert (version.version, version.run_id) == ("1", run["id"])

    uri = mlflow_client.get_model_version_download_uri("snap", "1")
    assert uri.startswith("mlflow-artifacts:/registry/")
    assert uri.endswith("/1/artifacts")
    got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    assert sorted(p.name for p in got.rglob("*") if p.is_file()) == ["MLmodel", "w.bin"]
    assert (got / "MLmodel").read_bytes() == b"flavors: {}\n"
    graph = mlflow_server.gql(FILES, n="snap")["modelVersion"]
    assert graph["files"] == [{"path": "MLmodel", "size": 12}, {"path": "w.bin", "size": 99}]
    assert graph["digest"]


def test_a_version_from_a_logged_model_owns_its_files(mlflow_server, mlflow_client, tmp_path):
    import mlflow
    from mlflow.entities import LoggedModelStatus

    run = mlflow_server.gql(START)["startRun"]["run"]
    logged = mlflow_client.create_logged_model(run["experiment"]["id"], name="model")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "python_model.pkl").write_bytes(b"\x80\x04pickle")
    mlflow_client.log_model_artifacts(logged.model_id, str(folder))
    mlflow_client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

    mlflow_client.create_registered_model("from-logged")
    version = mlflow_client.create_model_version(
        "from-logged", f"models:/{logged.model_id}", model_id=logged.model_id
    )
    assert version.source == f"models:/{logged.model_id}"
    shown = mlflow_server.gql(
        '{ modelVersion(model: "from-logged", version: 1) { loggedModelId } }'
    )["modelVersion"]
    assert shown == {"loggedModelId": logged.model_id}

    uri = mlflow_client.get_model_version_download_uri("from-logged", "1")
    got = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "d")))
    assert sorted(p.name for p in got.rglob("*") if p.is_file()) == ["MLmodel", "python_model.pkl"]
    files = mlflow_server.gql(FILES, n="from-logged")["modelVersion"]["files"]
    assert [f["path"] for f in files] == ["MLmodel", "python_model.pkl"]


def _add_one_model():
    import mlflow.pyfunc

    class Model(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[int], params=None) -> list[int]:
            return [x + 1 for x in model_input]

    return Model()


def test_load_model_by_number_alias_and_stage(mlflow_server, mlflow_client, tmp_path):
    import mlflow
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelStatus

    saved = tmp_path / "saved"
    mlflow.pyfunc.save_model(str(saved), python_model=_add_one_model())
    run = mlflow_server.gql(START)["startRun"]["run"]
    logged = mlflow_client.create_logged_model(run["experiment"]["id"], name="model")
    mlflow_client.log_model_artifacts(logged.model_id, str(saved))
    mlflow_client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    mlflow_client.create_registered_model("served")
    mlflow_client.create_model_version(
        "served", f"models:/{logged.model_id}", model_id=logged.model_id
    )
    mlflow_client.set_registered_model_alias("served", "champion", "1")
    mlflow_client.transition_model_version_stage("served", "1", "Production")

    uris = ("models:/served/1", "models:/served@champion", "models:/served/Production")
    for n, uri in enumerate(uris):
        into = tmp_path / f"loaded-{n}"
        into.mkdir()
        loaded = mlflow.pyfunc.load_model(uri, dst_path=str(into))
        assert loaded.predict([1, 41]) == [2, 42], uri


def test_concurrent_promotions_through_the_face_leave_one_production_version(
    mlflow_server, mlflow_client
):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    mlflow_client.create_registered_model("race")
    for _ in range(8):
        mlflow_client.create_model_version("race", "s3://bucket/r")
    url = f"{mlflow_server.url}/api/2.0/mlflow/model-versions/transition-stage"
    headers = {"Authorization": f"Bearer {mlflow_server.token}"}

    def promote(version: int) -> int:
        body = {"name": "race", "version": str(version), "stage": "Production"}
        return httpx.post(url, json=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(promote, range(1, 9)))

    assert codes == [200] * 8
    final = stages(mlflow_server, "race")
    assert list(final.values()).count("PRODUCTION") == 1
    assert list(final.values()).count("ARCHIVED") == 7
    into_production = [e for e in events(mlflow_server, "race") if e["toStage"] == "PRODUCTION"]
    assert len(into_production) == 8


def test_a_watcher_sees_renames_and_deletions_made_by_the_mlflow_client(
    mlflow_server, mlflow_client
):
    mlflow_client.create_registered_model("short-lived")
    mlflow_client.create_model_version("short-lived", "s3://bucket/s")
    mlflow_client.create_model_version("short-lived", "s3://bucket/s")
    start = mlflow_server.gql("query { events(first: 500) { pageInfo { endCursor } } }")["events"][
        "pageInfo"
    ]["endCursor"]

    def changes() -> None:
        mlflow_client.rename_registered_model("short-lived", "renamed")
        mlflow_client.delete_model_version("renamed", "2")
        mlflow_client.delete_registered_model("renamed")

    async def watch() -> list[dict]:
        async with Subscriber(
            mlflow_server.server.ws, WATCH, {"model": None, "after": start}
        ) as watcher:
            await asyncio.to_thread(changes)
            return [e["lifecycleEvents"] for e in await watcher.take(3)]

    seen = asyncio.run(watch())
    assert [(e["type"], e["model"], e["versionNumber"], e["actor"]) for e in seen] == [
        ("MODEL_RENAMED", "renamed", None, ACTOR),
        ("VERSION_DELETED", "renamed", 2, ACTOR),
        ("MODEL_DELETED", "renamed", None, ACTOR),
    ]
