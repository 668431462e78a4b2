"""Artifacts through the CLI and the client against a real server: a directory uploaded to
a run, listed and downloaded byte for byte; a version pulled by number, stage and alias;
a corrupted blob stops a pull (DIR untouched) and `verify` names it; `gc` removes only
what nothing references."""

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

from app.artifacts.content import manifest_digest
from app.artifacts.models import CHUNK_SIZE
from app.cli.exits import EXIT_INTEGRITY, EXIT_NOT_FOUND, EXIT_OK
from app.client import Artifacts, DigestMismatch
from tests.e2e.conftest import Auth, auth_headers, cli, gql

START = (
    'mutation { startRun(input: {experiment: "art"}) { ... on StartRunSuccess { run { id } } } }'
)
REGISTER = """
mutation($source: String!) {
  registerModelVersion(input: {model: "fraud", source: $source}) {
    __typename ... on Error { message }
    ... on RegisterModelVersionSuccess { modelVersion { version digest files { path digest size } } }
  }
}
"""
STAGE = """
mutation($version: Int!) {
  transitionModelVersion(input: {model: "fraud", version: $version, stage: STAGING}) { __typename }
}
"""
ALIAS = """
mutation($version: Int!) {
  setModelAlias(input: {model: "fraud", alias: "champion", version: $version}) { __typename }
}
"""

# Two chunks and a bit, so a verified download crosses chunk boundaries.
FILES = {
    "model/weights.bin": os.urandom(2 * CHUNK_SIZE + 123),
    "model/config.json": b'{"layers": 3}',
    "model/tokenizer/vocab.txt": b"a\nb\nc\n",
    "notes.txt": b"trained on Tuesday",
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def env(server_env: dict[str, str], store: Path) -> dict[str, str]:
    """What both the server and the CLI run with: one database, one store."""
    return {**server_env, "MODELGRAPH_ARTIFACT_STORE": store.as_uri()}


@pytest.fixture
def base(start_server, env: dict[str, str]) -> str:
    return str(start_server(MODELGRAPH_ARTIFACT_STORE=env["MODELGRAPH_ARTIFACT_STORE"]).base)


def write_tree(root: Path) -> Path:
    for path, data in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def mg(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = cli(*args, env=env)
    return done.returncode, done.stdout, done.stderr


def new_run(base: str) -> str:
    return str(gql(base, START)["startRun"]["run"]["id"])


def blob_file(store: Path, digest: str) -> Path:
    return store / "blobs" / digest[:2] / digest


def test_a_directory_uploaded_listed_and_downloaded_byte_for_byte(base, env, tmp_path):
    run = new_run(base)
    local = write_tree(tmp_path / "out")

    code, out, err = mg(env, "artifacts", "upload", "--run", run, str(local), "--url", base)
    assert code == EXIT_OK, err
    assert len(out.splitlines()) == len(FILES)

    code, out, err = mg(env, "artifacts", "ls", "--run", run, "--url", base, "--json")
    assert code == EXIT_OK, err
    assert [(e["path"], e["isDir"]) for e in json.loads(out)] == [
        ("model", True),
        ("notes.txt", False),
    ]
    code, out, _ = mg(env, "artifacts", "ls", "--run", run, "model", "--url", base, "--json")
    listed = {e["path"]: e for e in json.loads(out)}
    assert set(listed) == {"model/config.json", "model/tokenizer", "model/weights.bin"}
    weights = listed["model/weights.bin"]
    assert weights["digest"] == hashlib.sha256(FILES["model/weights.bin"]).hexdigest()
    assert weights["size"] == len(FILES["model/weights.bin"])

    everything = tmp_path / "everything"
    code, _, err = mg(
        env, "artifacts", "download", "--run", run, ".", str(everything), "--url", base
    )
    assert code == EXIT_OK, err
    assert {p: (everything / p).read_bytes() for p in FILES} == FILES
    folder = tmp_path / "folder"
    code, _, err = mg(
        env, "artifacts", "download", "--run", run, "model", str(folder), "--url", base
    )
    assert code == EXIT_OK, err
    assert (folder / "tokenizer" / "vocab.txt").read_bytes() == FILES["model/tokenizer/vocab.txt"]
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "config.json",
        "vocab.txt",
        "weights.bin",
    ]
    one = tmp_path / "one"
    code, _, err = mg(
        env, "artifacts", "download", "--run", run, "notes.txt", str(one), "--url", base
    )
    assert code == EXIT_OK, err
    assert (one / "notes.txt").read_bytes() == FILES["notes.txt"]

    code, _, err = mg(env, "artifacts", "download", "--run", run, "nope", str(one), "--url", base)
    assert code == EXIT_NOT_FOUND, err


def test_the_client_resumes_a_download_and_refuses_other_bytes(base, env, tmp_path):
    data = FILES["model/weights.bin"]
    local = tmp_path / "w.bin"
    local.write_bytes(data)
    code, out, err = mg(env, "artifacts", "upload", "--blob", str(local), "--url", base)
    assert code == EXIT_OK, err
    digest = out.strip()
    assert digest == hashlib.sha256(data).hexdigest()

    dest = tmp_path / "got.bin"
    # An earlier transfer cut short after its first chunk and some.
    dest.with_name("got.bin.part").write_bytes(data[: CHUNK_SIZE + 10])
    with Artifacts(base, token=Auth.token) as transfers:
        got = transfers.download_blob(digest, dest)
        assert (got.resumed_from, got.digest) == (CHUNK_SIZE + 10, digest)
        assert dest.read_bytes() == data
        assert not dest.with_name("got.bin.part").exists()
        # A damaged partial file fails its hash and is dropped, so a retry starts over.
        dest.unlink()
        dest.with_name("got.bin.part").write_bytes(b"x" * 100)
        with pytest.raises(DigestMismatch):
            transfers.download_blob(digest, dest)
        assert not dest.exists()
        assert not dest.with_name("got.bin.part").exists()
        assert transfers.download_blob(digest, dest).resumed_from == 0
        assert dest.read_bytes() == data


def register(base: str, env: dict[str, str], tmp_path: Path) -> dict:
    run = new_run(base)
    local = write_tree(tmp_path / "out")
    code, _, err = mg(env, "artifacts", "upload", "--run", run, str(local), "--url", base)
    assert code == EXIT_OK, err
    answer = gql(base, REGISTER, source=f"runs:/{run}/model")["registerModelVersion"]
    assert answer["__typename"] == "RegisterModelVersionSuccess", answer
    version = answer["modelVersion"]
    assert gql(base, STAGE, version=version["version"])["transitionModelVersion"]
    assert gql(base, ALIAS, version=version["version"])["setModelAlias"]
    return dict(version)


def pulled(target: Path) -> dict[str, bytes]:
    return {
        p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()
    }


def test_pull_by_version_stage_and_alias(base, env, tmp_path):
    version = register(base, env, tmp_path)
    expected = {p.removeprefix("model/"): d for p, d in FILES.items() if p.startswith("model/")}
    assert version["digest"] == manifest_digest(
        (p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in expected.items()
    )

    for how in (["--version", "1"], ["--stage", "staging"], ["--alias", "champion"]):
        target = tmp_path / "deploy"
        code, _out, err = mg(env, "pull", "--model", "fraud", *how, str(target), "--url", base)
        assert code == EXIT_OK, (how, err)
        files = pulled(target)
        stamp = json.loads(files.pop("MODELGRAPH_VERSION.json"))
        assert files == expected
        assert (stamp["model"], stamp["version"], stamp["stage"], stamp["digest"]) == (
            "fraud",
            1,
            "STAGING",
            version["digest"],
        )
    code, _, err = mg(
        env, "pull", "--model", "fraud", "--stage", "PRODUCTION", str(target), "--url", base
    )
    assert code == EXIT_NOT_FOUND, err
    assert pulled(target).keys() == {*expected, "MODELGRAPH_VERSION.json"}


def test_a_corrupt_blob_stops_the_pull_and_verify_names_it(base, env, store, tmp_path):
    version = register(base, env, tmp_path)
    target = tmp_path / "deploy"
    code, _, err = mg(env, "pull", "--model", "fraud", "--version", "1", str(target), "--url", base)
    assert code == EXIT_OK, err
    before = pulled(target)
    code, out, err = mg(env, "artifacts", "verify", "--json")
    assert (code, json.loads(out)["corrupt"]) == (EXIT_OK, []), err

    weights = next(f for f in version["files"] if f["path"] == "weights.bin")
    damaged = bytearray(FILES["model/weights.bin"])
    damaged[5] ^= 0xFF
    blob_file(store, weights["digest"]).write_bytes(bytes(damaged))

    code, _, err = mg(
        env, "pull", "--model", "fraud", "--alias", "champion", str(target), "--url", base
    )
    assert code == EXIT_INTEGRITY, err
    assert "NOT PULLED" in err
    assert pulled(target) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".deploy")) == []

    code, out, _ = mg(env, "artifacts", "verify", "--json")
    report = json.loads(out)
    assert (code, report["corrupt"], report["missing"]) == (EXIT_INTEGRITY, [weights["digest"]], [])
    code, out, _ = mg(env, "artifacts", "verify")
    assert code == EXIT_INTEGRITY
    assert f"corrupt   {weights['digest']}" in out


def test_gc_removes_an_unreferenced_blob_and_keeps_referenced_ones(base, env, store, tmp_path):
    run = new_run(base)
    kept, dropped = tmp_path / "kept.bin", tmp_path / "dropped.bin"
    kept.write_bytes(b"referenced by a run")
    dropped.write_bytes(b"uploaded by a CI job that never registered it")
    code, _, err = mg(env, "artifacts", "upload", "--run", run, str(kept), "--url", base)
    assert code == EXIT_OK, err
    code, out, err = mg(env, "artifacts", "upload", "--blob", str(dropped), "--url", base, "--json")
    assert code == EXIT_OK, err
    orphan = json.loads(out)[0]["digest"]
    referenced = hashlib.sha256(kept.read_bytes()).hexdigest()

    code, out, err = mg(env, "artifacts", "gc", "--json")
    assert (code, json.loads(out)["blobs_deleted"]) == (EXIT_OK, []), err  # within the grace
    code, out, err = mg(env, "artifacts", "gc", "--grace", "0", "--json")
    assert code == EXIT_OK, err
    assert json.loads(out)["blobs_deleted"] == [orphan]
    assert not blob_file(store, orphan).exists()
    assert blob_file(store, referenced).exists()

    back = tmp_path / "back"
    code, _, err = mg(
        env, "artifacts", "download", "--run", run, "kept.bin", str(back), "--url", base
    )
    assert code == EXIT_OK, err
    assert (back / "kept.bin").read_bytes() == kept.read_bytes()
    code, out, _ = mg(env, "artifacts", "verify", "--json")
    assert (code, json.loads(out)["checked"]) == (EXIT_OK, 1)


def _drain(response: httpx.Response, into: bytearray) -> None:
    for part in response.iter_raw():
        into += part


def test_a_blob_corrupt_past_its_first_chunk_cuts_the_download_short(base, env, store, tmp_path):
    """The status is sent once the first chunk checks out; damage found later cannot turn
    into an error status, so the connection is closed short of its Content-Length: the
    client sees a failed transfer, never a complete file of wrong bytes. The server logs
    one line, counts it, and prints no traceback (the fixture checks at stop)."""
    run = new_run(base)
    local = write_tree(tmp_path / "out")
    code, _, err = mg(env, "artifacts", "upload", "--run", run, str(local), "--url", base)
    assert code == EXIT_OK, err
    data = FILES["model/weights.bin"]
    damaged = bytearray(data)
    damaged[CHUNK_SIZE + 7] ^= 0xFF
    blob_file(store, hashlib.sha256(data).hexdigest()).write_bytes(bytes(damaged))

    url = f"{base}/artifacts/runs/{run}/model/weights.bin"
    received = bytearray()
    with (
        httpx.Client(headers=auth_headers(), timeout=30, trust_env=False) as http,
        http.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(data)
        with pytest.raises(httpx.RemoteProtocolError):
            _drain(response, received)
    # Only verified chunks went out.
    assert len(received) == CHUNK_SIZE
    assert bytes(received) == data[:CHUNK_SIZE]
    metrics = httpx.get(f"{base}/metrics", trust_env=False).text
    assert 'modelgraph_store_integrity_failures_total{problem="blob_corrupt"} 1.0' in metrics
