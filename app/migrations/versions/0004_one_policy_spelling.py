"""One spelling for a promotion policy's conditions: MODEL_UPDATED events written when a
policy was set held the policy row's column names (model_id, required_checks, ...), while
audit rows and STAGE_CHANGED events held requiredChecks, metricRules, mustBeatProduction.
The events are rewritten to the latter; the data is otherwise unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

event = sa.table(
    "event",
    sa.column("seq", sa.BigInteger),
    sa.column("type", sa.String),
    sa.column("model", sa.String),
    sa.column("actor", sa.String),
    sa.column("payload", sa.JSON),
)
OLD_TO_NEW = {
    "required_checks": "requiredChecks",
    "metric_rules": "metricRules",
    "must_beat_production": "mustBeatProduction",
}


def _rewrite(convert: Any) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(event.c.seq, event.c.model, event.c.actor, event.c.payload).where(
            event.c.type == "MODEL_UPDATED"
        )
    ).all()
    for seq, model, actor, payload in rows:
        stored = (payload or {}).get("promotionPolicy")
        if not isinstance(stored, dict):
            continue
        changed = convert(stored, model, actor)
        if changed is not None:
            bind.execute(
                event.update()
                .where(event.c.seq == seq)
                .values(payload={**payload, "promotionPolicy": changed})
            )


def _to_new(stored: dict[str, Any], model: str, actor: str) -> dict[str, Any] | None:
    if "required_checks" not in stored:
        return None
    return {"stage": stored["stage"], **{new: stored.get(old) for old, new in OLD_TO_NEW.items()}}


def _to_old(stored: dict[str, Any], model: str, actor: str) -> dict[str, Any] | None:
    if "requiredChecks" not in stored:
        return None
    model_id = (
        op.get_bind()
        .execute(sa.text("SELECT id FROM registered_model WHERE name = :name"), {"name": model})
        .scalar()
    )
    return {
        "model_id": model_id,
        "stage": stored["stage"],
        **{old: stored.get(new) for old, new in OLD_TO_NEW.items()},
        "actor": actor,
    }


def upgrade() -> None:
    _rewrite(_to_new)


def downgrade() -> None:
    _rewrite(_to_old)
