"""The run search grammar MLflow clients write, parsed into plain clauses (no SQL here).

A filter is clauses joined by AND (OR is refused):

    metrics.acc > 0.9 and params.lr = '0.01' and tags.`my tag` LIKE 'x%'
    attributes.status IN ('FINISHED', 'FAILED') and datasets.context = 'training'

`<prefix>.<key> <operator> <value>`; the prefix says what the key names (metrics,
params, tags, attributes, datasets, with MLflow's singular and short spellings); a key
with spaces or dots may be quoted in backticks or double quotes. An ordering is
`<prefix>.<key> [ASC|DESC]`.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.errors import ValidationError

FILTER_LIMIT = 10_000
ORDER_BY_LIMIT = 10


class Entity(StrEnum):
    METRIC = "metrics"
    PARAM = "params"
    TAG = "tags"
    ATTRIBUTE = "attributes"
    DATASET = "datasets"


PREFIXES = {
    "metric": Entity.METRIC,
    "metrics": Entity.METRIC,
    "param": Entity.PARAM,
    "params": Entity.PARAM,
    "parameter": Entity.PARAM,
    "parameters": Entity.PARAM,
    "tag": Entity.TAG,
    "tags": Entity.TAG,
    "attribute": Entity.ATTRIBUTE,
    "attributes": Entity.ATTRIBUTE,
    "attr": Entity.ATTRIBUTE,
    "run": Entity.ATTRIBUTE,
    "dataset": Entity.DATASET,
    "datasets": Entity.DATASET,
}

# Attribute names as clients write them, to the one each stands for.
STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_uuid": "run_id",
    "run_name": "run_name",
    "status": "status",
    "user_id": "user_id",
}
NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time", "created": "start_time"}
DATASET_FIELDS = ("name", "digest", "context")

COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
KEY_VALUE_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")

Value = float | str | tuple[str, ...] | None


@dataclass(frozen=True)
class Clause:
    """`entity.key op value`: value is a float (metrics, times), a str, a tuple of str
    (IN, NOT IN) or None (IS NULL, IS NOT NULL)."""

    entity: Entity
    key: str
    op: str
    value: Value


@dataclass(frozen=True)
class OrderItem:
    entity: Entity
    key: str
    ascending: bool


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<op>!=|<>|>=|<=|=|>|<)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][\w\-:/]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str, field: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValidationError(field, f"cannot read {text[pos : pos + 20]!r} at {pos}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append(_Token(kind, m.group(), pos))
        pos = m.end()
    return out


def _unquote(token: _Token) -> str:
    quote = token.text[0]
    body = token.text[1:-1]
    return body if quote == "`" else body.replace(quote * 2, quote)


class _Reader:
    def __init__(self, tokens: list[_Token], field: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.field = field

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ValidationError(self.field, "ends too early")
        self.i += 1
        return token

    def word(self, *words: str) -> bool:
        """Consume the next token if it is one of these keywords."""
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.upper() in words:
            self.i += 1
            return True
        return False

    def fail(self, token: _Token, message: str) -> ValidationError:
        return ValidationError(self.field, f"{message} at {token.at} ({token.text!r})")

    def identifier(self, bare: frozenset[str] = frozenset()) -> tuple[Entity, str]:
        """`prefix.key`, the key possibly quoted or dotted; a name in `bare` alone is an
        attribute."""
        first = self.take()
        if first.kind != "word":
            raise self.fail(first, "expected an identifier such as metrics.accuracy")
        dot = self.peek()
        if first.text in bare and (dot is None or dot.text != "."):
            return Entity.ATTRIBUTE, first.text
        entity = PREFIXES.get(first.text.lower())
        if entity is None or dot is None or dot.text != ".":
            raise self.fail(
                first,
                "expected an identifier with one of the prefixes metrics., params., tags., "
                "attributes., datasets.",
            )
        self.take()
        part = self.take()
        if part.kind in ("backtick", "string"):
            return entity, _unquote(part)
        if part.kind not in ("word", "number"):
            raise self.fail(part, "expected a key")
        key = part.text
        # A bare dotted key (tags.mlflow.runName): join its parts back up.
        while (
            (nxt := self.peek()) is not None
            and nxt.text == "."
            and nxt.at == part.at + len(part.text)
        ):
            self.take()
            part = self.take()
            if part.kind not in ("word", "number"):
                raise self.fail(part, "expected a key")
            key += "." + part.text
        return entity, key


def _refuse_or(tokens: list[_Token], field: str) -> None:
    for token in tokens:
        if token.kind == "word" and token.text.upper() == "OR":
            raise ValidationError(
                field,
                "Invalid clause(s) in filter string: 'OR'; only AND joins clauses",
            )


def _operator(reader: _Reader) -> str:
    token = reader.take()
    if token.kind == "op":
        return "!=" if token.text == "<>" else token.text
    if token.kind == "word":
        word = token.text.upper()
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT" and reader.word("IN"):
            return "NOT IN"
        if word == "IS":
            negated = reader.word("NOT")
            if reader.word("NULL"):
                return "IS NOT NULL" if negated else "IS NULL"
            raise reader.fail(token, "expected IS NULL or IS NOT NULL")
    raise reader.fail(token, "expected an operator (= != > >= < <= LIKE ILIKE IN NOT IN IS)")


def _string(reader: _Reader) -> str:
    token = reader.take()
    if token.kind != "string":
        raise reader.fail(token, "expected a quoted string value")
    return _unquote(token)


def _strings(reader: _Reader) -> tuple[str, ...]:
    opening = reader.take()
    if opening.text != "(":
        raise reader.fail(opening, "expected a parenthesised list of quoted strings")
    values = [_string(reader)]
    while (token := reader.take()).text == ",":
        values.append(_string(reader))
    if token.text != ")":
        raise reader.fail(token, "expected ',' or ')'")
    return tuple(values)


def _number(reader: _Reader) -> float:
    token = reader.take()
    if token.kind != "number":
        raise reader.fail(token, "expected a number")
    value = float(token.text)
    if math.isinf(value):
        raise reader.fail(token, "is out of range")
    return value


def _allowed(reader: _Reader, token: _Token, what: str, op: str, ops: Sequence[str]) -> None:
    if op not in ops:
        raise reader.fail(token, f"{what} takes {', '.join(ops)}, not {op}")


def _clause(reader: _Reader) -> Clause:
    start = reader.peek()
    assert start is not None
    entity, key = reader.identifier()
    op = _operator(reader)
    what = f"{entity.value}.{key}"
    value: Value
    if entity == Entity.METRIC:
        _allowed(reader, start, what, op, COMPARISONS)
        value = _number(reader)
    elif entity == Entity.ATTRIBUTE:
        if key in NUMERIC_ATTRIBUTES:
            _allowed(reader, start, what, op, COMPARISONS)
            return Clause(entity, NUMERIC_ATTRIBUTES[key], op, _number(reader))
        if key not in STRING_ATTRIBUTES:
            names = sorted(STRING_ATTRIBUTES) + sorted(NUMERIC_ATTRIBUTES)
            raise reader.fail(start, f"attributes are {', '.join(names)}; not {key!r}")
        _allowed(reader, start, what, op, STRING_OPS)
        key = STRING_ATTRIBUTES[key]
        value = _strings(reader) if op.endswith("IN") else _string(reader)
    elif entity == Entity.DATASET:
        if key not in DATASET_FIELDS:
            raise reader.fail(start, f"datasets fields are {', '.join(DATASET_FIELDS)}")
        _allowed(reader, start, what, op, STRING_OPS)
        value = _strings(reader) if op.endswith("IN") else _string(reader)
    else:
        _allowed(reader, start, what, op, KEY_VALUE_OPS)
        if op.startswith("IS"):
            value = None
        else:
            value = _strings(reader) if op.endswith("IN") else _string(reader)
    return Clause(entity, key, op, value)


def parse_filter(text: str | None, *, field: str = "filter") -> tuple[Clause, ...]:
    """The clauses of a filter string (none for an empty one), or a ValidationError that
    says where it could not be read."""
    return _parse_clauses(text, field, _clause)


def _parse_clauses(
    text: str | None, field: str, clause: Callable[["_Reader"], Clause]
) -> tuple[Clause, ...]:
    """Clauses read by `clause`, joined by AND (OR refused); none for an empty text."""
    if text is None or not text.strip():
        return ()
    if len(text) > FILTER_LIMIT:
        raise ValidationError(
            field, f"is {len(text)} characters, the limit is {FILTER_LIMIT}", FILTER_LIMIT
        )
    tokens = _tokens(text, field)
    _refuse_or(tokens, field)
    reader = _Reader(tokens, field)
    clauses = [clause(reader)]
    while reader.peek() is not None:
        token = reader.take()
        if not (token.kind == "word" and token.text.upper() == "AND"):
            raise reader.fail(token, "expected AND between clauses")
        clauses.append(clause(reader))
    return tuple(clauses)


ORDER_ATTRIBUTES = {
    **NUMERIC_ATTRIBUTES,
    **STRING_ATTRIBUTES,
}


def parse_order_by(items: Sequence[str] | None, *, field: str = "orderBy") -> tuple[OrderItem, ...]:
    """`prefix.key [ASC|DESC]` items (ASC when not said); a bare attribute name such as
    `start_time` is an attribute."""
    items = items or []
    if len(items) > ORDER_BY_LIMIT:
        raise ValidationError(
            field, f"has {len(items)} items, the limit is {ORDER_BY_LIMIT}", ORDER_BY_LIMIT
        )
    out = []
    for i, item in enumerate(items):
        at = f"{field}[{i}]"
        tokens = _tokens(item, at)
        if not tokens:
            raise ValidationError(at, "is empty")
        reader = _Reader(tokens, at)
        first = tokens[0]
        if (
            first.kind == "word"
            and first.text in ORDER_ATTRIBUTES
            and (len(tokens) == 1 or tokens[1].text != ".")
        ):
            reader.take()
            entity, key = Entity.ATTRIBUTE, first.text
        else:
            entity, key = reader.identifier()
        ascending = True
        if reader.word("DESC"):
            ascending = False
        else:
            reader.word("ASC")
        extra = reader.peek()
        if extra is not None:
            raise reader.fail(extra, "expected nothing after ASC or DESC")
        if entity == Entity.DATASET:
            raise ValidationError(at, "runs cannot be ordered by datasets")
        if entity == Entity.ATTRIBUTE:
            if key not in ORDER_ATTRIBUTES:
                names = ", ".join(sorted(ORDER_ATTRIBUTES))
                raise ValidationError(at, f"attributes to order by are {names}; not {key!r}")
            key = ORDER_ATTRIBUTES[key]
        out.append(OrderItem(entity, key, ascending))
    return tuple(out)


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern as the GLOB pattern that matches the same strings, case-sensitively
    (SQLite's LIKE ignores ASCII case; GLOB does not): % is *, _ is ?, and GLOB's own
    special characters stand for themselves."""
    special = {"*": "[*]", "?": "[?]", "[": "[[]", "%": "*", "_": "?"}
    return "".join(special.get(c, c) for c in pattern)


# Experiments: their attributes (bare or prefixed, as MLflow clients write them) and tags.
EXPERIMENT_STRING_ATTRIBUTES = frozenset({"name"})
EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time", "experiment_id"})
EXPERIMENT_ATTRIBUTES = EXPERIMENT_STRING_ATTRIBUTES | EXPERIMENT_NUMERIC_ATTRIBUTES


def _experiment_clause(reader: _Reader) -> Clause:
    start = reader.peek()
    assert start is not None
    entity, key = reader.identifier(EXPERIMENT_ATTRIBUTES)
    op = _operator(reader)
    what = f"{entity.value}.{key}"
    if entity == Entity.TAG:
        _allowed(reader, start, what, op, KEY_VALUE_OPS)
        if op.startswith("IS"):
            return Clause(entity, key, op, None)
        return Clause(entity, key, op, _strings(reader) if op.endswith("IN") else _string(reader))
    if entity != Entity.ATTRIBUTE or key not in EXPERIMENT_ATTRIBUTES:
        names = ", ".join(sorted(EXPERIMENT_ATTRIBUTES))
        raise reader.fail(start, f"experiments are searched by {names} and tags.<key>")
    if key in EXPERIMENT_NUMERIC_ATTRIBUTES:
        _allowed(reader, start, what, op, COMPARISONS)
        token = reader.peek()
        # experiment_id is a number written as a string by some clients.
        if key == "experiment_id" and token is not None and token.kind == "string":
            text = _string(reader)
            try:
                return Clause(entity, key, op, float(int(text)))
            except ValueError:
                raise reader.fail(token, "expected an experiment id") from None
        return Clause(entity, key, op, _number(reader))
    _allowed(reader, start, what, op, STRING_OPS)
    return Clause(entity, key, op, _strings(reader) if op.endswith("IN") else _string(reader))


def parse_experiment_filter(text: str | None, *, field: str = "filter") -> tuple[Clause, ...]:
    """An experiment search filter: `name`, `creation_time`, `last_update_time`,
    `experiment_id` (bare or as attributes.<name>) and `tags.<key>`, joined by AND."""
    return _parse_clauses(text, field, _experiment_clause)


def parse_experiment_order_by(
    items: Sequence[str] | None, *, field: str = "order_by"
) -> tuple[OrderItem, ...]:
    """`name`, `creation_time`, `last_update_time` or `experiment_id`, ASC or DESC."""
    out = []
    for i, item in enumerate(items or []):
        at = f"{field}[{i}]"
        tokens = _tokens(item, at)
        if not tokens:
            raise ValidationError(at, "is empty")
        reader = _Reader(tokens, at)
        entity, key = reader.identifier(EXPERIMENT_ATTRIBUTES)
        if entity != Entity.ATTRIBUTE or key not in EXPERIMENT_ATTRIBUTES:
            names = ", ".join(sorted(EXPERIMENT_ATTRIBUTES))
            raise ValidationError(at, f"experiments are ordered by {names}")
        ascending = not reader.word("DESC")
        if ascending:
            reader.word("ASC")
        extra = reader.peek()
        if extra is not None:
            raise reader.fail(extra, "expected nothing after ASC or DESC")
        out.append(OrderItem(entity, key, ascending))
    if len(out) > ORDER_BY_LIMIT:
        raise ValidationError(field, f"has {len(out)} items, the limit is {ORDER_BY_LIMIT}")
    return tuple(out)


def like_matches(value: str, pattern: str, *, ignore_case: bool = False) -> bool:
    """Whether `value` matches the LIKE `pattern` (% any run, _ one character)."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


def text_matches(value: str | None, op: str, expected: Value) -> bool:
    """A string clause (= != LIKE ILIKE IN NOT IN IS NULL IS NOT NULL) on one value, in
    Python; None is a missing value, which only IS NULL matches."""
    if op == "IS NULL":
        return value is None
    if value is None:
        return False
    if op == "IS NOT NULL":
        return True
    if op in ("IN", "NOT IN"):
        assert isinstance(expected, tuple)
        return (value in expected) == (op == "IN")
    assert isinstance(expected, str)
    if op == "=":
        return value == expected
    if op == "!=":
        return value != expected
    return like_matches(value, expected, ignore_case=op == "ILIKE")
