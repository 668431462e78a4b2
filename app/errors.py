"""Domain errors: refusals with a stable code and the facts a client needs to act."""

import re
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


# Control characters (but tab and line breaks) and lone surrogates: never in stored text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Names and keys are identifiers people read and match on: no line breaks, tabs,
# invisible characters or bidirectional overrides that make one name look like another.
_NAME_FORBIDDEN = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
# Param, metric and tag keys: MLflow's alphabet, so MLflow clients keep working.
_KEY = re.compile(r"[\w.\- /:]+")


def _forbidden(field: str, value: str, pattern: re.Pattern[str], what: str) -> None:
    found = pattern.search(value)
    if found is not None:
        char = found.group()
        code = "NUL" if char == "\x00" else f"U+{ord(char):04X}"
        raise ValidationError(field, f"must not contain {what} ({code} at {found.start()})")


def check_length(field: str, value: str | None, limit: int, *, required: bool = False) -> None:
    """Refuse a string over `limit` characters, with control characters (tab and line
    breaks aside), or empty when required."""
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
    _forbidden(field, value, _CONTROL, "control characters")


def check_name(field: str, value: str | None, limit: int, *, required: bool = True) -> None:
    """check_length, and a name's own rules: one line, no invisible or direction-changing
    characters, no surrounding spaces."""
    check_length(field, value, limit, required=required)
    if value is None:
        return
    _forbidden(field, value, _NAME_FORBIDDEN, "line breaks, tabs or invisible characters")
    if value != value.strip():
        raise ValidationError(field, "must not start or end with spaces")


def check_key(field: str, value: str | None, limit: int) -> None:
    """A param, metric or tag key: letters, digits, `_ - . / :` and spaces (MLflow's
    rule), and when it looks like a path, a plain one."""
    check_name(field, value, limit)
    assert value is not None
    if not _KEY.fullmatch(value):
        raise ValidationError(
            field, "may contain only letters, digits, spaces and the characters _ - . / :"
        )
    if "/" in value and any(part in ("", ".", "..") for part in value.split("/")):
        raise ValidationError(field, "must be a relative path without '.', '..' or empty parts")


def check_count(field: str, count: int, limit: int) -> None:
    """Refuse a batch with more than `limit` items."""
    if count > limit:
        raise ValidationError(field, f"has {count} items, the limit is {limit}", limit)


def check_tags(field: str, tags: dict[str, str], *, key_limit: int, value_limit: int) -> None:
    """Refuse tags whose keys or values are over their limits."""
    check_count(field, len(tags), 100)
    for key, value in tags.items():
        check_key(f"{field}.key", key, key_limit)
        check_length(f"{field}[{key}].value", value, value_limit)
