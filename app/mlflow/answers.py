"""MLflow's tracking answers: experiments and runs in proto-JSON, the shapes MLflow's
client parses. Any face module that answers with an experiment or a run imports these."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.types import stored
from app.mlflow.uris import run_artifact_uri
from app.mlflow.wire import double, millis
from app.tracking import datasets as tracking_datasets
from app.tracking import logged_models as logged_model_service
from app.tracking import reads as tracking_reads
from app.tracking.models import PARENT_RUN_TAG, Experiment, Run

RUN_NAME_TAG = "mlflow.runName"


def _key_values(items: Sequence[tuple[str, str]] | dict[str, str]) -> list[dict[str, str]]:
    pairs = items.items() if isinstance(items, dict) else items
    return [{"key": k, "value": v} for k, v in pairs]


def experiment_json(e: Experiment) -> dict[str, Any]:
    experiment_id = stored(e.id)
    return {
        "experiment_id": str(experiment_id),
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "deleted" if e.deleted else "active",
        "last_update_time": millis(e.last_update_time),
        "creation_time": millis(e.created_at),
        "tags": _key_values(sorted((e.tags or {}).items())),
    }


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "experiment_id": str(run.experiment_id),
        "run_name": run.name or "",
        "user_id": run.user_id or "",
        "status": run.status.value,
        "start_time": millis(run.start_time),
        "artifact_uri": run_artifact_uri(run.experiment_id, run.id),
        "lifecycle_stage": "deleted" if run.deleted else "active",
    }
    if run.end_time is not None:
        info["end_time"] = millis(run.end_time)
    return info


async def runs_json(session: AsyncSession, runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Whole runs (info, data, inputs, outputs) in a few statements for the lot."""
    ids = [r.id for r in runs]
    params = await tracking_reads.params_by_runs(session, run_ids=ids)
    tags = await tracking_reads.tags_by_runs(session, run_ids=ids)
    latest = await tracking_reads.latest_metrics_by_runs(session, run_ids=ids)
    inputs = await tracking_datasets.inputs_by_runs(session, run_ids=ids)
    outputs = await logged_model_service.outputs_by_runs(session, run_ids=ids)
    out = []
    for run in runs:
        run_tags = dict(tags.get(run.id, []))
        # The tags MLflow keeps beside its columns answer from the columns.
        if run.name:
            run_tags[RUN_NAME_TAG] = run.name
        if run.parent_run_id:
            run_tags[PARENT_RUN_TAG] = run.parent_run_id
        out.append(
            {
                "info": run_info_json(run),
                "data": {
                    "metrics": [
                        {
                            "key": m.key,
                            "value": double(m.last_value),
                            "timestamp": m.timestamp,
                            "step": m.step,
                        }
                        for m in latest.get(run.id, [])
                    ],
                    "params": _key_values(params.get(run.id, [])),
                    "tags": _key_values(sorted(run_tags.items())),
                },
                "inputs": {
                    "dataset_inputs": [
                        {
                            "tags": _key_values(sorted(i.tags.items())),
                            "dataset": _dataset_json(i.dataset),
                        }
                        for i in inputs.get(run.id, [])
                    ]
                },
                "outputs": {
                    "model_outputs": [
                        {"model_id": model_id, "step": step}
                        for model_id, step in outputs.get(run.id, [])
                    ]
                },
            }
        )
    return out


def _dataset_json(d: Any) -> dict[str, Any]:
    found = {
        "name": d.name,
        "digest": d.digest,
        "source_type": d.source_type,
        "source": d.source,
        "schema": d.schema_,
        "profile": d.profile,
    }
    return {k: v for k, v in found.items() if v is not None}
