from functools import cached_property
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings, read once from `MODELGRAPH_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELGRAPH_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./modelgraph.db"
    host: str = "127.0.0.1"
    port: int = 8000
    # Largest `first` a connection accepts, and the page size when `first` is omitted.
    max_page_size: int = 500
    default_page_size: int = 50
    # metricHistory pages may be larger: a training curve is read whole.
    max_history_page_size: int = 10_000
    # SQLite waits this long for the write lock before giving up.
    sqlite_busy_timeout_ms: int = 30_000
    # /readyz: how long its write probe may wait (for SQLite's write lock, a PostgreSQL
    # connection), and the free space the SQLite database's disk must keep.
    ready_write_timeout_ms: int = 2_000
    min_free_disk_bytes: int = 16 * 1024 * 1024
    # FULL: a commit is on disk before it is acknowledged, so an acknowledged write
    # survives a power cut too (NORMAL survives a crash of the process, not of the
    # machine; about 0.4 ms less per commit here).
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    # Read connections kept open (SQLite), or the connection pool (PostgreSQL).
    pool_size: int = 20
    graphiql: bool = True
    # Subscriptions: keep-alive for legacy graphql-ws clients, a cap per connection, and
    # how far (in events) a watcher may fall behind before it is told to resume later.
    keep_alive_seconds: float = 15.0
    max_subscriptions_per_connection: int = 100
    max_subscriber_lag: int = 10_000
    # Against a client holding sockets or subscriptions open: a WebSocket that has not
    # authenticated within the init timeout is closed (4408), and connections and
    # subscriptions are capped per token and in total (refusals name the setting).
    connection_init_timeout_seconds: float = 10.0
    max_websocket_connections: int = 2_000
    max_websocket_connections_per_token: int = 500
    max_subscriptions: int = 10_000
    max_subscriptions_per_token: int = 1_000
    # `modelgraph serve`'s HTTP: a request's headers must be complete within the header
    # timeout, an idle keep-alive connection is closed after its timeout, and beyond
    # max_connections open sockets of any kind (WebSockets included) a request gets a 503.
    http_header_timeout_seconds: float = 10.0
    http_keep_alive_seconds: int = 5
    max_connections: int = 4_000
    log_level: str = "info"

    # Who may do what. Every request needs a token unless anonymous reads are allowed;
    # dev mode turns authentication off altogether (a laptop, never a shared server).
    dev_mode: bool = False
    anonymous_read: bool = False
    # How long a valid token is remembered, and how often open WebSocket connections'
    # tokens are re-checked: the longest a revocation no server is told of (the CLI's, on
    # SQLite) takes to act. One made through a server, or on PostgreSQL, acts at once.
    token_recheck_seconds: float = 1.0

    # Limits on what one request may ask for; a breach is an error naming the limit.
    introspection: bool = True
    max_query_bytes: int = 100_000
    max_query_depth: int = 12
    max_query_aliases: int = 30
    max_query_tokens: int = 5_000
    # Objects a query could return at most: every object field counts once per parent,
    # a paged field `first` times per parent (see app/graphql/limits.py).
    max_query_cost: int = 500_000
    # Fields written in one document: bounds what validation may cost (TOO_MANY_FIELDS).
    max_query_fields: int = 500
    # Estimated memory of parsed and validated documents kept for reuse.
    query_cache_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 4 * 1024 * 1024
    max_metric_batch: int = 10_000

    # Where artifact bytes live: `file:///path` or `s3://bucket/prefix` (credentials and
    # endpoint from the AWS_* variables). Unset: a folder next to the SQLite file.
    artifact_store: str | None = None
    max_artifact_bytes: int = 10 * 1024**3
    max_artifacts_per_run: int = 10_000
    # gc leaves blobs and unfinished uploads younger than this: an upload between storing
    # its bytes and recording them is never collected.
    artifact_gc_grace_seconds: float = 3600.0

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
