"""MLflow's artifact proxy on the wire, against a real server: streamed raw uploads into
the content-addressed store (one blob per content), listings as MLflow lays them out,
verified downloads (a corrupt blob is refused, never served), deletes, refusals in
MLflow's shape, registered versions read-only, and server-info."""

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.artifacts.models import CHUNK_SIZE
from app.artifacts.store import blob_key

START = 'mutation { startRun(input: {experiment: "exp"}) { ... on StartRunSuccess { run { id experiment { id } } } } }'
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


def start_run(server) -> tuple[str, str]:
    run = server.gql(START)["startRun"]["run"]
    return run["experiment"]["id"], run["id"]


def client(server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )


def blob_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "blobs" / "blobs").rglob("*") if p.is_file())


def listing(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = http.get(PROXY, params={"path": path})
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()["files"]
    return files


def test_upload_list_download_by_content_one_blob_per_content(mlflow_server, tmp_path):
    exp, run = start_run(mlflow_server)
    root = f"{exp}/{run}/artifacts"
    data = os.urandom(3 * 1024 * 1024 + 17)
    with client(mlflow_server) as http:
        for path in ("model/weights.bin", "copy/weights.bin"):
            put = http.put(f"{PROXY}/{root}/{path}", content=data)
            assert (put.status_code, put.json()) == (200, {})
        assert http.put(f"{PROXY}/{root}/notes.txt", content=b"hello").status_code == 200
        assert listing(http, root) == [
            {"path": "copy", "is_dir": True},
            {"path": "model", "is_dir": True},
            {"path": "notes.txt", "is_dir": False, "file_size": 5},
        ]
        assert listing(http, f"{root}/model") == [
            {"path": "weights.bin", "is_dir": False, "file_size": len(data)}
        ]
        # a file is no folder; a path above every tree lists nothing
        assert listing(http, f"{root}/notes.txt") == []
        assert listing(http, exp) == []
        got = http.get(f"{PROXY}/{root}/model/weights.bin")
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["x-content-sha256"] == hashlib.sha256(data).hexdigest()
        assert http.get(f"{PROXY}/{root}/notes.txt").text == "hello"
    # two uploads of the same bytes, one blob
    assert [p.name for p in blob_files(tmp_path)] == sorted(
        [hashlib.sha256(data).hexdigest(), hashlib.sha256(b"hello").hexdigest()]
    )
    # the graph shows the same files
    files = mlflow_server.gql(
        'query($id: ID!) { run(id: $id) { artifacts(path: "model") { path digest size } } }',
        id=run,
    )["run"]["artifacts"]
    assert files == [
        {"path": "model/weights.bin", "digest": hashlib.sha256(data).hexdigest(), "size": len(data)}
    ]


def test_delete_a_file_and_a_folder(mlflow_server):
    exp, run = start_run(mlflow_server)
    root = f"{exp}/{run}/artifacts"
    with client(mlflow_server) as http:
        for path in ("a/1.txt", "a/b/2.txt", "c.txt"):
            assert http.put(f"{PROXY}/{root}/{path}", content=path.encode()).status_code == 200
        assert http.delete(f"{PROXY}/{root}/c.txt").status_code == 200
        assert http.delete(f"{PROXY}/{root}/a").status_code == 200
        assert listing(http, root) == []
        gone = http.delete(f"{PROXY}/{root}/a")
        assert (gone.status_code, gone.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_corrupt_blob_is_refused_never_served(mlflow_server, tmp_path):
    exp, run = start_run(mlflow_server)
    data = b"the model's weights" * 1000
    url = f"{PROXY}/{exp}/{run}/artifacts/weights.bin"
    with client(mlflow_server) as http:
        assert http.put(url, content=data).status_code == 200
        stored = tmp_path / "blobs" / blob_key(hashlib.sha256(data).hexdigest())
        damaged = bytearray(stored.read_bytes())
        damaged[10] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        got = http.get(url)
        # not retried by the client (a retry cannot mend stored bytes), and no wrong bytes
        assert got.status_code == 400
        assert got.json()["error_code"] == "INVALID_STATE"
        assert "corrupt" in got.json()["message"]
        stored.unlink()
        missing = http.get(url)
        assert (missing.status_code, missing.json()["error_code"]) == (400, "INVALID_STATE")
        assert "missing" in missing.json()["message"]


def test_corruption_past_the_first_chunk_cuts_the_download_short(mlflow_server, tmp_path):
    exp, run = start_run(mlflow_server)
    data = os.urandom(CHUNK_SIZE + 1000)
    url = f"{PROXY}/{exp}/{run}/artifacts/big.bin"
    with client(mlflow_server) as http:
        assert http.put(url, content=data).status_code == 200
        stored = tmp_path / "blobs" / blob_key(hashlib.sha256(data).hexdigest())
        damaged = bytearray(stored.read_bytes())
        damaged[CHUNK_SIZE + 10] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        received = bytearray()

        def drain() -> None:
            with http.stream("GET", url) as response:
                assert response.status_code == 200
                for part in response.iter_bytes():
                    received.extend(part)

        with pytest.raises(httpx.RemoteProtocolError):
            drain()
    # the good first chunk at most, never a byte of the damaged one
    assert bytes(received) == data[: len(received)]
    assert len(received) <= CHUNK_SIZE


REFUSALS = [
    ("PUT", "{exp}/0123456789abcdef0123456789abcdef/artifacts/x", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("PUT", "999/{run}/artifacts/x", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("PUT", "{exp}/{run}/artifacts/a/%2E%2E/x", 400, "INVALID_PARAMETER_VALUE"),
    ("PUT", "{exp}/{run}/artifacts/a//x", 400, "INVALID_PARAMETER_VALUE"),
    ("PUT", "{exp}/{run}/artifacts/a%0Ab", 400, "INVALID_PARAMETER_VALUE"),
    ("PUT", "{exp}/{run}/artifacts", 400, "INVALID_PARAMETER_VALUE"),
    ("PUT", "elsewhere/x", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("GET", "{exp}/{run}/artifacts/absent", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("GET", "{exp}/models/m-{hex}/artifacts/MLmodel", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("GET", "registry/1/1/artifacts/MLmodel", 404, "RESOURCE_DOES_NOT_EXIST"),
    ("PUT", "registry/1/1/artifacts/MLmodel", 400, "INVALID_STATE"),
    ("DELETE", "registry/1/1/artifacts/MLmodel", 400, "INVALID_STATE"),
]


def test_refusals_in_mlflows_shape_change_nothing(mlflow_server, tmp_path):
    exp, run = start_run(mlflow_server)
    with client(mlflow_server) as http:
        for method, path, status, code in REFUSALS:
            url = f"{PROXY}/{path.format(exp=exp, run=run, hex='0' * 32)}"
            response = http.request(method, url, content=b"bytes")
            answer = (response.status_code, response.json().get("error_code"))
            assert answer == (status, code), (method, path, response.text)
        assert listing(http, f"{exp}/{run}/artifacts") == []
    assert blob_files(tmp_path) == []


def test_a_deleted_runs_files_are_read_not_changed(mlflow_server):
    exp, run = start_run(mlflow_server)
    url = f"{PROXY}/{exp}/{run}/artifacts/x.txt"
    with client(mlflow_server) as http:
        assert http.put(url, content=b"x").status_code == 200
        deleted = http.post("/api/2.0/mlflow/runs/delete", json={"run_id": run})
        assert deleted.status_code == 200, deleted.text
        for method in ("PUT", "DELETE"):
            refused = http.request(method, url, content=b"y")
            assert (refused.status_code, refused.json()["error_code"]) == (400, "INVALID_STATE")
        assert http.get(url).content == b"x"


def test_roles_reader_reads_writer_writes(mlflow_server):
    exp, run = start_run(mlflow_server)
    url = f"{PROXY}/{exp}/{run}/artifacts/x.txt"
    reader = mlflow_server.gql(
        'mutation { createApiToken(input: {name: "r", role: READER}) { ... on CreateApiTokenSuccess { secret } } }'
    )["createApiToken"]["secret"]
    with httpx.Client(base_url=mlflow_server.url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {reader}"}
        denied = http.put(url, content=b"x", headers=auth)
        assert (denied.status_code, denied.json()["error_code"]) == (403, "PERMISSION_DENIED")
        admin = {"Authorization": f"Bearer {mlflow_server.token}"}
        assert http.put(url, content=b"x", headers=admin).status_code == 200
        assert http.get(url, headers=auth).content == b"x"
        assert http.delete(url, headers=auth).status_code == 403


def test_server_info(mlflow_server):
    with client(mlflow_server) as http:
        info = http.get("/api/3.0/mlflow/server-info")
    assert info.status_code == 200
    assert info.json() == {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
    }
