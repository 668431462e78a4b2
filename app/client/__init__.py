"""A client for a modelgraph server: GraphQL over HTTP (Client, AsyncClient), subscriptions
over a WebSocket (Subscription), and a local server in a subprocess (LocalServer), for the
CLI, scripts, notebooks and tests alike. It speaks only the public API: nothing here
imports the server's code."""

from app.client.artifacts import Artifacts, Downloaded, Stored, sha256_file
from app.client.errors import (
    ClientError,
    DigestMismatch,
    Forbidden,
    InitTimeout,
    StreamClosed,
    StreamEnded,
    TooManyConnections,
    Unauthenticated,
    Unreachable,
)
from app.client.http import AsyncClient, Client, auth_headers, data_of, encode, endpoint, success
from app.client.server import LocalServer
from app.client.ws import LEGACY_WS, TRANSPORT_WS, Subscription, ws_endpoint

__all__ = [
    "LEGACY_WS",
    "TRANSPORT_WS",
    "Artifacts",
    "AsyncClient",
    "Client",
    "ClientError",
    "DigestMismatch",
    "Downloaded",
    "Forbidden",
    "InitTimeout",
    "LocalServer",
    "Stored",
    "StreamClosed",
    "StreamEnded",
    "Subscription",
    "TooManyConnections",
    "Unauthenticated",
    "Unreachable",
    "auth_headers",
    "data_of",
    "encode",
    "endpoint",
    "sha256_file",
    "success",
    "ws_endpoint",
]
