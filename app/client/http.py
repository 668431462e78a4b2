"""GraphQL over HTTP, synchronous and asynchronous (httpx), with the bearer token."""

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from app.client.errors import ClientError, Unreachable

DEFAULT_TIMEOUT = 60.0


def endpoint(url: str) -> str:
    """The GraphQL endpoint of a server given by its base URL (or by the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/graphql") else f"{url}/graphql"


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def encode(query: str, variables: Mapping[str, Any] | None = None) -> bytes:
    """A request body, encoded once: a caller sending it many times pays for JSON once."""
    return json.dumps({"query": query, "variables": dict(variables or {})}).encode()


def data_of(response: httpx.Response) -> dict[str, Any]:
    """The `data` of an answer that is a clean 200 without errors; else a ClientError with
    the GraphQL errors (when the body has them) and the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if response.status_code != 200 or errors or not isinstance(body, dict):
        if errors:
            raise ClientError.from_errors(errors, response.status_code)
        text = response.text[:200] or response.reason_phrase
        raise ClientError(f"HTTP {response.status_code}: {text}", status=response.status_code)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ClientError("the answer has no data", status=response.status_code)
    return data


def success(result: Mapping[str, Any], typename: str) -> dict[str, Any]:
    """A mutation's payload that must be its success type; a refusal (an `Error` type,
    selected with `... on Error { code message }`) raises a ClientError with its code."""
    if result.get("__typename") != typename:
        extensions = {"code": result.get("__typename"), **result}
        raise ClientError.from_errors(
            [{"message": str(result.get("message")), "extensions": extensions}]
        )
    return dict(result)


class _Base:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        trust_env: bool = True,
        connections: int | None = None,
    ) -> None:
        self.url = endpoint(url)
        self._options: dict[str, Any] = {
            "headers": {
                "content-type": "application/json",
                "accept": "application/json",
                **auth_headers(token),
                **(headers or {}),
            },
            "timeout": httpx.Timeout(timeout),
            # trust_env=False: no proxy from the environment (a benchmark on 127.0.0.1).
            "trust_env": trust_env,
        }
        if connections is not None:
            self._options["limits"] = httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            )
        self._open()

    def _open(self) -> None:
        """Make `self.http` from `self._options` (sync or async, by subclass)."""
        raise NotImplementedError


class Client(_Base):
    """A keep-alive GraphQL client. `execute` answers data or raises ClientError (or its
    subclass Unreachable); `send` answers the raw response, for callers that judge it."""

    http: httpx.Client

    def _open(self) -> None:
        self.http = httpx.Client(**self._options)

    def send(self, body: bytes, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            return self.http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc

    def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return self.send(encode(query, variables), headers=headers)

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return data_of(self.post(query, variables, headers=headers))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Base):
    """The asynchronous twin of Client (httpx.AsyncClient underneath)."""

    http: httpx.AsyncClient

    def _open(self) -> None:
        self.http = httpx.AsyncClient(**self._options)

    async def send(
        self, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await self.http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc

    async def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await self.send(encode(query, variables), headers=headers)

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return data_of(await self.post(query, variables, headers=headers))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
