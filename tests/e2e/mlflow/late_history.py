"""History that reaches an MLflow server after a first import (run by the MLflow python,
like populate_mlflow.py): `late_history.py a FACTS.json` then `late_history.py b FACTS.json`.

a: experiment imp-late with a run still RUNNING (3 points), model imp-late version 1.
b: that run logs 2 more points and ends; a second run; version 1 moves to Staging;
   version 2; alias `next` on version 2; a model tag and a tag on version 1."""

import json
import sys
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric


def main() -> None:
    phase, facts_file = sys.argv[1], Path(sys.argv[2])
    client = MlflowClient()
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    if phase == "a":
        experiment_id = client.create_experiment("imp-late")
        run = client.create_run(experiment_id, run_name="still-running")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i) for i in range(3)],
        )
        client.create_registered_model("imp-late")
        client.create_model_version(
            "imp-late", source=f"runs:/{run.info.run_id}", run_id=run.info.run_id
        )
        facts = {"experiment_id": experiment_id, "run_id": run.info.run_id}
    else:
        run_id = facts["run_id"]
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i) for i in (3, 4)],
        )
        client.set_terminated(run_id, status="FINISHED")
        second = client.create_run(facts["experiment_id"], run_name="second")
        client.log_metric(second.info.run_id, "loss", 0.05, step=0)
        client.set_terminated(second.info.run_id)
        time.sleep(0.02)
        client.transition_model_version_stage("imp-late", "1", "Staging")
        client.create_model_version(
            "imp-late", source=f"runs:/{second.info.run_id}", run_id=second.info.run_id
        )
        client.set_registered_model_alias("imp-late", "next", "2")
        client.set_registered_model_tag("imp-late", "added", "later")
        client.set_model_version_tag("imp-late", "1", "checked", "yes")
        facts["second_id"] = second.info.run_id
        facts["end_time"] = client.get_run(run_id).info.end_time
        facts["v1_updated"] = client.get_model_version("imp-late", "1").last_updated_timestamp
    facts_file.write_text(json.dumps(facts))


if __name__ == "__main__":
    main()
