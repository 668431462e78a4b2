"""Refusals of who is asking, as opposed to what they ask."""

from app.auth.roles import Role
from app.errors import DomainError, ErrorCode


class AuthenticationError(DomainError):
    """No credentials, or credentials that are not (or no longer) valid."""

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str) -> None:
        super().__init__(message)


class PermissionDeniedError(DomainError):
    """The caller is known, but its role does not include the one the operation needs."""

    code = ErrorCode.PERMISSION_DENIED

    def __init__(self, operation: str, required: Role, role: Role) -> None:
        super().__init__(
            f"{operation} needs the {required.value} role; this token has {role.value}",
            operation=operation,
            requiredRole=required.value,
            role=role.value,
        )
        self.operation = operation
        self.required = required
        self.role = role
