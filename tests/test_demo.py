"""The demo seeder gives a newcomer's first query something in every stage."""

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.cli import main
from app.db import Database
from app.db.tables import metadata
from app.demo import EXPERIMENTS, seed
from app.registry import catalog
from app.tracking import service as tracking_service

DASHBOARD = """
{
  experiments { nodes { name runCount bestRun(metric: "auc") { id } } }
  models { nodes { name productionVersion { version run { metrics { key } } }
                   versions { nodes { stage } } aliases { alias } } }
}
"""


async def test_demo_seeds_experiments_runs_and_models_in_every_stage(settings, gql):
    # when the demo seeder fills the database
    summary = await seed(settings, runs=12)

    # then every experiment has runs, and every model has a version in each stage
    data = await gql(DASHBOARD)
    experiments = {e["name"]: e for e in data["experiments"]["nodes"]}
    assert all(experiments[name]["runCount"] == 4 for name in EXPERIMENTS)
    assert all(experiments[name]["bestRun"] for name in EXPERIMENTS)
    for model in data["models"]["nodes"]:
        stages = Counter(v["stage"] for v in model["versions"]["nodes"])
        assert set(stages) == {"DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"}
        assert stages["PRODUCTION"] == 1
        assert len(model["productionVersion"]["run"]["metrics"]) == 5
        assert model["aliases"] == [{"alias": "champion"}]
    assert "seeded 12 runs" in summary


async def row_counts(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        async with database.read() as session:
            return {
                t.name: (await session.execute(select(func.count()).select_from(t))).scalar_one()
                for t in metadata.sorted_tables
            }
    finally:
        await database.dispose()


async def demo_cli(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> int:
    # main() runs its own event loop, so it gets a thread of its own.
    monkeypatch.setenv("MODELGRAPH_DATABASE_URL", url)
    return await asyncio.to_thread(main, ["demo", "--runs", "12", *args])


async def test_demo_run_again_changes_nothing_and_says_so(database_url, monkeypatch, capsys):
    # given a database the demo has filled
    assert await demo_cli(monkeypatch, database_url) == 0
    seeded = await row_counts(database_url)
    assert seeded["run"] == 12
    assert seeded["registered_model"] == len(EXPERIMENTS)
    capsys.readouterr()

    # when the demo runs again
    code = await demo_cli(monkeypatch, database_url)

    # then it exits 0, says the data is there, and writes nothing
    assert code == 0
    assert "already" in capsys.readouterr().out
    assert await row_counts(database_url) == seeded


async def test_demo_refuses_a_database_whose_names_it_would_reuse(
    database_url, db, monkeypatch, capsys
):
    # given someone's own experiment under a name the demo uses
    async with db.unit_of_work() as session:
        await tracking_service.create_experiment(session, name="churn-prediction", actor="me")
    before = await row_counts(database_url)

    # when the demo runs
    code = await demo_cli(monkeypatch, database_url)

    # then it refuses with the conflict code, names the clash, and writes nothing
    assert code == 4
    assert "churn-prediction" in capsys.readouterr().err
    assert await row_counts(database_url) == before


async def test_demo_failing_midway_leaves_nothing_behind(settings, database_url, monkeypatch):
    # given a failure after the runs are trained, while the models are being made
    before = await row_counts(database_url)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(catalog, "set_alias", broken)

    # when the demo runs, it fails
    with pytest.raises(RuntimeError, match="disk full"):
        await seed(settings, runs=12)

    # then not one row of it is left, and a second attempt seeds everything
    assert await row_counts(database_url) == before
    monkeypatch.undo()
    await seed(settings, runs=12)
    assert (await row_counts(database_url))["run"] == 12
