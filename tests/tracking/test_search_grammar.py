"""Run search across experiments with MLflow's grammar, on the database."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from app.db import Database
from app.db.pagination import order_by as sql_order
from app.errors import ValidationError
from app.tracking import datasets, lifecycle
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus
from app.tracking.search import Aggregate, Goal, ViewType, best_run_query, metric_led_queries
from tests.factories import ACTOR, make_run

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def search(db: Database, filter: str | None = None, order_by=None, **kw):
    view = kw.pop("view", ViewType.ACTIVE_ONLY)
    async with db.read() as session:
        page = await tracking_reads.search_runs_matching(
            session,
            search=tracking_reads.parse_search(filter=filter, order_by=order_by, view=view),
            experiment_ids=kw.pop("experiment_ids", None),
            first=kw.pop("first", 100),
            after=kw.pop("after", None),
        )
    return page


async def ids(db: Database, filter: str | None = None, order_by=None, **kw) -> list[str]:
    return [r.id for r in (await search(db, filter, order_by, **kw)).items]


async def runs(db: Database) -> dict[str, str]:
    """Four runs in two experiments, started a minute apart: a, b in e1; c, d in e2."""
    made = {}
    specs = [
        ("a", "e1", {"acc": 0.9, "loss": 0.3}, {"lr": "0.01", "opt": "adam"}, {"team": "Red"}),
        ("b", "e1", {"acc": 0.7}, {"lr": "0.1", "opt": "sgd"}, {"team": "blue"}),
        ("c", "e2", {"acc": 0.95}, {"lr": "0.01"}, {}),
        ("d", "e2", {}, {"lr": "0.5"}, {"team": "red"}),
    ]
    for i, (name, exp, metrics, params, tags) in enumerate(specs):
        run = await make_run(
            db,
            experiment=exp,
            name=name,
            metrics=metrics,
            params=params,
            tags=tags,
            start_time=T0 + timedelta(minutes=i),
            user_id=f"user-{name}",
        )
        made[name] = run.id
    return made


async def names(db: Database, made: dict[str, str], *args, **kw) -> list[str]:
    back = {v: k for k, v in made.items()}
    return [back[i] for i in await ids(db, *args, **kw)]


async def test_the_default_order_is_newest_first_across_experiments(db: Database) -> None:
    made = await runs(db)

    assert await names(db, made) == ["d", "c", "b", "a"]


async def test_clauses_on_metrics_params_tags_and_attributes_all_hold(db: Database) -> None:
    made = await runs(db)

    assert await names(db, made, "metrics.acc > 0.8") == ["c", "a"]
    assert await names(db, made, "metrics.acc > 0.8 and params.lr = '0.01'") == ["c", "a"]
    assert await names(db, made, "params.opt != 'adam'") == ["b"]
    assert await names(db, made, "tags.team IS NULL") == ["c"]
    assert await names(db, made, "tags.team IS NOT NULL") == ["d", "b", "a"]
    assert await names(db, made, "attributes.run_name IN ('a', 'd')") == ["d", "a"]
    assert await names(db, made, "attributes.user_id = 'user-b'") == ["b"]
    assert await names(db, made, f"attributes.run_id = '{made['c']}'") == ["c"]
    started = int((T0 + timedelta(minutes=2)).timestamp() * 1000)
    assert await names(db, made, f"attributes.start_time >= {started}") == ["d", "c"]


async def test_like_is_case_sensitive_and_ilike_is_not(db: Database) -> None:
    made = await runs(db)

    assert await names(db, made, "tags.team LIKE 'r%'") == ["d"]
    assert await names(db, made, "tags.team ILIKE 'r%'") == ["d", "a"]
    assert await names(db, made, "tags.team LIKE '_ed'") == ["d", "a"]


async def test_status_and_experiments_narrow_the_search(db: Database) -> None:
    made = await runs(db)
    async with db.unit_of_work() as session:
        await tracking_service.end_run(
            session, run_id=made["b"], status=RunStatus.FAILED, actor=ACTOR
        )
        e2 = await tracking_service.require_experiment(session, name="e2")

    assert await names(db, made, "attributes.status = 'FAILED'") == ["b"]
    assert await names(db, made, "attributes.status = 'NOT_A_STATUS'") == []
    assert await names(db, made, experiment_ids=[e2.id]) == ["d", "c"]


async def test_ordering_by_a_metric_puts_runs_without_it_last(db: Database) -> None:
    made = await runs(db)

    assert await names(db, made, order_by=["metrics.acc DESC"]) == ["c", "a", "b", "d"]
    assert await names(db, made, order_by=["metrics.acc ASC"]) == ["b", "a", "c", "d"]
    assert await names(db, made, order_by=["params.lr DESC", "attributes.run_name"]) == [
        "d",
        "b",
        "a",
        "c",
    ]
    assert await names(db, made, order_by=["tags.team"]) == ["a", "b", "d", "c"]


@pytest.mark.parametrize("order_by", [["metrics.acc DESC"], ["params.lr"], None])
async def test_pages_follow_one_another_without_gaps_or_repeats(db: Database, order_by) -> None:
    made = await runs(db)
    whole = await ids(db, order_by=order_by)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await search(db, order_by=order_by, first=1, after=after)
        seen += [r.id for r in page.items]
        if not page.has_next:
            break
        after = page.end_cursor

    assert seen == whole
    assert sorted(seen) == sorted(made.values())


async def test_a_page_token_from_elsewhere_is_refused(db: Database) -> None:
    await runs(db)

    with pytest.raises(ValidationError) as refused:
        await search(db, order_by=["metrics.acc DESC"], after="not-a-token")

    assert refused.value.field == "after"


async def test_deleted_runs_are_seen_only_when_asked(db: Database) -> None:
    made = await runs(db)
    async with db.unit_of_work() as session:
        await lifecycle.delete_run(session, run_id=made["a"], actor=ACTOR)

    assert "a" not in await names(db, made)
    assert await names(db, made, view=ViewType.DELETED_ONLY) == ["a"]
    assert await names(db, made, view=ViewType.ALL) == ["d", "c", "b", "a"]
    assert "a" not in await names(db, made, order_by=["metrics.acc DESC"])


async def test_dataset_clauses_match_the_runs_inputs(db: Database) -> None:
    made = await runs(db)
    async with db.unit_of_work() as session:
        await datasets.log_inputs(
            session,
            run_id=made["b"],
            inputs=[
                datasets.DatasetInput(
                    "iris", "d1", "local", "/data/iris.csv", tags={"mlflow.data.context": "train"}
                )
            ],
            actor=ACTOR,
        )

    assert await names(db, made, "datasets.name = 'iris'") == ["b"]
    assert await names(db, made, "datasets.context = 'train' and datasets.digest = 'd1'") == ["b"]
    assert await names(db, made, "datasets.context = 'eval'") == []


def plan_text(rows) -> str:
    return "\n".join(" ".join(str(c) for c in row) for row in rows)


async def explain(db: Database, stmt) -> str:
    async with db.read() as session:
        dialect = session.get_bind().dialect.name
        compiled = stmt.compile(
            dialect=postgresql.dialect() if dialect == "postgresql" else sqlite.dialect(),
            compile_kwargs={"literal_binds": True},
        )
        if dialect == "postgresql":
            # A few rows: a scan is cheaper there; off, the plan is the one a big table gets.
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            rows = (await session.execute(text(f"EXPLAIN {compiled}"))).all()
        else:
            rows = (await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
    return plan_text(rows)


async def test_a_metric_led_search_reads_the_same_index_as_best_run(db: Database) -> None:
    await runs(db)
    async with db.read() as session:
        e1 = await tracking_service.require_experiment(session, name="e1")
    (with_metric, keys), _ = metric_led_queries(
        tracking_reads.parse_search(filter=None, order_by=["metrics.acc DESC"]),
        [e1.id],
        sqlite=db.dialect == "sqlite",
    )
    best = best_run_query(e1.id, "acc", Goal.MAXIMIZE, Aggregate.LAST, None)

    best_plan = await explain(db, best)
    search_plan = await explain(db, with_metric.order_by(*sql_order(keys)).limit(10))

    assert "ix_latest_metric_last" in best_plan
    assert "ix_latest_metric_last" in search_plan
