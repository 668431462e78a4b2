"""Demo data: experiments with runs and metric histories, models in every stage."""

import math
import random
from collections import Counter

from app.config import Settings
from app.db import Database
from app.registry import reads as registry_reads
from app.registry import service as registry_service
from app.registry.stages import Stage
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


async def _train(db: Database, rng: random.Random, experiment: str, index: int) -> None:
    lr = rng.choice([0.001, 0.003, 0.01, 0.03])
    depth = rng.choice([4, 6, 8, 10])
    quality = rng.random()
    async with db.unit_of_work() as session:
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
                tracking_service.MetricPoint("loss", 1.2 * (1 - progress) + 0.1 + abs(noise), step),
                tracking_service.MetricPoint("auc", 0.5 + 0.45 * quality * progress + noise, step),
                tracking_service.MetricPoint("f1", 0.3 + 0.6 * quality * progress + noise, step),
                tracking_service.MetricPoint(
                    "rmse", 40 - 25 * quality * progress + 10 * noise, step
                ),
                tracking_service.MetricPoint("latency_ms", 20 + depth * 3 + rng.random() * 5, step),
            ]
        await tracking_service.log_metrics(session, actor=ACTOR, run_id=run.id, points=points)
        status = RunStatus.FAILED if rng.random() < 0.05 else RunStatus.FINISHED
        await tracking_service.end_run(session, run_id=run.id, status=status, actor=ACTOR)


async def seed(settings: Settings, *, runs: int = 300, seed_value: int = 7) -> str:
    """Fill the database at settings.database_url; returns a one-line summary."""
    if runs < 4 * len(EXPERIMENTS):
        raise ValueError(f"the demo needs at least {4 * len(EXPERIMENTS)} runs")
    rng = random.Random(seed_value)
    db = Database.from_settings(settings)
    try:
        for i in range(runs):
            experiment = list(EXPERIMENTS)[i % len(EXPERIMENTS)]
            await _train(db, rng, experiment, i)
        stages: Counter[str] = Counter()
        for experiment, (model, metric, goal) in EXPERIMENTS.items():
            async with db.unit_of_work() as session:
                # Three of the weakest runs make older versions (one reaches PRODUCTION, one
                # STAGING); then the best run replaces production: every stage appears.
                worst_first = Direction.ASC if goal == Goal.MAXIMIZE else Direction.DESC
                weakest = await tracking_service.search_runs(
                    session,
                    experiment=experiment,
                    order=RunOrder(metric=metric, direction=worst_first),
                    first=3,
                )
                for run in weakest.items:
                    await registry_service.register_version(
                        session,
                        model=model,
                        run_id=run.id,
                        source=f"runs:/{run.id}/model",
                        actor=ACTOR,
                    )
                first = await registry_service.get_version(session, model=model, version=1)
                for stage in (Stage.STAGING, Stage.PRODUCTION):
                    await registry_service.transition_version(
                        session,
                        model=model,
                        version=first.version,
                        stage=stage,
                        actor=ACTOR,  # type: ignore[union-attr]
                    )
                await registry_service.transition_version(
                    session, model=model, version=2, stage=Stage.STAGING, actor=ACTOR
                )
                result = await registry_service.promote_best_run(
                    session,
                    experiment=experiment,
                    metric=metric,
                    goal=goal,
                    model=model,
                    stage=Stage.PRODUCTION,
                    actor=ACTOR,
                )
                await registry_service.set_alias(
                    session,
                    model=model,
                    alias="champion",
                    version=result.version.version,
                    actor=ACTOR,
                )
                await registry_service.update_model(
                    session,
                    name=model,
                    description=f"Trained in {experiment}, judged by {metric}.",
                    set_tags={"owner": "ml-platform"},
                    actor=ACTOR,
                )
                page = await registry_reads.versions_per_model(
                    session, model_ids=[result.version.model_id], stage=None, first=100, after=None
                )
                stages.update(v.stage for p in page.values() for v in p.items)
    finally:
        await db.dispose()
    return (
        f"seeded {runs} runs in {len(EXPERIMENTS)} experiments and {len(EXPERIMENTS)} models; "
        f"versions by stage: {dict(sorted(stages.items()))}"
    )
