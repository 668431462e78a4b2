"""Model versions own their files: uploads outside any run, versions registered from
uploaded digests or from a run's folder, immutable file sets with one manifest digest,
download URLs in the graph, digests in lifecycle events, and a version's bytes outliving
the run artifact it was snapshotted from."""

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from app.artifacts.content import manifest_digest
from app.artifacts.models import Blob, VersionFile
from app.artifacts.upkeep import collect_garbage
from app.auth.roles import Role
from app.config import Settings
from app.events.models import Event
from app.registry import catalog
from tests.conftest import asgi_client, make_token
from tests.factories import make_run
from tests.integrity import table_counts

WEIGHTS = b"weights " * 1000
CONFIG = b'{"layers": 3}'


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Every app in this module keeps its bytes in the test's own folder, on both databases.
    return Settings(database_url=database_url, artifact_store=(tmp_path / "store").as_uri())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(client: Any, data: bytes) -> str:
    response = await client.put("/artifacts/uploads", content=data)
    assert response.status_code == 201, response.text
    digest: str = response.json()["digest"]
    return digest


async def log(client: Any, run_id: str, path: str, data: bytes) -> None:
    response = await client.put(f"/artifacts/runs/{run_id}/{path}", content=data)
    assert response.status_code == 201, response.text


REGISTER = """
mutation($model: String!, $source: String, $files: [VersionFileInput!], $key: String) {
  registerModelVersion(input: {model: $model, source: $source, files: $files,
                               idempotencyKey: $key}) {
    __typename
    ... on RegisterModelVersionSuccess {
      modelVersion { version digest files { path digest size downloadUrl } }
    }
    ... on NotFound { field value }
    ... on InvalidInput { field message }
    ... on Conflict { field }
  }
}
"""


# ---------------------------------------------------------------- PUT /artifacts/uploads


async def test_upload_outside_a_run_stores_content_once(client, db):
    # given a WRITER's two uploads of the same bytes
    first = await client.put(
        "/artifacts/uploads", content=WEIGHTS, headers={"X-Content-SHA256": sha(WEIGHTS)}
    )
    second = await client.put("/artifacts/uploads", content=WEIGHTS)

    # then both answer with the digest and size, and one Blob row holds the content
    assert first.status_code == second.status_code == 201, first.text
    assert first.json() == second.json() == {"digest": sha(WEIGHTS), "size": len(WEIGHTS)}
    async with db.read() as session:
        rows = (await session.execute(select(Blob.digest))).scalars().all()
    assert rows == [sha(WEIGHTS)]
    assert (await client.get(f"/artifacts/blobs/{sha(WEIGHTS)}")).content == WEIGHTS


async def test_upload_with_a_wrong_declared_digest_is_refused(client, db):
    before = await table_counts(db)
    response = await client.put(
        "/artifacts/uploads", content=WEIGHTS, headers={"X-Content-SHA256": "0" * 64}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "X-Content-SHA256"
    assert await table_counts(db) == before


async def test_a_reader_cannot_upload(app, database_url, db):
    secret = await make_token(database_url, "reader", Role.READER)
    before = await table_counts(db)
    async with asgi_client(app, secret) as reader:
        response = await reader.put("/artifacts/uploads", content=WEIGHTS)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert await table_counts(db) == before


# ---------------------------------------------------------------- registering with files


async def test_register_from_uploads_owns_the_files(client, gql):
    # given two files a CI job uploaded outside any run
    weights, config = await upload(client, WEIGHTS), await upload(client, CONFIG)

    # when a version is registered with them (in any order)
    files = [{"path": "weights.bin", "digest": weights}, {"path": "conf/c.json", "digest": config}]
    data = await gql(REGISTER, model="m", files=files)
    again = await gql(REGISTER, model="m", files=list(reversed(files)))

    # then the version lists them with sizes and absolute URLs that serve the bytes,
    # and its digest is the manifest's: the same for the same files
    version = data["registerModelVersion"]["modelVersion"]
    assert version["files"] == [
        {
            "path": "conf/c.json",
            "digest": config,
            "size": len(CONFIG),
            "downloadUrl": f"http://testserver/artifacts/blobs/{config}",
        },
        {
            "path": "weights.bin",
            "digest": weights,
            "size": len(WEIGHTS),
            "downloadUrl": f"http://testserver/artifacts/blobs/{weights}",
        },
    ]
    assert version["digest"] == manifest_digest(
        [("weights.bin", weights, len(WEIGHTS)), ("conf/c.json", config, len(CONFIG))]
    )
    assert again["registerModelVersion"]["modelVersion"]["digest"] == version["digest"]
    assert (await client.get(version["files"][1]["downloadUrl"])).content == WEIGHTS


async def test_an_unknown_digest_is_not_found_by_index_and_changes_nothing(client, gql, db):
    weights = await upload(client, WEIGHTS)
    before = await table_counts(db)
    files = [{"path": "w", "digest": weights}, {"path": "x", "digest": "a" * 64}]
    data = await gql(REGISTER, model="m", files=files)
    assert data["registerModelVersion"] == {
        "__typename": "NotFound",
        "field": "files[1].digest",
        "value": "a" * 64,
    }
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([{"path": "../w", "digest": "a" * 64}], "files[0].path"),
        ([{"path": "w", "digest": "nope"}], "files[0].digest"),
        ([{"path": "w", "digest": "a" * 64}, {"path": "w", "digest": "b" * 64}], "files[1].path"),
    ],
)
async def test_bad_files_are_refused_by_index(gql, db, files, field):
    before = await table_counts(db)
    data = await gql(REGISTER, model="m", files=files)
    assert data["registerModelVersion"]["__typename"] == "InvalidInput"
    assert data["registerModelVersion"]["field"] == field
    assert await table_counts(db) == before


async def test_register_from_a_run_path_snapshots_its_files(client, gql, db):
    # given a run with a model folder and another file
    run = await make_run(db)
    await log(client, run.id, "model/weights.bin", WEIGHTS)
    await log(client, run.id, "model/conf/c.json", CONFIG)
    await log(client, run.id, "notes.txt", b"n")

    # when a version is registered from runs:/<id>/model
    data = await gql(REGISTER, model="m", source=f"runs:/{run.id}/model")

    # then it owns the folder's files, with paths relative to it
    version = data["registerModelVersion"]["modelVersion"]
    assert [(f["path"], f["digest"]) for f in version["files"]] == [
        ("conf/c.json", sha(CONFIG)),
        ("weights.bin", sha(WEIGHTS)),
    ]
    # and the same files uploaded outside the run make a version with the same digest
    files = [
        {"path": "weights.bin", "digest": await upload(client, WEIGHTS)},
        {"path": "conf/c.json", "digest": await upload(client, CONFIG)},
    ]
    uploaded = await gql(REGISTER, model="other", files=files)
    assert uploaded["registerModelVersion"]["modelVersion"]["digest"] == version["digest"]


async def test_a_run_path_without_files_or_an_unknown_run_is_refused(client, gql, db):
    run = await make_run(db)
    await log(client, run.id, "notes.txt", b"n")
    before = await table_counts(db)
    empty = await gql(REGISTER, model="m", source=f"runs:/{run.id}/model")
    assert empty["registerModelVersion"]["__typename"] == "InvalidInput"
    assert empty["registerModelVersion"]["field"] == "source"
    missing = await gql(REGISTER, model="m", source=f"runs:/{'f' * 32}/model")
    assert missing["registerModelVersion"] == {
        "__typename": "NotFound",
        "field": "source",
        "value": "f" * 32,
    }
    assert await table_counts(db) == before


async def test_a_version_without_files_has_the_empty_manifest_digest(gql):
    data = await gql(REGISTER, model="m", source="s3://elsewhere/m")
    version = data["registerModelVersion"]["modelVersion"]
    assert version["files"] == []
    assert version["digest"] == manifest_digest([])


async def test_files_are_part_of_a_retried_request(client, gql):
    weights, config = await upload(client, WEIGHTS), await upload(client, CONFIG)
    files = [{"path": "w", "digest": weights}]
    first = await gql(REGISTER, model="m", files=files, key="k")
    retry = await gql(REGISTER, model="m", files=files, key="k")
    assert retry == first
    other = await gql(REGISTER, model="m", files=[{"path": "w", "digest": config}], key="k")
    assert other["registerModelVersion"] == {"__typename": "Conflict", "field": "idempotencyKey"}


# ---------------------------------------------------------------- what outlives what


async def test_deleting_the_run_artifact_never_breaks_the_version(app, client, gql, db):
    # given a version snapshotted from a run's file, which is then deleted from the run
    run = await make_run(db)
    await log(client, run.id, "model/w.bin", WEIGHTS)
    data = await gql(REGISTER, model="m", source=f"runs:/{run.id}/model")
    url = data["registerModelVersion"]["modelVersion"]["files"][0]["downloadUrl"]
    assert (await client.delete(f"/artifacts/runs/{run.id}/model/w.bin")).status_code == 200

    # when garbage is collected with no grace at all
    report = await collect_garbage(app.state.db, app.state.blobs, grace=timedelta(0))

    # then the version's content is kept and still served
    assert sha(WEIGHTS) not in report.blobs_deleted
    assert (await client.get(url)).content == WEIGHTS


async def test_a_version_file_set_is_written_once(client, gql, db):
    weights = await upload(client, WEIGHTS)
    await gql(REGISTER, model="m", files=[{"path": "w", "digest": weights}])
    # editing the version touches no file row
    await gql(
        'mutation { updateModelVersion(input: {model: "m", version: 1, description: "d"})'
        " { __typename } }"
    )
    async with db.read() as session:
        rows = (await session.execute(select(VersionFile.path, VersionFile.digest))).all()
    assert [tuple(r) for r in rows] == [("w", weights)]


# ---------------------------------------------------------------- events and promotion

PROMOTE = """
mutation($path: String!) {
  promoteBestRun(input: {experiment: "exp", metric: "acc", model: "m", artifactPath: $path}) {
    __typename
    ... on PromoteBestRunSuccess { modelVersion { source digest files { path } } }
  }
}
"""


async def payloads(db: Any, kind: str) -> list[dict[str, Any]]:
    async with db.read() as session:
        rows = await session.execute(
            select(Event.payload).where(col(Event.type) == kind).order_by(col(Event.seq))
        )
    return [p for (p,) in rows.all()]


async def test_promote_best_run_registers_the_model_folder(client, gql, db):
    run = await make_run(db, metrics={"acc": 0.9})
    await log(client, run.id, "model/w.bin", WEIGHTS)
    data = await gql(PROMOTE, path="model")
    version = data["promoteBestRun"]["modelVersion"]
    assert version["source"] == f"runs:/{run.id}/model"
    assert version["files"] == [{"path": "w.bin"}]
    expected = manifest_digest([("w.bin", sha(WEIGHTS), len(WEIGHTS))])
    assert version["digest"] == expected
    # the lifecycle events carry the digest a watcher will pull
    assert [p["digest"] for p in await payloads(db, "VERSION_REGISTERED")] == [expected]
    assert [p["digest"] for p in await payloads(db, "STAGE_CHANGED")] == [expected]


async def test_promote_best_run_without_model_files_registers_none(gql, db):
    run = await make_run(db, metrics={"acc": 0.9})
    data = await gql(PROMOTE, path="model")
    version = data["promoteBestRun"]["modelVersion"]
    assert version["source"] == f"runs:/{run.id}/model"
    assert version["files"] == []
    assert version["digest"] == manifest_digest([])


# ---------------------------------------------------------------- the graph

ARTIFACTS = """
query($run: ID!, $path: String!) {
  run(id: $run) { artifacts(path: $path) { path isDir size digest downloadUrl } }
}
"""


async def test_run_artifacts_lists_direct_children(client, gql, db):
    run = await make_run(db)
    await log(client, run.id, "model/weights.bin", WEIGHTS)
    await log(client, run.id, "model/conf/c.json", CONFIG)
    await log(client, run.id, "notes.txt", b"n")
    top = (await gql(ARTIFACTS, run=run.id, path=""))["run"]["artifacts"]
    assert top == [
        {"path": "model", "isDir": True, "size": None, "digest": None, "downloadUrl": None},
        {
            "path": "notes.txt",
            "isDir": False,
            "size": 1,
            "digest": sha(b"n"),
            "downloadUrl": f"http://testserver/artifacts/runs/{run.id}/notes.txt",
        },
    ]
    model = (await gql(ARTIFACTS, run=run.id, path="model"))["run"]["artifacts"]
    assert [(e["path"], e["isDir"]) for e in model] == [
        ("model/conf", True),
        ("model/weights.bin", False),
    ]
    bad = await gql.raw(ARTIFACTS, run=run.id, path="../x")
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


FILES_SCREEN = """
query($first: Int!) {
  models(first: $first) {
    nodes {
      versions(first: 10) {
        nodes { digest files { path digest size downloadUrl } run { artifacts { path } } }
      }
    }
  }
}
"""


async def seed_versions(db: Any, client: Any, count: int) -> None:
    digest = await upload(client, WEIGHTS)
    async with db.unit_of_work() as session:
        for m in range(count):
            await catalog.register_version(
                session, model=f"m{m:03d}", files=(("w.bin", digest),), actor="test"
            )


async def test_files_take_the_same_statements_for_5_and_50_models(client, gql, db, sql_counter):
    await seed_versions(db, client, 50)
    counts = []
    for first in (5, 50):
        sql_counter.reset()
        data = await gql(FILES_SCREEN, first=first)
        nodes = data["models"]["nodes"]
        assert len(nodes) == first
        assert all(v["versions"]["nodes"][0]["files"][0]["path"] == "w.bin" for v in nodes)
        counts.append(sql_counter.count)
    assert counts[0] == counts[1], sql_counter.statements
