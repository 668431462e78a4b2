"""`modelgraph serve` in a subprocess on a free 127.0.0.1 port: a server of one's own for a
notebook, a script or a test, started healthy and stopped by its pid."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerStartError(RuntimeError):
    """The server exited, or was not healthy in time; the message ends with its output."""


class LocalServer:
    """`python -m app serve --host 127.0.0.1 --port <free> *args` with `env` (default: this
    process's environment; MODELGRAPH_DATABASE_URL chooses the database). Its output goes
    to `log` (a temporary file when None, removed by stop()).

        with LocalServer(env={..., "MODELGRAPH_DATABASE_URL": url}, args=["--dev"]) as server:
            Client(server.base_url).execute("{ viewer { name } }")
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        *,
        log: Path | None = None,
        python: str = sys.executable,
        cwd: Path | None = None,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.args = list(args)
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.ws_url = f"ws://{HOST}:{self.port}/graphql"
        self.python = python
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self._temporary = log is None
        self.log_path = log or Path(tempfile.mkstemp(prefix="modelgraph-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self._final_output: str | None = None

    def start(self, timeout: float = 60.0) -> Self:
        """Start the server and wait until /healthz answers 200."""
        command = ["serve", "--host", HOST, "--port", str(self.port), *self.args]
        # The child keeps its own copy of the descriptor: ours is closed at once.
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                [self.python, "-m", "app", *command],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self.preexec_fn,
            )
        finally:
            os.close(log)
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < started + timeout:
                if self.proc.poll() is not None:
                    self._fail(f"the server exited with {self.proc.returncode} while starting")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        self.startup_s = time.monotonic() - started
                        return self
                time.sleep(0.1)
        output = self._end(signal.SIGKILL, 30.0)
        raise ServerStartError(f"the server was not healthy after {timeout:.0f}s:\n{output}")

    def _fail(self, reason: str) -> None:
        raise ServerStartError(f"{reason}:\n{self._end(signal.SIGKILL, 30.0)}")

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the server printed so far."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> str:
        """Stop the server (SIGTERM, as an orchestrator would: uvicorn shuts down cleanly;
        killed when it does not within `timeout`); its output."""
        return self._end(sig, timeout)

    def kill(self) -> str:
        """SIGKILL, as a crash or the OOM killer would: no shutdown runs. Its output."""
        return self._end(signal.SIGKILL, 30.0)

    def _end(self, sig: signal.Signals, timeout: float) -> str:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._final_output = self.output()
        self._remove_log()
        return self._final_output

    def _remove_log(self) -> None:
        if self._temporary:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
