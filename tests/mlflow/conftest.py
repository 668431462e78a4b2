"""The MLflow face's in-process tests (the official client's are in tests/e2e/mlflow)."""

import logging
from collections.abc import AsyncIterator

import pytest

from tests.mlflow.fuzzing import ErrorLog


@pytest.fixture
async def errors() -> AsyncIterator[ErrorLog]:
    """The ERROR records logged while the test runs."""
    log = ErrorLog()
    root = logging.getLogger()
    root.addHandler(log)
    yield log
    root.removeHandler(log)
