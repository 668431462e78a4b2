"""Exit codes a shell script can branch on, and the one table from a refusal's code to them."""

from app.client import ClientError, Forbidden, StreamClosed, Unauthenticated, Unreachable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_POLICY = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_CONNECTION = 6
EXIT_REFUSED = 7  # an invalid transition or invalid input
EXIT_TIMEOUT = 8
EXIT_AUTH = 9  # no token, a bad or revoked one, or a role that may not do this
EXIT_INTEGRITY = 10  # bytes that do not match their digest, or stored content lost or damaged

# A refusal's stable code (app/errors.py and the domains' errors) -> the exit code.
EXIT_BY_CODE = {
    "POLICY_VIOLATION": EXIT_POLICY,
    "CONFLICT": EXIT_CONFLICT,
    "ALREADY_EXISTS": EXIT_CONFLICT,
    "NOT_FOUND": EXIT_NOT_FOUND,
    "INVALID_TRANSITION": EXIT_REFUSED,
    "INVALID_INPUT": EXIT_REFUSED,
    "NO_ROLLBACK_TARGET": EXIT_REFUSED,
    "PERMISSION_DENIED": EXIT_AUTH,
    "BLOB_MISSING": EXIT_INTEGRITY,
    "BLOB_CORRUPT": EXIT_INTEGRITY,
}


def exit_code(code: str | None, default: int = EXIT_ERROR) -> int:
    """The exit code of a refusal with this stable code."""
    return EXIT_BY_CODE.get(code or "", default)


def exit_for(error: ClientError) -> int:
    """The exit code of a request the server refused, could not answer or never saw."""
    if isinstance(error, Unreachable):
        return EXIT_CONNECTION
    if isinstance(error, Unauthenticated | Forbidden) or error.status == 401:
        return EXIT_AUTH
    if isinstance(error, StreamClosed):
        # The server ended the stream (a shutdown, 1000/1001) or broke it.
        return EXIT_ERROR if error.close_code in (1000, 1001) else EXIT_CONNECTION
    if error.status is not None and error.status >= 500:
        return EXIT_CONNECTION
    if error.status is not None and error.status >= 400:
        return EXIT_REFUSED  # the request itself was refused (too large, malformed)
    return exit_code(error.code, EXIT_REFUSED)


def exit_for_transfer(error: ClientError) -> int:
    """exit_for, for an artifact transfer: the refusal's code (an integrity failure, a
    missing run or file, a role) says more than the HTTP status it came with."""
    if not isinstance(error, Unreachable) and error.code in EXIT_BY_CODE:
        return EXIT_BY_CODE[error.code]
    return exit_for(error)
