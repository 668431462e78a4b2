"""What a request to a modelgraph server can end in, other than its data."""

from typing import Any


class ClientError(Exception):
    """The server refused a request, could not answer it, or could not be reached.

    `errors` are the GraphQL errors of the answer (empty when there was none), `code` the
    first one's `extensions.code` (the refusal's stable code), `status` the HTTP status
    (None over a WebSocket or when nothing answered)."""

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.status = status

    @property
    def code(self) -> str | None:
        for error in self.errors:
            code = (error.get("extensions") or {}).get("code")
            if code is not None:
                return str(code)
        return None

    @classmethod
    def from_errors(cls, errors: list[dict[str, Any]], status: int | None = None) -> "ClientError":
        first = errors[0] if errors else {}
        return cls(str(first.get("message", "the server refused")), errors=errors, status=status)


class Unreachable(ClientError):
    """Nothing answered: the server is down, the address is wrong, or the network failed."""


class DigestMismatch(ClientError):
    """Bytes received do not hash to the digest they were asked for: nothing was kept."""

    def __init__(self, target: str, *, expected: str, actual: str) -> None:
        super().__init__(
            f"{target}: expected sha256:{expected}, received sha256:{actual}",
            # The server's code for bytes that are not what their digest promises.
            errors=[{"message": "digest mismatch", "extensions": {"code": "BLOB_CORRUPT"}}],
        )
        self.expected = expected
        self.actual = actual


class StreamEnded(ClientError):
    """The server completed the subscription: no more results will come."""


class StreamClosed(ClientError):
    """The server closed the WebSocket. `close_code` says why; the subclasses name the
    refusals a client can act on."""

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        super().__init__(f"closed {close_code}: {reason}" if reason else f"closed {close_code}")
        self.close_code = close_code
        self.reason = reason


class Unauthenticated(StreamClosed):
    """4401: the connection sent no token."""


class Forbidden(StreamClosed):
    """4403: the token is unknown, revoked, or may not do this."""


class InitTimeout(StreamClosed):
    """4408: connection_init did not arrive in time."""


class TooManyConnections(StreamClosed):
    """4429 (this token's share) or 1013 (the server's): try again later."""


CLOSED_BY_CODE: dict[int, type[StreamClosed]] = {
    4401: Unauthenticated,
    4403: Forbidden,
    4408: InitTimeout,
    4429: TooManyConnections,
    1013: TooManyConnections,
}


def closed(close_code: int | None, reason: str = "") -> StreamClosed:
    """The typed error for a WebSocket closed with `close_code`."""
    kind = CLOSED_BY_CODE.get(close_code, StreamClosed) if close_code is not None else StreamClosed
    return kind(close_code, reason)
