"""Nested fields go through per-request loaders: statements per screen do not grow with rows."""

from app.db import Database
from app.registry import catalog
from app.tracking import metrics as tracking_metrics
from app.tracking import service as tracking_service

DASHBOARD = """
query Dashboard($first: Int!) {
  models(first: $first) {
    nodes {
      name
      productionVersion { version }
      latestVersion { version stage }
      aliases { alias version { version } }
      versions(first: 10) {
        nodes {
          version
          stage
          aliases
          run {
            id
            name
            experiment { name runCount }
            params { key value }
            metrics { key value min max }
            modelVersions { version }
          }
        }
      }
    }
  }
}
"""


async def seed_models(db: Database, count: int) -> None:
    async with db.unit_of_work() as session:
        for m in range(count):
            for v in range(3):
                run = await tracking_service.start_run(
                    session, experiment=f"exp-{m % 4}", params={"lr": "0.1"}, actor="test"
                )
                points = [
                    tracking_metrics.MetricPoint(key, 0.5 + v / 10, step)
                    for key in ("accuracy", "loss", "f1")
                    for step in range(3)
                ]
                await tracking_metrics.log_metrics(
                    session, actor="test", run_id=run.id, points=points
                )
                await catalog.register_version(
                    session, model=f"model-{m:03d}", run_id=run.id, actor="test"
                )
            await catalog.set_alias(
                session, model=f"model-{m:03d}", alias="champion", version=1, actor="test"
            )


async def dashboard_statements(gql, sql_counter, models: int) -> int:
    sql_counter.reset()
    data = await gql(DASHBOARD, first=models)
    nodes = data["models"]["nodes"]
    assert len(nodes) == models
    assert all(len(n["versions"]["nodes"]) == 3 for n in nodes)
    assert all(len(v["run"]["metrics"]) == 3 for n in nodes for v in n["versions"]["nodes"])
    return sql_counter.count


async def test_dashboard_statement_count_is_the_same_for_5_and_50_models(db, gql, sql_counter):
    # given 50 models with 3 versions each, every version made from a run with 3 metrics
    await seed_models(db, 50)

    # when the dashboard is read for 5 models and for 50
    small = await dashboard_statements(gql, sql_counter, 5)
    large = await dashboard_statements(gql, sql_counter, 50)

    # then both take the same, small number of statements: one per loader batch
    assert small == large
    assert large <= 12, sql_counter.statements
