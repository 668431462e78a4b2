"""Metric ingestion, the hot path: Core statements in bulk, the history and the latest
value per key written in one transaction."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, case, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.dialect import core_table, upsert_insert
from app.errors import (
    ValidationError,
    check_count,
    check_key,
)
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.models import (
    KEY_LIMIT,
    METRIC_BATCH_LIMIT,
    LatestMetric,
    Metric,
    Run,
)
from app.tracking.service import require_active_run

# A key in a unit of work's session.info, read after commit by the live metric feed.
LOGGED_METRICS = "modelgraph.logged_metrics"


@dataclass(frozen=True)
class MetricSeries:
    """Many points of one key, as columns: the compact form of a batch."""

    key: str
    values: Sequence[float]
    # None means 0, 1, 2, … for steps and now for timestamps.
    steps: Sequence[int] | None = None
    timestamps: Sequence[int] | None = None


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int = 0
    # Milliseconds since the epoch, as MLflow sends them; None means now.
    timestamp: int | None = None


async def _without_repeats(session: AsyncSession, run_id: str, rows: list[dict]) -> list[dict]:
    """`rows` less those the run's history holds already, and less repeats among them."""
    table = core_table(Metric)
    found = await session.execute(
        select(table.c.key, table.c.step, table.c.timestamp, table.c.value, table.c.is_nan).where(
            table.c.run_id == run_id,
            table.c.key.in_({r["key"] for r in rows}),
            table.c.step.in_({r["step"] for r in rows}),
        )
    )
    seen = {tuple(row) for row in found}
    kept = []
    for r in rows:
        point = (r["key"], r["step"], r["timestamp"], r["value"], r["is_nan"])
        if point not in seen:
            seen.add(point)
            kept.append(r)
    return kept


_ORDER = itemgetter("step", "timestamp")


def _summarize(rows: list[dict]) -> list[dict]:
    """Per key: the last point (highest step, then timestamp; the later one in the batch
    among equals), and min and max of non-NaN values. Grouped first, then reduced by the
    built-ins: a 1,000-point batch is a handful of C loops, not a comparison per point."""
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        group = by_key.get(row["key"])
        if group is None:
            by_key[row["key"]] = [row]
        else:
            group.append(row)
    summary = []
    for group in by_key.values():
        # max() keeps the first of equals: over the reversed group, the batch's later one.
        last = max(reversed(group), key=_ORDER)
        values = [v for v in map(itemgetter("value"), group) if v is not None]
        summary.append(
            {
                **last,
                "min_value": min(values) if values else None,
                "max_value": max(values) if values else None,
            }
        )
    return summary


def _keep_extreme(
    current: ColumnElement[Any], incoming: ColumnElement[Any], *, smaller: bool
) -> ColumnElement[Any]:
    better = incoming < current if smaller else incoming > current
    return case(
        (current.is_(None), incoming),
        (incoming.is_(None), current),
        (better, incoming),
        else_=current,
    )


async def log_metrics(
    session: AsyncSession,
    *,
    run_id: str,
    points: Sequence[MetricPoint] = (),
    series: Sequence[MetricSeries] = (),
    actor: str,
    max_points: int = METRIC_BATCH_LIMIT,
    skip_repeats: bool = False,
) -> Run:
    """Append a batch (points, and/or whole series per key) to the history and fold it
    into LatestMetric, in bulk.

    With skip_repeats, a point equal to one the run's history already holds (key, step,
    timestamp and value) is not appended again: MLflow's client re-sends a run's metrics
    at a logged model's step to link them to the model, and its store keeps one copy. It
    costs a read, so the hot path (new points) does without."""
    total = len(points) + sum(len(s.values) for s in series)
    check_count("points", total, max_points)
    run = await require_active_run(session, run_id=run_id)
    now_ms = int(time.time() * 1000)
    rows = []
    # Keys repeat across a batch: each distinct one is checked once.
    checked: set[str] = set()
    for i, p in enumerate(points):
        if p.key not in checked:
            check_key(f"points[{i}].key", p.key, KEY_LIMIT)
            checked.add(p.key)
        nan = p.value != p.value
        rows.append(
            {
                "run_id": run_id,
                "key": p.key,
                "value": None if nan else p.value,
                "is_nan": nan,
                "step": p.step,
                "timestamp": now_ms if p.timestamp is None else p.timestamp,
            }
        )
    for i, s in enumerate(series):
        check_key(f"series[{i}].key", s.key, KEY_LIMIT)
        n = len(s.values)
        steps = s.steps if s.steps is not None else range(n)
        stamps = s.timestamps if s.timestamps is not None else [now_ms] * n
        for name, column in (("steps", steps), ("timestamps", stamps)):
            if len(column) != n:
                raise ValidationError(
                    f"series[{i}].{name}", f"has {len(column)} items but values has {n}"
                )
        rows += [
            {
                "run_id": run_id,
                "key": s.key,
                "value": None if v != v else v,
                "is_nan": v != v,
                "step": step,
                "timestamp": ts,
            }
            for v, step, ts in zip(s.values, steps, stamps, strict=True)
        ]
    if skip_repeats and rows:
        rows = await _without_repeats(session, run_id, rows)
    if not rows:
        return run
    # Core executemany: the ORM would add one INSERT ... RETURNING per row.
    await session.execute(insert(core_table(Metric)), rows)
    summary = sorted(_summarize(rows), key=lambda r: r["key"])  # lock order, as in log_params
    for row in summary:
        row["experiment_id"] = run.experiment_id
    table = core_table(LatestMetric)
    stmt = upsert_insert(session, table)
    new = stmt.excluded
    newer = (new.step > table.c.step) | (
        (new.step == table.c.step) & (new.timestamp >= table.c.timestamp)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": case((newer, new.value), else_=table.c.value),
            "is_nan": case((newer, new.is_nan), else_=table.c.is_nan),
            "step": case((newer, new.step), else_=table.c.step),
            "timestamp": case((newer, new.timestamp), else_=table.c.timestamp),
            "min_value": _keep_extreme(table.c.min_value, new.min_value, smaller=True),
            "max_value": _keep_extreme(table.c.max_value, new.max_value, smaller=False),
        },
    )
    await session.execute(stmt, summary)
    # One row per batch, not per point: the audit says who logged how much, when.
    await record_event(
        session,
        type=EventType.METRICS_LOGGED,
        actor=actor,
        payload={"runId": run_id, "points": len(rows), "keys": [r["key"] for r in summary]},
    )
    # For live views once this commits (runMetrics); nothing is sent if it rolls back.
    session.info.setdefault(LOGGED_METRICS, []).append((run_id, rows))
    return run
