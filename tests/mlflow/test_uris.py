"""Artifact URIs handed to the MLflow client, and the proxy paths they come back as."""

import pytest

from app.mlflow import uris
from app.mlflow.uris import LoggedModelArtifacts, RunArtifacts, VersionArtifacts

RUN = "0123456789abcdef0123456789abcdef"


def test_each_uri_parses_back_to_its_tree() -> None:
    scheme = len(uris.SCHEME)
    run = uris.run_artifact_uri(3, RUN)
    assert run == f"mlflow-artifacts:/3/{RUN}/artifacts"
    assert uris.parse_artifact_path(run[scheme:] + "/model/MLmodel") == RunArtifacts(
        3, RUN, "model/MLmodel"
    )
    model = uris.logged_model_artifact_uri(3, "m-abc")
    assert uris.parse_artifact_path(model[scheme:] + "/a/b.pkl") == LoggedModelArtifacts(
        3, "m-abc", "a/b.pkl"
    )
    version = uris.version_artifact_uri(12, 4)
    assert uris.parse_artifact_path(version[scheme:]) == VersionArtifacts(12, 4, "")
    assert uris.parse_artifact_path(version[scheme:] + "/x/y/z") == VersionArtifacts(12, 4, "x/y/z")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "abc",
        "3",
        f"3/{RUN}",
        f"3/{RUN}/other/x",
        "registry/x/1/artifacts",
        "3/models/m-a",
        # digits to str.isdigit() that int() refuses
        f"\u00b2/{RUN}/artifacts",
        "registry/\u0663/1/artifacts",
    ],
)
def test_other_paths_are_none_of_the_trees(path: str) -> None:
    assert uris.parse_artifact_path(path) is None
