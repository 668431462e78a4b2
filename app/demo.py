"""Demo data: experiments with runs and metric histories, models in every stage."""

import math
import random
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.errors import AlreadyExistsError
from app.registry import catalog, lifecycle
from app.registry import reads as registry_reads
from app.registry.stages import Stage
from app.tracking import metrics as tracking_metrics
from app.tracking import reads as tracking_reads
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus
from app.tracking.search import Direction, Goal, RunOrder

ACTOR = "demo"
EXPERIMENTS = {
    # experiment: (model, metric it is judged by, goal)
    "fraud-detection": ("fraud-detector", "auc", Goal.MAXIMIZE),
    "churn-prediction": ("churn-model", "f1", Goal.MAXIMIZE),
    "demand-forecast": ("demand-forecaster", "rmse", Goal.MINIMIZE),
}
# Tags the demo's experiments carry, so a second run can tell its own data from a user's.
MARKER = {"seeded-by": "modelgraph demo"}


async def _train(session: AsyncSession, rng: random.Random, experiment: str, index: int) -> None:
    lr = rng.choice([0.001, 0.003, 0.01, 0.03])
    depth = rng.choice([4, 6, 8, 10])
    quality = rng.random()
    run = await tracking_service.start_run(
        session,
        experiment=experiment,
        name=f"{experiment}-{index:03d}",
        params={"learning_rate": str(lr), "max_depth": str(depth), "optimizer": "adam"},
        tags={
            "team": rng.choice(["risk", "growth", "ops"]),
            "git_sha": f"{rng.getrandbits(28):07x}",
        },
        actor=ACTOR,
    )
    points = []
    for step in range(50):
        progress = 1 - math.exp(-step / 12)
        noise = rng.gauss(0, 0.01)
        points += [
            tracking_metrics.MetricPoint("loss", 1.2 * (1 - progress) + 0.1 + abs(noise), step),
            tracking_metrics.MetricPoint("auc", 0.5 + 0.45 * quality * progress + noise, step),
            tracking_metrics.MetricPoint("f1", 0.3 + 0.6 * quality * progress + noise, step),
            tracking_metrics.MetricPoint("rmse", 40 - 25 * quality * progress + 10 * noise, step),
            tracking_metrics.MetricPoint("latency_ms", 20 + depth * 3 + rng.random() * 5, step),
        ]
    await tracking_metrics.log_metrics(session, actor=ACTOR, run_id=run.id, points=points)
    status = RunStatus.FAILED if rng.random() < 0.05 else RunStatus.FINISHED
    await tracking_service.end_run(session, run_id=run.id, status=status, actor=ACTOR)


async def _register(
    session: AsyncSession, *, experiment: str, model: str, metric: str, goal: Goal
) -> Counter[str]:
    """Versions of `model` in every stage; how many are in each."""
    # Three of the weakest runs make older versions (one reaches PRODUCTION, one
    # STAGING); then the best run replaces production: every stage appears.
    worst_first = Direction.ASC if goal == Goal.MAXIMIZE else Direction.DESC
    weakest = await tracking_reads.search_runs(
        session,
        experiment=experiment,
        order=RunOrder(metric=metric, direction=worst_first),
        first=3,
    )
    for run in weakest.items:
        # No source: a `runs:/` source would have to name files the demo runs never logged.
        await catalog.register_version(session, model=model, run_id=run.id, actor=ACTOR)
    for stage in (Stage.STAGING, Stage.PRODUCTION):
        await lifecycle.transition_version(
            session, model=model, version=1, stage=stage, actor=ACTOR
        )
    await lifecycle.transition_version(
        session, model=model, version=2, stage=Stage.STAGING, actor=ACTOR
    )
    result = await lifecycle.promote_best_run(
        session,
        experiment=experiment,
        metric=metric,
        goal=goal,
        model=model,
        stage=Stage.PRODUCTION,
        actor=ACTOR,
    )
    await catalog.set_alias(
        session, model=model, alias="champion", version=result.version.version, actor=ACTOR
    )
    await catalog.update_model(
        session,
        name=model,
        description=f"Trained in {experiment}, judged by {metric}.",
        set_tags={"owner": "ml-platform"},
        actor=ACTOR,
    )
    page = await registry_reads.versions_per_model(
        session, model_ids=[result.version.model_id], stage=None, first=100, after=None
    )
    return Counter(v.stage for p in page.values() for v in p.items)


async def _already_seeded(session: AsyncSession) -> bool:
    """True when the demo's data is here; AlreadyExistsError when a name it would use is
    someone else's (mixing the two would muddle both)."""
    experiments = [
        await tracking_service.get_experiment(session, name=name) for name in EXPERIMENTS
    ]
    if all(e is not None and MARKER.items() <= e.tags.items() for e in experiments):
        return True
    for name, found in zip(EXPERIMENTS, experiments, strict=True):
        if found is not None:
            raise AlreadyExistsError("experiment", "name", name)
    for model, _metric, _goal in EXPERIMENTS.values():
        if await catalog.get_model(session, name=model) is not None:
            raise AlreadyExistsError("model", "name", model)
    return False


async def seed(settings: Settings, *, runs: int = 300, seed_value: int = 7) -> str:
    """Fill the database at settings.database_url in one transaction, unless the demo's
    data is already there; AlreadyExistsError if its names are taken by other data."""
    if runs < 4 * len(EXPERIMENTS):
        raise ValueError(f"the demo needs at least {4 * len(EXPERIMENTS)} runs")
    rng = random.Random(seed_value)
    db = Database.from_settings(settings)
    stages: Counter[str] = Counter()
    try:
        # One unit of work: a failure anywhere leaves no run, model or event behind, and
        # a concurrent second demo finds the names taken instead of half the data.
        async with db.unit_of_work() as session:
            if await _already_seeded(session):
                return "the demo data is already in this database; nothing was written"
            for experiment in EXPERIMENTS:
                await tracking_service.create_experiment(
                    session, name=experiment, tags=MARKER, actor=ACTOR
                )
            for i in range(runs):
                await _train(session, rng, list(EXPERIMENTS)[i % len(EXPERIMENTS)], i)
            for experiment, (model, metric, goal) in EXPERIMENTS.items():
                stages += await _register(
                    session, experiment=experiment, model=model, metric=metric, goal=goal
                )
    finally:
        await db.dispose()
    return (
        f"seeded {runs} runs in {len(EXPERIMENTS)} experiments and {len(EXPERIMENTS)} models; "
        f"versions by stage: {dict(sorted(stages.items()))}"
    )
