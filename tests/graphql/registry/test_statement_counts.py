"""How many SQL statements a lifecycle write costs: the model's state is read once, under
its lock, and handed down instead of each check querying it again."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.factories import make_run, make_version


@contextmanager
def counting_flushes() -> Iterator[list[int]]:
    """The objects each ORM flush wrote (new or changed), flush by flush, while inside."""
    flushes: list[int] = []

    def before(session: Session, *_: Any) -> None:
        flushes.append(len(session.new) + len(session.dirty))

    event.listen(Session, "before_flush", before)
    try:
        yield flushes
    finally:
        event.remove(Session, "before_flush", before)


POLICY = """
mutation {
  setPromotionPolicy(input: {model: "m", stage: PRODUCTION, requiredChecks: ["tests"],
                             metricRules: [{metric: "acc", op: GTE, value: 0.5}],
                             mustBeatProduction: {metric: "acc", goal: MAXIMIZE}}) { __typename }
}
"""
PASS = """
mutation($v: Int!) {
  recordValidation(input: {model: "m", version: $v, check: "tests", status: PASSED}) { __typename }
}
"""
PROMOTE = """
mutation($v: Int!) {
  transitionModelVersion(input: {model: "m", version: $v, stage: PRODUCTION,
                                 expectedProductionVersion: 1, expectedStage: STAGING}) {
    __typename
    ... on TransitionModelVersionSuccess { transitions { fromStage toStage } }
  }
}
"""


async def test_a_promotion_to_production_reads_the_production_version_once(db, gql, sql_counter):
    # given version 1 in PRODUCTION, version 2 STAGING that passes every condition of a policy
    # that compares it with PRODUCTION, and a caller that expects version 1 there
    old = await make_run(db, metrics={"acc": 0.6})
    new = await make_run(db, metrics={"acc": 0.9})
    await make_version(db, model="m", run_id=old.id, stage="PRODUCTION")
    v2 = await make_version(db, model="m", run_id=new.id, stage="STAGING")
    assert (await gql(POLICY))["setPromotionPolicy"]["__typename"] == "SetPromotionPolicySuccess"
    assert (await gql(PASS, v=v2))["recordValidation"]["__typename"] == "RecordValidationSuccess"

    # when it is promoted
    sql_counter.reset()
    with counting_flushes() as flushes:
        moved = (await gql(PROMOTE, v=v2))["transitionModelVersion"]

    # then both moves happen, and the PRODUCTION version was selected once
    assert moved["transitions"] == [
        {"fromStage": "PRODUCTION", "toStage": "ARCHIVED"},
        {"fromStage": "STAGING", "toStage": "PRODUCTION"},
    ]
    production_reads = [
        s
        for s in sql_counter.statements
        if s.lstrip().startswith("SELECT") and "model_version" in s and ".stage = " in s
    ]
    assert len(production_reads) == 1, production_reads
    # the model locked, its PRODUCTION version and this one (one statement on SQLite, whose
    # BEGIN IMMEDIATE holds the lock already; on PostgreSQL they are read after the lock),
    # the policy, the checks, both runs' metrics; then two moves (update, audit row, event
    # each): 15 before, when three checks each selected the PRODUCTION version again
    # (PostgreSQL adds its outbox signalling: an advisory lock and a NOTIFY per event)
    queries = [s for s in sql_counter.statements if "pg_" not in s]
    postgres = db.url.get_backend_name() == "postgresql"
    assert len(queries) == (12 if postgres else 11), "\n".join(queries)
    # one flush per move: its update, audit row and event go to the database together (on
    # PostgreSQL the first event's advisory lock is a statement, which flushes what is
    # pending before it)
    assert flushes == ([2, 1, 3] if postgres else [3, 3]), flushes
