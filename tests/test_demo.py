"""The demo seeder gives a newcomer's first query something in every stage."""

from collections import Counter

from app.demo import EXPERIMENTS, seed

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
