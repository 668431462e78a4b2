"""A promotion policy's conditions have one JSON spelling, and the migration to it rewrites
what databases written before it hold."""

import json

from sqlalchemy import create_engine, text

from app.db.migrate import downgrade, upgrade
from app.registry.policy import BeatProduction, Checked, Conditions, MetricRule, Unmet
from app.registry.stages import Stage
from app.tracking.search import CompareOp, Goal

CONDITIONS = Conditions(
    stage=Stage.PRODUCTION,
    required_checks=("tests",),
    metric_rules=(MetricRule("acc", CompareOp.GTE, 0.9),),
    must_beat_production=BeatProduction("acc", Goal.MAXIMIZE),
)


def test_conditions_and_what_a_move_was_checked_against_round_trip_through_json():
    checked = Checked(CONDITIONS, unmet=(Unmet("check tests", "FAILED", "PASSED"),))
    assert Conditions.from_json(json.loads(json.dumps(CONDITIONS.to_json()))) == CONDITIONS
    assert Checked.from_json(json.loads(json.dumps(checked.to_json()))) == checked
    assert checked.to_json()["bypassed"] is True


def test_the_migration_rewrites_policy_events_written_in_the_old_spelling(tmp_path):
    # given a database at the revision before, with a policy event in the old spelling
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    old = {
        "model_id": 1,
        "stage": "PRODUCTION",
        "required_checks": ["tests"],
        "metric_rules": [{"metric": "acc", "op": "GTE", "value": 0.9}],
        "must_beat_production": {"metric": "acc", "goal": "MAXIMIZE"},
        "actor": "ci",
    }
    sync = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with sync.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registered_model (name, tags, created_at, updated_at) "
                "VALUES ('m', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO event (type, model, actor, payload, at) "
                "VALUES ('MODEL_UPDATED', 'm', 'ci', :p, '2026-01-01')"
            ),
            {"p": json.dumps({"promotionPolicy": old})},
        )

    # when it is migrated
    upgrade(url, "head")

    # then the event holds the one spelling, which parses to the same conditions
    with sync.connect() as conn:
        stored = json.loads(conn.execute(text("SELECT payload FROM event")).scalar_one())
    assert Conditions.from_json(stored["promotionPolicy"]) == CONDITIONS
    assert stored["promotionPolicy"] == CONDITIONS.to_json()

    # and going back restores the old spelling
    downgrade(url, "0003")
    with sync.connect() as conn:
        back = json.loads(conn.execute(text("SELECT payload FROM event")).scalar_one())
    assert back == {"promotionPolicy": old}
    sync.dispose()
