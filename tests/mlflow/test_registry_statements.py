"""The registry's MLflow reads in a bounded number of statements, however many models,
versions and aliases a page holds (in process: the app's own engines are counted)."""

from app.registry import catalog
from app.registry.stages import Stage
from tests.factories import ACTOR, make_version

API = "/api/2.0/mlflow"


async def fill(db, first: int, last: int) -> None:
    """Models reg-<first>..reg-<last - 1>, each with versions in three stages and an alias."""
    for m in range(first, last):
        name = f"reg-{m}"
        await make_version(db, model=name, stage=Stage.PRODUCTION)
        await make_version(db, model=name, stage=Stage.STAGING)
        await make_version(db, model=name)
        async with db.unit_of_work() as session:
            await catalog.set_alias(session, model=name, alias="champion", version=1, actor=ACTOR)


async def count(client, sql_counter, path: str, **params) -> tuple[int, dict]:
    sql_counter.reset()
    response = await client.get(f"{API}/{path}", params=params)
    assert response.status_code == 200, response.text
    statements = [s for s in sql_counter.statements if "api_token" not in s and "pg_" not in s]
    return len(statements), response.json()


async def test_model_search_does_not_read_per_model(db, client, sql_counter):
    await fill(db, 0, 2)
    few, answer = await count(client, sql_counter, "registered-models/search")
    assert [len(m["latest_versions"]) for m in answer["registered_models"]] == [3, 3]
    await fill(db, 2, 6)
    many, answer = await count(client, sql_counter, "registered-models/search")
    assert len(answer["registered_models"]) == 6
    assert answer["registered_models"][5]["aliases"] == [{"alias": "champion", "version": "1"}]
    assert many == few


async def test_version_search_does_not_read_per_version(db, client, sql_counter):
    await fill(db, 0, 1)
    few, answer = await count(client, sql_counter, "model-versions/search")
    assert len(answer["model_versions"]) == 3
    await fill(db, 1, 6)
    many, answer = await count(client, sql_counter, "model-versions/search")
    assert len(answer["model_versions"]) == 18
    assert many == few
