"""What must hold of a database after anything at all was thrown at it: the engine's own
checks, and the registry's invariants that no refusal, race or crash may break."""

from typing import Any

from sqlalchemy import func, select, text

from app.db import Database
from app.db.tables import metadata
from app.events.models import Event
from app.registry.models import ModelAlias, ModelVersion, StageTransition
from app.tracking.models import LatestMetric, Metric

# Written in the background by a request's authentication, not by the request itself.
BOOKKEEPING = {("api_token", "last_used_at")}


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (bookkeeping columns aside): what a refused request must
    leave exactly as it was."""
    out = {}
    async with db.read() as session:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in BOOKKEEPING]
            stmt = select(*columns).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(row) for row in (await session.execute(stmt)).all()]
    return out


async def last_seq(db: Database) -> int:
    """The newest event's seq (0 before any): where to read a change's events from."""
    async with db.read() as session:
        return (await session.execute(select(func.max(Event.seq)))).scalar() or 0


async def table_counts(db: Database) -> dict[str, int]:
    """Rows per table: what a refused request must leave unchanged, when its rows are too
    many to compare one by one."""
    async with db.read() as session:
        return {
            table.name: (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
            for table in metadata.sorted_tables
        }


async def integrity_problems(db: Database) -> list[str]:
    """Everything wrong with the database; [] when it is sound."""
    problems: list[str] = []
    async with db.read() as session:
        if db.dialect == "sqlite":
            check = (await session.execute(text("PRAGMA integrity_check"))).scalars().all()
            if check != ["ok"]:
                problems.append(f"integrity_check: {check}")
            dangling = (await session.execute(text("PRAGMA foreign_key_check"))).all()
            if dangling:
                problems.append(f"foreign_key_check: {dangling}")

        production = (
            await session.execute(
                select(ModelVersion.model_id, func.count())
                .where(ModelVersion.stage == "PRODUCTION")
                .group_by(ModelVersion.model_id)
                .having(func.count() > 1)
            )
        ).all()
        if production:
            problems.append(f"models with more than one PRODUCTION version: {production}")

        numbering = (
            await session.execute(
                select(ModelVersion.model_id, func.count(), func.max(ModelVersion.version))
                .group_by(ModelVersion.model_id)
                .having(func.count() != func.max(ModelVersion.version))
            )
        ).all()
        if numbering:
            problems.append(f"version numbers with gaps or repeats: {numbering}")

        # A version's stage is where its last recorded move took it.
        last_move = (
            select(StageTransition.version_id, func.max(StageTransition.id).label("id"))
            .group_by(StageTransition.version_id)
            .subquery()
        )
        drift = (
            await session.execute(
                select(ModelVersion.id, ModelVersion.stage, StageTransition.to_stage)
                .join(last_move, last_move.c.version_id == ModelVersion.id)
                .join(StageTransition, StageTransition.id == last_move.c.id)
                .where(StageTransition.to_stage != ModelVersion.stage)
            )
        ).all()
        if drift:
            problems.append(f"versions whose stage is not their last move's: {drift}")

        aliases = (
            await session.execute(
                select(ModelAlias.model_id, ModelAlias.alias)
                .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                .where(ModelVersion.model_id != ModelAlias.model_id)
            )
        ).all()
        if aliases:
            problems.append(f"aliases pointing at another model's version: {aliases}")

        # LatestMetric is the history folded: the same keys, the same min, max and count.
        history = (
            await session.execute(
                select(
                    Metric.run_id,
                    Metric.key,
                    func.min(Metric.value),
                    func.max(Metric.value),
                    func.max(Metric.step),
                ).group_by(Metric.run_id, Metric.key)
            )
        ).all()
        latest = {
            (m.run_id, m.key): m for m in (await session.execute(select(LatestMetric))).scalars()
        }
        folded = {(run, key): (lo, hi, step) for run, key, lo, hi, step in history}
        if set(folded) != set(latest):
            problems.append(
                f"latest metrics without history or history without: {set(folded) ^ set(latest)}"
            )
        for pair, (lo, hi, step) in folded.items():
            row = latest.get(pair)
            if row is not None and (row.min_value, row.max_value, row.step) != (lo, hi, step):
                problems.append(
                    f"latest metric {pair} is {row} but its history says {lo, hi, step}"
                )
    return problems
