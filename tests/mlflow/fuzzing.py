"""What the MLflow face's fuzz tests share: how a generated call is sent, and what an
answer must never be (a 5xx, a code MLflow does not answer with that status, a body that
leaks Python's internals), and the ERROR log records a run produced (the `errors` fixture
in conftest.py)."""

import json
import logging
import math
import re
from typing import Any

import httpx

from app.mlflow.wire import STATUS

LEAK = re.compile(
    r"Traceback|File \"|line \d+|object at 0x|has no attribute|NoneType|sqlalchemy|asyncpg"
    r"|\b[A-Z][a-z]\w*(?:Error|Exception)\b"
)


def problems(response: httpx.Response, *, bytes_ok: bool = False) -> list[str]:
    """What is wrong with an answer (nothing: []). With bytes_ok, a 200 that is not JSON
    (a downloaded file) is fine."""
    found = []
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return found if bytes_ok and response.status_code == 200 else [*found, "not JSON"]
    if response.status_code != 200:
        code = body.get("error_code") if isinstance(body, dict) else None
        if code not in STATUS:
            found.append(f"error_code {code!r}")
        elif STATUS[code] != response.status_code:
            found.append(f"{code} with status {response.status_code}")
        if LEAK.search(str(body.get("message"))):
            found.append(f"leaks: {body.get('message')!r}")
    return found


def encode(fields: dict[str, Any]) -> bytes:
    """JSON as a client would send it; a float JSON cannot hold goes as its text."""

    def fix(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return json.dumps(fix(fields)).encode()


def query_params(fields: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                out.append((name, json.dumps(item) if isinstance(item, dict) else str(item)))
    return out


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
