"""A real MLflow 3.17.2 server for the import tests: the FULL mlflow (server, SQL store,
artifact proxy) in an environment of its own, made once by scripts/mlflow-env under the
cache folder (never next to the app's dependencies), started on 127.0.0.1 with a SQLite
backend in a temporary folder, `--serve-artifacts` and one worker, and filled through the
official client by tests/e2e/mlflow/populate_mlflow.py.

When the environment cannot be made (no package index, no disk), the tests that need it
are skipped with the reason in full, and under CI they fail instead: .ci/run makes the
environment before the suite, so a missing one there is a broken build, not a skip."""

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
POPULATE = Path(__file__).with_name("populate_mlflow.py")
START_TIMEOUT = 180.0


def mlflow_python() -> Path:
    """The MLflow environment's python (made now if missing: minutes, once)."""
    try:
        made = subprocess.run(
            [str(ROOT / "scripts" / "mlflow-env")],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/mlflow-env could not run: {exc}")
    if made.returncode != 0:
        tail = "\n".join(made.stderr.strip().splitlines()[-15:])
        _unavailable(f"scripts/mlflow-env failed (exit {made.returncode}):\n{tail}")
    return Path(made.stdout.strip().splitlines()[-1])


def _unavailable(reason: str) -> None:
    message = f"NO REAL MLFLOW SERVER: the MLflow 3.17.2 environment is unavailable. {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mlflow_env(url: str) -> dict[str, str]:
    """The environment for the official client (in the MLflow python) talking to `url`."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass
class RealMlflow:
    python: Path
    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.folder / "server.log").open("wb") as log:
            self._spawn(log)
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {START_TIMEOUT} s: {self.log()}")

    def _spawn(self, log: Any) -> None:
        # The child keeps its own descriptor of the log; ours is closed by the caller.
        self.proc = subprocess.Popen(
            [
                str(self.python),
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.folder,
            # No background job runner (GenAI evaluation jobs, seven huey consumers):
            # nothing here uses it, and it would cost the 2-core machine a core at start.
            env={**mlflow_env(self.url), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: the server's uvicorn child is stopped with it.
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            # uvicorn's graceful shutdown can wait on open connections: not for long.
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    def client_script(self, script: str | Path, *args: str) -> None:
        """Run a script with the MLflow python, its official client pointed at this server."""
        done = subprocess.run(
            [str(self.python), str(script), *args],
            cwd=self.folder,
            env=mlflow_env(self.url),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{done.stderr[-4000:]}")

    def populate(self) -> dict[str, Any]:
        """Fill the server through the official client; the facts it wrote."""
        facts = self.folder / "facts.json"
        self.client_script(POPULATE, str(facts))
        loaded: dict[str, Any] = json.loads(facts.read_text())
        return loaded
