"""Domain errors: refusals with a stable code and the facts a client needs to act."""

import re
import unicodedata
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Every refusal's stable code: the one list, which the GraphQL face publishes as its
    ErrorCode enum. A new refusal adds its code here."""

    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    NO_ROLLBACK_TARGET = "NO_ROLLBACK_TARGET"
    POLICY_VIOLATION = "POLICY_VIOLATION"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    BLOB_MISSING = "BLOB_MISSING"
    BLOB_CORRUPT = "BLOB_CORRUPT"


class DomainError(Exception):
    """A refusal the client can act on; never a bug. Each concrete refusal sets `code`."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts = facts


class NotFoundError(DomainError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, entity: str, field: str, value: Any) -> None:
        super().__init__(f"{entity} {value!r} does not exist", field=field, value=str(value))
        self.entity = entity
        self.field = field
        self.value = str(value)


class ValidationError(DomainError):
    code = ErrorCode.INVALID_INPUT

    def __init__(self, field: str, message: str, limit: int | None = None) -> None:
        super().__init__(f"{field}: {message}", field=field, limit=limit)
        self.field = field
        self.limit = limit


class AlreadyExistsError(DomainError):
    code = ErrorCode.ALREADY_EXISTS

    def __init__(self, entity: str, field: str, value: Any) -> None:
        super().__init__(f"{entity} {value!r} already exists", field=field, value=str(value))
        self.entity = entity
        self.field = field
        self.value = str(value)


class ConflictError(DomainError):
    """The request contradicts stored state (a write-once value, a concurrent change)."""

    code = ErrorCode.CONFLICT

    def __init__(
        self, field: str, message: str, *, expected: str | None = None, actual: str | None = None
    ) -> None:
        super().__init__(message, field=field, expected=expected, actual=actual)
        self.field = field
        self.expected = expected
        self.actual = actual


# Control characters (but tab and line breaks): never in stored text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A lone UTF-16 surrogate (JSON's "\ud800" escape decodes to one) is no character: UTF-8
# cannot encode it, so neither database can store it, nor even look it up.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Default_Ignorable_Code_Point from Unicode 14.0 (the version of Python 3.11's
# unicodedata), DerivedCoreProperties.txt: characters a renderer shows as nothing, so
# "fraud-detector" with one of them inside prints as "fraud-detector". unicodedata has
# no such property; the Cf and Cn among them are refused by category below too, the
# marks (Mn) and Hangul fillers (Lo) only by this list. It includes every bidirectional
# control (U+061C, U+200E-200F, U+202A-202E, U+2066-2069).
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f-\u1160\u17b4-\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# Categories never in a name: controls (Cc), format characters (Cf: invisible, bidi),
# surrogates (Cs), line and paragraph separators (Zl, Zp); private use (Co), whose
# glyphs are whatever a font makes of them, so two names cannot be told apart; and
# unassigned code points (Cn, noncharacters included), which have no glyph yet and may
# become invisible when assigned. A character newer than Python's Unicode is refused
# until Python knows it: identifiers lose little by waiting.
_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn"})
# Param, metric and tag keys: MLflow's alphabet, so MLflow clients keep working. Its `\w`
# admits the Hangul fillers (letters, to Unicode): keys pass the name rules first.
_KEY = re.compile(r"[\w.\- /:]+")


def _forbidden(field: str, value: str, pattern: re.Pattern[str], what: str) -> None:
    found = pattern.search(value)
    if found is not None:
        char = found.group()
        code = "NUL" if char == "\x00" else f"U+{ord(char):04X}"
        raise ValidationError(field, f"must not contain {what} ({code} at {found.start()})")


def storable(value: str) -> bool:
    """Whether a database can hold `value` (no lone surrogate in it)."""
    return _SURROGATE.search(value) is None


def check_storable(field: str, value: str) -> None:
    """Refuse text no database can store or search: a lone surrogate."""
    _forbidden(field, value, _SURROGATE, "a lone surrogate, which is not a character")


def _unreadable_in_name(value: str) -> int | None:
    """Where the first character a name must not hold is, if any."""
    found = _DEFAULT_IGNORABLE.search(value)
    first = found.start() if found is not None else len(value)
    # isprintable() is False exactly for the C and Z categories but the ASCII space: a
    # scan in C clears nearly every name before a per-character look.
    if not value[:first].isprintable():
        for i, char in enumerate(value[:first]):
            if unicodedata.category(char) in _NAME_CATEGORIES:
                return i
    return first if first < len(value) else None


def check_length(field: str, value: str | None, limit: int, *, required: bool = False) -> None:
    """Refuse a string over `limit` characters, with control characters (tab and line
    breaks aside) or lone surrogates, or empty when required."""
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
    check_storable(field, value)


def check_name(field: str, value: str | None, limit: int, *, required: bool = True) -> None:
    """check_length, and a name's own rules: one line; no control, format (invisible or
    direction-changing), default-ignorable, private-use or unassigned characters; no
    surrounding spaces."""
    check_length(field, value, limit, required=required)
    if value is None:
        return
    at = _unreadable_in_name(value)
    if at is not None:
        char = value[at]
        label = f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()
        raise ValidationError(
            field,
            f"must not contain control, invisible, private-use or unassigned characters "
            f"({label} at {at})",
        )
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


class UnavailableError(DomainError):
    """The server cannot do this now: its database is unreachable, full, or its write
    lock is held. Not the client's mistake and not a bug: the same request may succeed
    later."""

    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, reason: str, *, retry_after: int = 5) -> None:
        super().__init__(
            f"the service is unavailable ({reason}); retry in {retry_after} s or later",
            retryAfter=retry_after,
        )
        self.reason = reason
        self.retry_after = retry_after
