"""Dataset inputs: which data (by name and digest) a run used, and what for. A dataset
is stored once per experiment; a run links to it once, with the input's tags."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import core_table, upsert_insert
from app.db.types import utcnow
from app.errors import check_count, check_length
from app.events.models import EventType
from app.events.service import record_event
from app.tracking.models import (
    DATASET_DIGEST_LIMIT,
    DATASET_NAME_LIMIT,
    DATASET_PROFILE_LIMIT,
    DATASET_SCHEMA_LIMIT,
    DATASET_SOURCE_LIMIT,
    DATASET_SOURCE_TYPE_LIMIT,
    INPUT_CONTEXT_TAG,
    INPUT_TAG_KEY_LIMIT,
    INPUT_TAG_VALUE_LIMIT,
    Dataset,
    Run,
    RunInput,
)
from app.tracking.service import require_active_run

INPUTS_PER_CALL_LIMIT = 1000
INPUT_TAGS_LIMIT = 100


@dataclass(frozen=True)
class DatasetInput:
    """One dataset a run used: the dataset's identity and description, and the input's
    tags (INPUT_CONTEXT_TAG says what for: training, evaluation, ...)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _check_input(i: int, d: DatasetInput) -> None:
    at = f"datasets[{i}]"
    check_length(f"{at}.name", d.name, DATASET_NAME_LIMIT, required=True)
    check_length(f"{at}.digest", d.digest, DATASET_DIGEST_LIMIT, required=True)
    check_length(f"{at}.sourceType", d.source_type, DATASET_SOURCE_TYPE_LIMIT, required=True)
    check_length(f"{at}.source", d.source, DATASET_SOURCE_LIMIT, required=True)
    check_length(f"{at}.schema", d.schema, DATASET_SCHEMA_LIMIT)
    check_length(f"{at}.profile", d.profile, DATASET_PROFILE_LIMIT)
    check_count(f"{at}.tags", len(d.tags), INPUT_TAGS_LIMIT)
    for key, value in d.tags.items():
        check_length(f"{at}.tags.key", key, INPUT_TAG_KEY_LIMIT, required=True)
        check_length(f"{at}.tags[{key}].value", value, INPUT_TAG_VALUE_LIMIT)


async def log_inputs(
    session: AsyncSession, *, run_id: str, inputs: Sequence[DatasetInput], actor: str
) -> Run:
    """Link the run to these datasets (stored in its experiment if new). An input the run
    already has is left as it is, so a retry changes nothing."""
    check_count("datasets", len(inputs), INPUTS_PER_CALL_LIMIT)
    for i, d in enumerate(inputs):
        _check_input(i, d)
    run = await require_active_run(session, run_id=run_id)
    if not inputs:
        return run
    identities = sorted({(d.name, d.digest) for d in inputs})
    now = utcnow()
    by_identity = {(d.name, d.digest): d for d in inputs}
    await session.execute(
        upsert_insert(session, core_table(Dataset)).on_conflict_do_nothing(
            index_elements=["experiment_id", "name", "digest"]
        ),
        [
            {
                "experiment_id": run.experiment_id,
                "name": name,
                "digest": digest,
                "source_type": by_identity[(name, digest)].source_type,
                "source": by_identity[(name, digest)].source,
                "schema": by_identity[(name, digest)].schema,
                "profile": by_identity[(name, digest)].profile,
                "created_at": now,
            }
            for name, digest in identities
        ],
    )
    ids = {
        (name, digest): dataset_id
        for dataset_id, name, digest in (
            await session.execute(
                select(col(Dataset.id), col(Dataset.name), col(Dataset.digest)).where(
                    col(Dataset.experiment_id) == run.experiment_id,
                    tuple_(col(Dataset.name), col(Dataset.digest)).in_(identities),
                )
            )
        ).all()
    }
    rows: dict[Any, dict[str, Any]] = {}
    for d in inputs:
        dataset_id = ids[(d.name, d.digest)]
        # The first mention of a dataset in one call wins, as a stored input does.
        rows.setdefault(
            dataset_id,
            {
                "run_id": run_id,
                "dataset_id": dataset_id,
                "context": d.tags.get(INPUT_CONTEXT_TAG),
                "tags": dict(d.tags),
                "created_at": now,
            },
        )
    linked = (
        await session.execute(
            upsert_insert(session, core_table(RunInput))
            .on_conflict_do_nothing(index_elements=["run_id", "dataset_id"])
            .returning(col(RunInput.dataset_id)),
            [rows[k] for k in sorted(rows)],
        )
    ).scalars()
    new_ids = set(linked)
    if new_ids:
        names = {v: k for k, v in ids.items()}
        await record_event(
            session,
            type=EventType.INPUTS_LOGGED,
            actor=actor,
            payload={
                "runId": run_id,
                "datasets": [
                    {
                        "name": names[i][0],
                        "digest": names[i][1],
                        "context": rows[i]["context"],
                    }
                    for i in sorted(new_ids)
                ],
            },
        )
    return run


@dataclass(frozen=True)
class RunDataset:
    """A run's input: the dataset and the input's tags."""

    dataset: Dataset
    context: str | None
    tags: dict[str, str]


async def inputs_by_runs(
    session: AsyncSession, *, run_ids: Sequence[str]
) -> dict[str, list[RunDataset]]:
    """Each run's dataset inputs, in the order they were logged, then by dataset name."""
    stmt = (
        select(RunInput, Dataset)
        .join(Dataset, col(Dataset.id) == col(RunInput.dataset_id))
        .where(col(RunInput.run_id).in_(run_ids))
        .order_by(col(RunInput.run_id), col(RunInput.created_at), col(Dataset.name))
    )
    out: dict[str, list[RunDataset]] = {}
    for run_input, dataset in (await session.execute(stmt)).all():
        out.setdefault(run_input.run_id, []).append(
            RunDataset(dataset=dataset, context=run_input.context, tags=dict(run_input.tags or {}))
        )
    return out
