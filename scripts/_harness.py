"""What the measurement scripts in scripts/ share beyond app.client (which talks to the
server and starts it): the server with the harness's token and CPU and descriptor counts,
latency statistics, machine facts, the PostgreSQL test-database guard, time bounds.

Imported as `_harness`: a script run as `python scripts/X.py` has scripts/ as sys.path[0];
importing it puts the project root on sys.path, so `import app` works after it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.client import Client, ClientError, LocalServer, success  # noqa: E402 (after the path)
from app.client.server import ServerStartError  # noqa: E402

ErrorType = type[Exception]


def add_root_to_path() -> None:
    """Kept for the scripts that call it: importing this module already did it."""


def logger(name: str) -> Callable[[str], None]:
    """A progress logger for stderr: `[name HH:MM:SS] message`."""

    def log(message: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def stats_ms(seconds: list[float], stats: Iterable[str]) -> dict[str, Any]:
    """{"n", then "<stat>_ms" for each of `stats` in that order}, from durations in seconds.
    A stat is "pNN" (percentile NN), "mean", "min" or "max"; None when there are none."""
    ms = [s * 1000 for s in seconds]
    out: dict[str, Any] = {"n": len(ms)}
    for stat in stats:
        if stat.startswith("p"):
            value = percentile(ms, float(stat[1:]))
        elif not ms:
            value = None
        else:
            value = {"mean": statistics.fmean, "min": min, "max": max}[stat](ms)
        out[f"{stat}_ms"] = rounded(value)
    return out


class Deadline:
    """The whole run's time bound; each step asks for a bound inside it."""

    def __init__(self, seconds: float, error: ErrorType = RuntimeError) -> None:
        self.end = time.monotonic() + seconds
        self.error = error

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def budget(self, seconds: float) -> float:
        """A monotonic end time: `seconds` from now, but never past the global end."""
        left = self.remaining()
        if left <= 1:
            raise self.error("global time limit reached")
        return time.monotonic() + min(seconds, left - 1)

    def cap(self, seconds: float, margin: float = 20.0) -> float:
        """`seconds`, but never past the global end minus `margin` (kept for cleanup:
        closing sockets, stopping servers)."""
        left = self.remaining() - margin
        if left <= 0:
            raise self.error("global time limit reached")
        return min(seconds, left)


# ---------------------------------------------------------------- processes


def python_exe() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv if venv.exists() else sys.executable)


def clean_env() -> dict[str, str]:
    """The environment for child processes: no MODELGRAPH_* and no proxies (but the
    harness's token, for helper processes that talk to the server)."""
    drop = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy")
    return {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("MODELGRAPH_") or k == TOKEN_ENV) and k.lower() not in drop
    }


# The ADMIN token the measurements run with (servers authenticate every request, as in
# production); set in this process's environment so helper processes inherit it.
TOKEN_ENV = "MODELGRAPH_HARNESS_TOKEN"
_TOKENS: dict[str, str] = {}


def admin_token(database_url: str) -> str:
    """An ADMIN token on the database (made with `modelgraph token create`, which also
    migrates it), once per database; its secret, also put in this process's environment."""
    if database_url in _TOKENS:
        os.environ[TOKEN_ENV] = _TOKENS[database_url]
        return _TOKENS[database_url]
    name = f"harness-{len(_TOKENS)}-{os.getpid()}"
    env = {**clean_env(), "MODELGRAPH_DATABASE_URL": database_url}
    made = subprocess.run(
        [python_exe(), "-m", "app", "token", "create", "--name", name, "--role", "ADMIN", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        raise RuntimeError(f"could not make a token: {made.stderr.strip()}")
    _TOKENS[database_url] = json.loads(made.stdout)["secret"]
    return admin_token(database_url)


def auth_headers() -> dict[str, str]:
    """The Authorization header for the harness's token (none before a server started)."""
    token = os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


class Server(LocalServer):
    """`python -m app serve` with the harness's ADMIN token on `database_url`, its output in
    `log_path`, no MODELGRAPH_* from this environment and no access log (measure the app,
    not uvicorn). `error` is raised when it does not start."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        error: ErrorType = RuntimeError,
        preexec_fn: Callable[[], Any] | None = None,
        workers: int = 1,
    ) -> None:
        env = {
            **clean_env(),
            "MODELGRAPH_DATABASE_URL": database_url,
            "MODELGRAPH_LOG_LEVEL": "warning",
            "PYTHONDONTWRITEBYTECODE": "1",
            # Beside the log, not the default ./artifacts in the checkout (PostgreSQL).
            "MODELGRAPH_ARTIFACT_STORE": str(log_path.parent / "artifact-store"),
        }
        # `serve --workers N` (PostgreSQL): cpu_seconds() then counts every worker.
        args = ["--workers", str(workers)] if workers > 1 else []
        super().__init__(
            env, args, log=log_path, python=python_exe(), cwd=ROOT, preexec_fn=preexec_fn
        )
        self.database_url = database_url
        self.error = error

    def start(self, timeout: float = 60.0) -> Self:
        admin_token(self.database_url)
        try:
            return super().start(timeout)
        except ServerStartError as exc:
            raise self.error(str(exc)) from exc

    def client(self, **options: Any) -> Client:
        """A keep-alive client with the harness's token; no proxy: all stays on 127.0.0.1."""
        return Client(self.base_url, token=os.environ.get(TOKEN_ENV), trust_env=False, **options)

    def cpu_seconds(self) -> float | None:
        """user + system CPU time of the server process so far, with its worker processes'
        when it has them (Linux /proc)."""
        if self.proc is None:
            return None
        try:
            pids = [self.proc.pid, *_children(self.proc.pid)]
            total = 0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            return total / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def open_fds(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def log_text(self) -> str:
        return self.output()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 10.0) -> str:
        """SIGINT: uvicorn shuts down gracefully. Its output (`returncode` says how)."""
        return super().stop(sig, timeout)


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (a server's workers), by their parent in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the finally blocks stop the servers."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- HTTP

# Registering a version: every script makes some (and reads the number back).
REGISTER = """
mutation Register($input: RegisterModelVersionInput!) {
  registerModelVersion(input: $input) {
    __typename
    ... on RegisterModelVersionSuccess { modelVersion { version stage } }
    ... on Error { code message }
  }
}"""


def expect_typename(result: dict[str, Any], typename: str, error: ErrorType) -> dict[str, Any]:
    """A union result (success or error type) that must be `typename`."""
    try:
        return success(result, typename)
    except ClientError as exc:
        raise error(f"expected {typename}, got {json.dumps(result)[:300]}") from exc


# ---------------------------------------------------------------- databases, machine


def check_postgres_url(url: str) -> None:
    """Only a local `test` or `test_*` database: its public schema is dropped and recreated."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url: only sqlite (default) or postgresql, not {url}")
    name = parsed.database or ""
    if not (name == "test" or name.startswith("test_")) or parsed.host not in (
        "127.0.0.1",
        "localhost",
    ):
        raise SystemExit(
            "--database-url: the schema is dropped and recreated, so only a database "
            "named 'test' or 'test_*' on 127.0.0.1 is accepted"
        )
    if parsed.drivername != "postgresql+asyncpg":
        raise SystemExit("--database-url: use the postgresql+asyncpg driver")


async def reset_postgres(url: str) -> None:
    import asyncpg  # the local test database only (check_postgres_url)

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def package_versions(dists: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution (the missing ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in dists:
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out
