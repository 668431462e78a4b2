"""The MLflow face under the official client: a real modelgraph server on 127.0.0.1 and
MLflow's own client (mlflow-skinny, the version the face follows) pointed at it.

    def test_x(mlflow_server, mlflow_env):
        mlflow.set_experiment("exp")        # the fluent API talks to mlflow_server
        mlflow_server.gql("{ experiments { nodes { name } } }")  # what the graph shows

Everything here is end-to-end (marked e2e by its path, tests/e2e).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before mlflow is imported anywhere: no usage reports leave the machine.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import mlflow
import mlflow.tracking.fluent
from mlflow import MlflowClient

from tests.e2e.conftest import Auth, Server, gql


@dataclass
class MlflowServer:
    server: Server
    token: str

    @property
    def url(self) -> str:
        return self.server.base

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        """A GraphQL request as ADMIN to the same server: its data (a refusal raises)."""
        return gql(self.url, query, token=self.token, **variables)


@pytest.fixture
def mlflow_server(database_url: str, admin_secret: str, tmp_path: Path) -> Iterator[MlflowServer]:
    env = {
        **os.environ,
        "MODELGRAPH_DATABASE_URL": database_url,
        "MODELGRAPH_ARTIFACT_STORE": str(tmp_path / "blobs"),
        "MODELGRAPH_TOKEN": admin_secret,
    }
    Auth.token = admin_secret
    server = Server(env)
    try:
        yield MlflowServer(server, admin_secret)
    finally:
        server.stop()
        Auth.token = None


@pytest.fixture
def mlflow_env(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowServer]:
    """The official client's environment pointed at `mlflow_server` with its ADMIN token.
    Retries are off: a 5xx fails the test at once instead of being retried for minutes
    (and a 5xx for a client's mistake is a bug of ours)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", mlflow_server.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    # set_experiment() records its choice in the environment: forgotten after the test.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.tracking.fluent._active_experiment_id = None
    yield mlflow_server
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)


@pytest.fixture
def mlflow_client(mlflow_env: MlflowServer) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_env.url, registry_uri=mlflow_env.url)
