"""Logged models are read in a bounded number of statements, however many a page holds:
through the MLflow face's search and through GraphQL with every field (in process: the
app's own engines are counted)."""

from collections.abc import AsyncIterator

from app.artifacts.content import store_content
from app.artifacts.model_files import log_model_artifact
from app.artifacts.store import BlobStore
from app.tracking import logged_models
from app.tracking.logged_model_models import LoggedModelStatus
from tests.factories import ACTOR, make_run

QUERY = """query { loggedModels(experiment: "exp") { nodes {
    id name status experiment { name } sourceRun { id } params { key value }
    tags { key value } metrics { key value } outputs { step run { id } }
    files { path digest size downloadUrl } } } }"""


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fill(db, blobs: BlobStore, count: int) -> None:
    """`count` READY models, each output by its own run with a metric, with params, tags
    and two files."""
    for i in range(count):
        run = await make_run(db, experiment="exp", metrics={"acc": i / 10})
        async with db.unit_of_work() as session:
            model = await logged_models.create_logged_model(
                session,
                experiment_id=run.experiment_id,
                name=f"model-{i}",
                source_run_id=run.id,
                params={"i": str(i)},
                tags={"team": "a"},
                actor=ACTOR,
            )
            await logged_models.log_outputs(
                session, run_id=run.id, outputs=[(model.id, 0)], actor=ACTOR
            )
        for path in ("MLmodel", f"weights-{i}.bin"):
            uploaded = await store_content(db, blobs, one(path.encode()), max_bytes=1 << 20)
            async with db.unit_of_work() as session:
                await log_model_artifact(
                    session,
                    blobs,
                    model_id=model.id,
                    path=path,
                    uploaded=uploaded,
                    actor=ACTOR,
                    max_files=10,
                )
        async with db.unit_of_work() as session:
            await logged_models.finalize_logged_model(
                session, model_id=model.id, status=LoggedModelStatus.READY, actor=ACTOR
            )


def counted(sql_counter) -> int:
    return len([s for s in sql_counter.statements if "api_token" not in s and "pg_" not in s])


async def test_search_and_graph_do_not_read_per_model(app, db, client, gql, sql_counter):
    blobs: BlobStore = app.state.blobs
    await fill(db, blobs, 2)
    experiment_id = (await make_run(db, experiment="exp")).experiment_id
    body = {"experiment_ids": [str(experiment_id)], "filter": "metrics.acc >= 0"}

    async def both() -> tuple[int, int, dict, dict]:
        sql_counter.reset()
        response = await client.post("/api/2.0/mlflow/logged-models/search", json=body)
        assert response.status_code == 200, response.text
        searched = counted(sql_counter)
        sql_counter.reset()
        shown = await gql(QUERY)
        return searched, counted(sql_counter), response.json(), shown

    few_search, few_graph, answer, shown = await both()
    assert len(answer["models"]) == 2
    assert len(shown["loggedModels"]["nodes"]) == 2
    await fill(db, blobs, 6)
    many_search, many_graph, answer, shown = await both()
    assert len(answer["models"]) == 8
    nodes = shown["loggedModels"]["nodes"]
    assert len(nodes) == 8
    assert all(len(n["files"]) == 2 and n["metrics"] and n["outputs"] for n in nodes)
    assert answer["models"][0]["data"]["metrics"][0]["key"] == "acc"
    assert (many_search, many_graph) == (few_search, few_graph)
