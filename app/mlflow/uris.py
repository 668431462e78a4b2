"""Where MLflow's client finds artifact bytes: `mlflow-artifacts:/...` URIs that it turns
into requests to this server's artifact proxy (/api/2.0/mlflow-artifacts/artifacts/<path>).

Three kinds of tree are served, all from the content-addressed store:

    <experiment>/<run>/artifacts/<path>                a run's artifacts (as MLflow lays them out)
    <experiment>/models/<model id>/artifacts/<path>    an MLflow 3 logged model's files
    registry/<registered model id>/<version>/artifacts/<path>
                                                       a registered version's own files (read only)

A registered version is addressed by the model's numeric id, not its name: the id survives
a rename, and a name may hold characters that do not travel in a URL path.
"""

from dataclasses import dataclass

SCHEME = "mlflow-artifacts:"
REGISTRY = "registry"
MODELS = "models"
ARTIFACTS = "artifacts"


def run_artifact_uri(experiment_id: int | str, run_id: str) -> str:
    return f"{SCHEME}/{experiment_id}/{run_id}/{ARTIFACTS}"


def logged_model_artifact_uri(experiment_id: int | str, model_id: str) -> str:
    return f"{SCHEME}/{experiment_id}/{MODELS}/{model_id}/{ARTIFACTS}"


def version_artifact_uri(registered_model_id: int, version: int) -> str:
    return f"{SCHEME}/{REGISTRY}/{registered_model_id}/{version}/{ARTIFACTS}"


@dataclass(frozen=True)
class RunArtifacts:
    experiment_id: int
    run_id: str
    path: str  # inside the run's tree; "" is its root


@dataclass(frozen=True)
class LoggedModelArtifacts:
    experiment_id: int
    model_id: str
    path: str


@dataclass(frozen=True)
class VersionArtifacts:
    registered_model_id: int
    version: int
    path: str


ArtifactLocation = RunArtifacts | LoggedModelArtifacts | VersionArtifacts


def parse_artifact_path(path: str) -> ArtifactLocation | None:
    """Which tree a proxy path (the URI without its scheme, leading slashes ignored)
    points into, or None when it is none of the three shapes. The path inside the tree is
    returned as given; the artifact service normalises and refuses bad ones."""
    parts = path.strip("/").split("/", 4)
    if len(parts) >= 4 and parts[0] == REGISTRY and parts[3] == ARTIFACTS:
        model_id, version = _number(parts[1]), _number(parts[2])
        if model_id is None or version is None:
            return None
        return VersionArtifacts(model_id, version, _rest(parts, 4))
    experiment_id = _number(parts[0]) if parts else None
    if experiment_id is None:
        return None
    if len(parts) >= 4 and parts[1] == MODELS and parts[3] == ARTIFACTS:
        return LoggedModelArtifacts(experiment_id, parts[2], _rest(parts, 4))
    if len(parts) >= 3 and parts[2] == ARTIFACTS and parts[1]:
        rest = "/".join(parts[3:])
        return RunArtifacts(experiment_id, parts[1], rest)
    return None


def _rest(parts: list[str], start: int) -> str:
    return parts[start] if len(parts) > start else ""


def _number(text: str) -> int | None:
    # isdigit() alone admits "²" and other digits int() refuses.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
