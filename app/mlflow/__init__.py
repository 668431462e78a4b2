"""MLflow's REST API as a second face over the same services: the MLflow client, pointed
at this server with MLFLOW_TRACKING_URI, works unchanged. A face: it translates MLflow's
requests and answers, and every rule stays in the domain packages.

Each endpoint module registers its endpoints (app.mlflow.wire.endpoint) when imported:
import it here and name it in ENDPOINT_MODULES.
"""

from functools import cache
from types import ModuleType

from starlette.routing import Route

from app.mlflow import artifacts, experiments, logged_models, registry, run_logging, runs, wire

ENDPOINT_MODULES: tuple[ModuleType, ...] = (
    logged_models,
    artifacts,
    registry,
    experiments,
    runs,
    run_logging,
)

# Paths whose request bodies are artifact bytes, streamed under the artifact size limit
# rather than the JSON body limit.
STREAMED_PREFIXES = ("/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/")


def routes() -> list[Route]:
    """The face's routes. Built once: compiling a pattern for each of its paths cost more
    than the rest of create_app, and Route objects hold no per-app state."""
    return list(_routes())


@cache
def _routes() -> tuple[Route, ...]:
    return tuple(wire.routes(wire.ENDPOINTS))
