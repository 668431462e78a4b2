"""`modelgraph import-mlflow` against a real MLflow 3.17.2 server (tests/e2e/mlflow/real_server.py)
filled by the official client: the full copy and what GraphQL shows of it, the filters,
a second import that changes nothing, history that reached MLflow after the first import,
and the command itself (progress, summary, exit codes)."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from app.artifacts.model_files import list_model_artifacts
from app.cli.import_mlflow import import_mlflow
from app.config import Settings
from app.db import Database
from app.db.tables import metadata
from app.events.models import Event
from app.registry.models import ModelVersion, RegisteredModel
from app.tracking.logged_model_models import LoggedModel
from app.tracking.models import Dataset, Experiment, Run, RunInput
from tests.conftest import GraphQLClient
from tests.e2e.mlflow.real_server import ROOT, RealMlflow, free_port, mlflow_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LATE = Path(__file__).with_name("late_history.py")
STAGES = {"None": "DEVELOPMENT", "Staging": "STAGING", "Production": "PRODUCTION"}
STAGES["Archived"] = "ARCHIVED"


@dataclass
class Source:
    server: RealMlflow
    facts: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """One MLflow server for the session, filled once (its state only grows: the test of
    late history adds an experiment and a model of its own)."""
    server = RealMlflow(mlflow_python(), tmp_path_factory.mktemp("mlflow-source"))
    server.start()
    try:
        yield Source(server, server.populate())
    finally:
        server.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, artifact_store=str(tmp_path / "blobs"))


def ms(value: str) -> int:
    return round(datetime.fromisoformat(value).timestamp() * 1000)


RUN = """
query($id: ID!) {
  run(id: $id) {
    name status startTime endTime experiment { name }
    params { key value } tags { key value }
    acc: metricHistory(key: "acc") { nodes { step timestamp value } }
    loss: metricHistory(key: "loss") { nodes { step timestamp value } }
    root: artifacts { path isDir digest }
    meta: artifacts(path: "meta") { path digest }
    weights: artifacts(path: "model-files") { path digest }
  }
}
"""

MODEL = """
query($name: String!) {
  model(name: $name) {
    description tags { key value }
    aliases { alias version { version } }
    versions { nodes {
      version stage createdAt source loggedModelId digest run { id }
      tags { key value }
      files { path digest }
      transitions { fromStage toStage at actor reason policy { requiredChecks } }
    } }
  }
}
"""


def history(nodes: list[dict[str, Any]]) -> list[list[Any]]:
    return [[p["step"], p["timestamp"], p["value"]] for p in nodes]


async def test_full_copy_as_graphql_shows_it(
    source: Source, settings: Settings, gql: GraphQLClient, db: Database
) -> None:
    summary = await import_mlflow(settings, source.url)
    assert summary.failed == []
    facts = source.facts

    train = facts["runs"]["train-1"]
    run = (await gql(RUN, id=train["id"]))["run"]
    assert run["name"] == "train-1"
    assert run["experiment"]["name"] == "imp-alpha"
    assert run["status"] == "FINISHED"
    assert ms(run["startTime"]) == train["start_time"]
    assert ms(run["endTime"]) == train["end_time"]
    assert {p["key"]: p["value"] for p in run["params"]} == train["params"]
    assert {t["key"]: t["value"] for t in run["tags"]} == train["tags"]
    # Every point of every history, repeated steps included, as MLflow holds them.
    assert history(run["acc"]["nodes"]) == train["metrics"]["acc"]
    assert sorted(history(run["loss"]["nodes"])) == sorted(train["metrics"]["loss"])
    # The files, byte for byte: digests are the SHA-256 of the bytes MLflow serves.
    files = {e["path"]: e["digest"] for e in run["meta"] + run["weights"] + run["root"]}
    for path, digest in train["files"].items():
        assert files[path] == digest

    failed = (await gql(RUN, id=facts["runs"]["broken"]["id"]))["run"]
    assert failed["status"] == "FAILED"
    assert ms(failed["endTime"]) == facts["runs"]["broken"]["end_time"]

    clf = (await gql(MODEL, name="imp-clf"))["model"]
    source_model = facts["models"]["imp-clf"]
    assert clf["description"] == "classifies pets"
    assert {t["key"]: t["value"] for t in clf["tags"]} == source_model["tags"]
    assert {a["alias"]: str(a["version"]["version"]) for a in clf["aliases"]} == {
        "champion": "2",
        "challenger": "3",
    }
    versions = {str(v["version"]): v for v in clf["versions"]["nodes"]}
    assert set(versions) == {"1", "2", "3"}
    for number, expected in source_model["versions"].items():
        got = versions[number]
        assert got["stage"] == STAGES[expected["stage"]]
        assert ms(got["createdAt"]) == expected["created"]
        assert got["source"] == expected["source"]
        assert {t["key"]: t["value"] for t in got["tags"]} == expected["tags"]
        assert got["run"]["id"] == expected["run_id"]
    # The stage history at MLflow's own times, walked along the allowed moves, with no
    # policy applied (imported moves are history, not decisions).
    # (GraphQL lists a version's transitions newest first.)
    moves = {
        n: [(t["fromStage"], t["toStage"]) for t in reversed(v["transitions"])]
        for n, v in versions.items()
    }
    assert moves == {
        "1": [("DEVELOPMENT", "ARCHIVED")],
        "2": [("DEVELOPMENT", "STAGING"), ("STAGING", "PRODUCTION")],
        "3": [],
    }
    for number in ("1", "2"):
        for t in versions[number]["transitions"]:
            assert ms(t["at"]) == source_model["versions"][number]["updated"]
            assert t["policy"] is None
            assert t["actor"].endswith("import-mlflow")
    # Version 2 owns the logged model's files, with MLflow's bytes.
    v2_files = {f["path"]: f["digest"] for f in versions["2"]["files"]}
    assert v2_files == facts["logged_model_2_files"]
    assert versions["2"]["loggedModelId"] == facts["logged_model_id_2"]
    # Version 3 (runs:/<run>/model-files) owns that folder's files.
    assert {f["path"]: f["digest"] for f in versions["3"]["files"]} == {
        "weights.bin": train["files"]["model-files/weights.bin"]
    }

    lineage = """
    query($child: ID!, $train: ID!, $gone: ID!) {
      child: run(id: $child) { parent { id } userId deleted }
      train: run(id: $train) {
        children { id } inputs { context dataset { name digest } }
        modelVersions { version }
      }
      gone: run(id: $gone) { deleted }
    }
    """
    seen = await gql(
        lineage,
        child=facts["runs"]["train-1-fold-0"]["id"],
        train=train["id"],
        gone=facts["runs"]["discarded"]["id"],
    )
    user = facts["runs"]["train-1-fold-0"]["tags"]["mlflow.user"]
    assert seen["child"] == {"parent": {"id": train["id"]}, "userId": user, "deleted": False}
    assert seen["train"]["children"] == [{"id": facts["runs"]["train-1-fold-0"]["id"]}]
    assert seen["train"]["inputs"] == [
        {
            "context": "training",
            "dataset": {"name": "digits-train", "digest": facts["dataset_digest"]},
        }
    ]
    assert sorted(v["version"] for v in seen["train"]["modelVersions"]) == [1, 3]
    assert seen["gone"] == {"deleted": True}

    async with db.read() as session:
        child = await session.get_one(Run, facts["runs"]["train-1-fold-0"]["id"])
        assert child.parent_run_id == train["id"]
        used = (
            await session.execute(
                select(col(Dataset.name), col(RunInput.context))
                .join(RunInput, col(RunInput.dataset_id) == col(Dataset.id))
                .where(col(RunInput.run_id) == train["id"])
            )
        ).all()
        assert [tuple(u) for u in used] == [("digits-train", "training")]
        # The MLflow 3 logged model under its own id, READY, with MLflow's bytes.
        logged = await session.get_one(LoggedModel, facts["logged_model_id_2"])
        assert logged.status == "READY"
        assert logged.source_run_id == facts["runs"]["train-2"]["id"]
        logged_files = await list_model_artifacts(session, model_id=logged.id)
        assert {f.path: f.digest for f in logged_files} == facts["logged_model_2_files"]
        discarded = await session.get_one(Run, facts["runs"]["discarded"]["id"])
        assert discarded.deleted_at is not None
        gone = (
            await session.execute(select(Experiment).where(col(Experiment.name) == "imp-gone"))
        ).scalar_one()
        assert gone.deleted_at is not None
        # Every change wrote its event, in the name of the import.
        stage_events = (
            await session.execute(select(func.count()).where(col(Event.type) == "STAGE_CHANGED"))
        ).scalar_one()
        assert stage_events == 3
        actors = set(
            (
                await session.execute(
                    select(col(Event.actor)).where(col(Event.type) != "TOKEN_CREATED").distinct()
                )
            ).scalars()
        )
        assert all(a.endswith("import-mlflow") for a in actors)


async def _snapshot(db: Database) -> dict[str, list[str]]:
    """Every row of every table, as text, in a stable order."""
    tables: dict[str, list[str]] = {}
    async with db.read() as session:
        for table in metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            tables[table.name] = sorted(repr(tuple(r)) for r in rows)
    return tables


async def test_a_second_import_changes_nothing(
    source: Source, settings: Settings, db: Database
) -> None:
    first = await import_mlflow(settings, source.url)
    assert first.failed == []
    before = await _snapshot(db)
    again = await import_mlflow(settings, source.url)
    assert again.failed == []
    assert sum(again.copied.values()) == 0, again.copied
    # (Histories whose latest point is already here are not even read again.)
    assert again.present["points"] == 0
    for kind in ("experiments", "runs", "files", "models", "versions", "aliases", "loggedModels"):
        assert again.present[kind] == first.copied[kind] + first.present[kind], kind
    assert await _snapshot(db) == before


async def test_filters_copy_only_what_is_named(
    source: Source, settings: Settings, db: Database
) -> None:
    summary = await import_mlflow(
        settings, source.url, experiments=["imp-beta", "no-such"], models=["imp-other"]
    )
    assert [(f["kind"], f["name"]) for f in summary.failed] == [("experiment", "no-such")]
    async with db.read() as session:
        names = set((await session.execute(select(col(Experiment.name)))).scalars())
        assert names == {"Default", "imp-beta"}
        runs = list((await session.execute(select(col(Run.id)))).scalars())
        assert runs == [source.facts["runs"]["beta-run"]["id"]]
        models = set((await session.execute(select(col(RegisteredModel.name)))).scalars())
        assert models == {"imp-other"}
        version = (await session.execute(select(ModelVersion))).scalar_one()
        # Its run was copied too, so the version links to it.
        assert version.run_id == runs[0]


async def test_history_added_in_mlflow_later_is_copied_on_the_next_import(
    source: Source, settings: Settings, db: Database, tmp_path: Path
) -> None:
    facts = tmp_path / "late.json"
    source.server.client_script(LATE, "a", str(facts))
    first = await import_mlflow(settings, source.url, experiments=["imp-late"], models=["imp-late"])
    assert first.failed == []
    assert first.copied["runs"] == 1
    assert first.copied["points"] == 3
    late = json.loads(facts.read_text())
    async with db.read() as session:
        running = await session.get_one(Run, late["run_id"])
        assert running.status == "RUNNING"

    source.server.client_script(LATE, "b", str(facts))
    late = json.loads(facts.read_text())
    second = await import_mlflow(
        settings, source.url, experiments=["imp-late"], models=["imp-late"]
    )
    assert second.failed == []
    assert second.copied["runs"] == 1  # the new run
    assert second.present["runs"] == 1
    assert second.copied["points"] == 2 + 1  # the running run's new points, the new run's one
    assert second.present["points"] == 3
    assert second.copied["versions"] == 1
    assert second.copied["transitions"] == 1
    assert second.copied["aliases"] == 1
    async with db.read() as session:
        ended = await session.get_one(Run, late["run_id"])
        assert ended.status == "FINISHED"
        assert ended.end_time is not None
        assert round(ended.end_time.timestamp() * 1000) == late["end_time"]
        count = await session.execute(
            text("SELECT count(*) FROM metric WHERE run_id = :r"), {"r": late["run_id"]}
        )
        assert count.scalar_one() == 5
        stages = dict(
            (
                await session.execute(
                    select(col(ModelVersion.version), col(ModelVersion.stage))
                    .join(RegisteredModel, col(RegisteredModel.id) == col(ModelVersion.model_id))
                    .where(col(RegisteredModel.name) == "imp-late")
                )
            ).all()
        )
        assert stages == {1: "STAGING", 2: "DEVELOPMENT"}
        model = (
            await session.execute(
                select(RegisteredModel).where(col(RegisteredModel.name) == "imp-late")
            )
        ).scalar_one()
        assert model.tags == {"added": "later"}
        first_version = (
            await session.execute(
                select(ModelVersion).where(
                    col(ModelVersion.model_id) == model.id, col(ModelVersion.version) == 1
                )
            )
        ).scalar_one()
        assert first_version.tags == {"checked": "yes"}


def _cli(*args: str, database_url: str, blobs: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MODELGRAPH_DATABASE_URL": database_url,
        "MODELGRAPH_ARTIFACT_STORE": str(blobs),
    }
    return subprocess.run(
        [sys.executable, "-m", "app", "import-mlflow", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_shows_progress_and_a_summary(
    source: Source, database_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    args = ["--from", source.url, "--experiment", "imp-beta", "--model", "imp-other"]
    done = _cli(*args, "--json", database_url=database_url, blobs=blobs)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["copied"]["runs"] == 1
    assert summary["copied"]["versions"] == 1
    assert summary["failed"] == []
    # Not a terminal: plain progress lines with the counts, no carriage returns.
    assert "\r" not in done.stderr
    assert "experiment 1/1 imp-beta: " in done.stderr
    assert "model 1/1 imp-other: " in done.stderr
    assert "done: experiments 1  runs 1" in done.stderr

    again = _cli(*args, database_url=database_url, blobs=blobs)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == f"imported from {source.url}"
    runs = next(line for line in lines if line.startswith("runs "))
    assert runs.split() == ["runs", "0", "1"]
    assert lines[-1] == "ok"


def test_an_unreachable_source_is_a_connection_error(database_url: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = _cli("--from", url, database_url=database_url, blobs=tmp_path / "blobs")
    assert done.returncode == 6
    assert f"cannot reach {url}" in done.stderr
    assert "Traceback" not in done.stderr
