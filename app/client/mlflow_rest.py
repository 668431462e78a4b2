"""A reader for an MLflow tracking server's REST API (what `modelgraph import-mlflow` copies
from): plain httpx, no mlflow import. Every listing pages to the end; nothing here writes.

Paths are MLflow's own: `/api/2.0/mlflow/...` for tracking and the registry, and
`/api/2.0/mlflow-artifacts/artifacts[/<path>]` for the artifact proxy (a server started with
`--serve-artifacts`, the default of `mlflow server` since 2.0)."""

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

# The most each listing asks for per page (MLflow's own limits are at least these).
EXPERIMENT_PAGE = 1000
RUN_PAGE = 1000
HISTORY_PAGE = 25_000
MODEL_PAGE = 1000
VERSION_PAGE = 10_000
LOGGED_MODEL_PAGE = 100
ARTIFACT_SCHEME = "mlflow-artifacts:/"


class MlflowSourceError(Exception):
    """The MLflow server refused a request or could not be reached."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class MlflowReader:
    """Reads one MLflow server. `token` is sent as a bearer token (MLflow's
    MLFLOW_TRACKING_TOKEN); `username`/`password` as basic auth."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username else None
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> "MlflowReader":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---------------------------------------------------------------- transport

    async def _call(
        self, method: str, path: str, *, params: Any = None, json: Any = None
    ) -> dict[str, Any]:
        try:
            response = await self.http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise MlflowSourceError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code != 200:
            code, message = None, response.text[:500]
            try:
                body = response.json()
                code, message = body.get("error_code"), body.get("message", message)
            except ValueError:
                pass
            raise MlflowSourceError(
                f"{method} {path}: HTTP {response.status_code} {code or ''} {message}".strip(),
                code=code,
                status=response.status_code,
            )
        try:
            answer: dict[str, Any] = response.json() if response.content else {}
        except ValueError as exc:
            raise MlflowSourceError(
                f"{method} {path}: not JSON (is {self.url} an MLflow server?)"
            ) from exc
        return answer

    async def api(
        self, method: str, endpoint: str, *, params: Any = None, json: Any = None
    ) -> dict[str, Any]:
        return await self._call(method, f"/api/2.0/mlflow/{endpoint}", params=params, json=json)

    async def _pages(
        self, method: str, endpoint: str, field: str, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = {**request, **({"page_token": token} if token else {})}
            if method == "GET":
                answer = await self.api(method, endpoint, params=page)
            else:
                answer = await self.api(method, endpoint, json=page)
            for item in answer.get(field, []):
                yield item
            token = answer.get("next_page_token") or None
            if not token:
                return

    # ---------------------------------------------------------------- tracking

    async def server_version(self) -> str | None:
        """The server's version (its /version route), or None when it has none."""
        try:
            response = await self.http.get("/version")
        except httpx.HTTPError as exc:
            raise MlflowSourceError(f"cannot reach {self.url}: {exc}") from exc
        return response.text.strip() if response.status_code == 200 else None

    def experiments(self) -> AsyncIterator[dict[str, Any]]:
        """Every experiment, deleted ones included."""
        request = {"max_results": EXPERIMENT_PAGE, "view_type": "ALL"}
        return self._pages("POST", "experiments/search", "experiments", request)

    def runs(self, experiment_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every run of an experiment, deleted ones included, oldest first (parents are
        started before their children, so they come first)."""
        request = {
            "experiment_ids": [experiment_id],
            "run_view_type": "ALL",
            "max_results": RUN_PAGE,
            "order_by": ["attributes.start_time ASC"],
        }
        return self._pages("POST", "runs/search", "runs", request)

    async def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every point of one metric of one run."""
        request: dict[str, Any] = {"run_id": run_id, "run_uuid": run_id, "metric_key": key}
        request["max_results"] = HISTORY_PAGE
        return [m async for m in self._pages("GET", "metrics/get-history", "metrics", request)]

    def logged_models(self, experiment_id: str) -> AsyncIterator[dict[str, Any]]:
        request = {"experiment_ids": [experiment_id], "max_results": LOGGED_MODEL_PAGE}
        return self._pages("POST", "logged-models/search", "models", request)

    # ---------------------------------------------------------------- registry

    def registered_models(self) -> AsyncIterator[dict[str, Any]]:
        request = {"max_results": MODEL_PAGE}
        return self._pages("GET", "registered-models/search", "registered_models", request)

    async def registered_model(self, name: str) -> dict[str, Any]:
        answer = await self.api("GET", "registered-models/get", params={"name": name})
        model: dict[str, Any] = answer["registered_model"]
        return model

    async def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of a model, by number."""
        escaped = name.replace("'", "\\'")
        request = {"filter": f"name='{escaped}'", "max_results": VERSION_PAGE}
        found = [
            v async for v in self._pages("GET", "model-versions/search", "model_versions", request)
        ]
        return sorted(found, key=lambda v: int(v["version"]))

    # ---------------------------------------------------------------- artifacts

    @staticmethod
    def proxied_path(artifact_uri: str) -> str | None:
        """The artifact proxy's path for an `mlflow-artifacts:/...` URI; None for a store
        the server does not proxy (s3://, file://, ...)."""
        if not artifact_uri.startswith(ARTIFACT_SCHEME):
            return None
        rest = artifact_uri.removeprefix(ARTIFACT_SCHEME).lstrip("/")
        # mlflow-artifacts://host:port/path names a server; the path is after the host.
        if artifact_uri.startswith(ARTIFACT_SCHEME + "/"):
            rest = rest.partition("/")[2]
        return rest.strip("/")

    async def list_artifacts(self, root: str, path: str = "") -> list[dict[str, Any]]:
        """The entries directly under `path` below the proxied folder `root`, as MLflow
        lists them (path relative to `root`, is_dir, file_size)."""
        full = f"{root}/{path}" if path else root
        answer = await self._call(
            "GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": full}
        )
        entries = answer.get("files", [])
        prefix = f"{path}/" if path else ""
        return [
            {**e, "path": prefix + e["path"].rsplit("/", 1)[-1]} for e in entries if e.get("path")
        ]

    async def walk_artifacts(self, root: str, path: str = "") -> list[dict[str, Any]]:
        """Every file below `root` (depth first), path relative to `root`."""
        files: list[dict[str, Any]] = []
        for entry in await self.list_artifacts(root, path):
            if entry.get("is_dir"):
                files += await self.walk_artifacts(root, entry["path"])
            else:
                files.append(entry)
        return files

    async def download(self, root: str, path: str) -> AsyncIterator[bytes]:
        """The bytes of one file, streamed."""
        url = "/api/2.0/mlflow-artifacts/artifacts/" + quote(f"{root}/{path}")
        try:
            async with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise MlflowSourceError(
                        f"GET {url}: HTTP {response.status_code} {response.text[:300]}",
                        status=response.status_code,
                    )
                async for piece in response.aiter_bytes():
                    yield piece
        except httpx.HTTPError as exc:
            raise MlflowSourceError(f"cannot download {url}: {exc}") from exc
