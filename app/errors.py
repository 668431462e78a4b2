"""Domain errors: refusals with a stable code and the facts a client needs to act."""

from typing import Any


class DomainError(Exception):
    """A refusal the client can act on; never a bug."""

    code = "ERROR"

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts = facts


class NotFoundError(DomainError):
    code = "NOT_FOUND"

    def __init__(self, entity: str, field: str, value: Any) -> None:
        super().__init__(f"{entity} {value!r} does not exist", field=field, value=str(value))
        self.entity = entity
        self.field = field
        self.value = str(value)


class ValidationError(DomainError):
    code = "INVALID_INPUT"

    def __init__(self, field: str, message: str, limit: int | None = None) -> None:
        super().__init__(f"{field}: {message}", field=field, limit=limit)
        self.field = field
        self.limit = limit


class AlreadyExistsError(DomainError):
    code = "ALREADY_EXISTS"

    def __init__(self, entity: str, field: str, value: Any) -> None:
        super().__init__(f"{entity} {value!r} already exists", field=field, value=str(value))
        self.entity = entity
        self.field = field
        self.value = str(value)


class ConflictError(DomainError):
    """The request contradicts stored state (a write-once value, a concurrent change)."""

    code = "CONFLICT"

    def __init__(
        self, field: str, message: str, *, expected: str | None = None, actual: str | None = None
    ) -> None:
        super().__init__(message, field=field, expected=expected, actual=actual)
        self.field = field
        self.expected = expected
        self.actual = actual


def check_length(field: str, value: str | None, limit: int, *, required: bool = False) -> None:
    """Refuse a string over `limit` characters (or empty, when required)."""
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    if len(value) > limit:
        raise ValidationError(field, f"is {len(value)} characters, the limit is {limit}", limit)


def check_count(field: str, count: int, limit: int) -> None:
    """Refuse a batch with more than `limit` items."""
    if count > limit:
        raise ValidationError(field, f"has {count} items, the limit is {limit}", limit)


def check_tags(field: str, tags: dict[str, str], *, key_limit: int, value_limit: int) -> None:
    """Refuse tags whose keys or values are over their limits."""
    check_count(field, len(tags), 100)
    for key, value in tags.items():
        check_length(f"{field}.key", key, key_limit, required=True)
        check_length(f"{field}[{key}].value", value, value_limit)
