"""Searching registered models and versions with MLflow's filter grammar.

A filter is clauses joined by AND (no OR, no parentheses): `<key> <op> <value>`, where a
key is an attribute (`name`, or for versions also `run_id`, `source_path`,
`version_number`) or `tags.<key>` (also `tag.`); keys with other characters go in
backticks or double quotes (``tags.`mlflow.prompt.is_prompt` ``). Strings are quoted
('…' or "…"), numbers bare, IN takes a parenthesised list of strings.

Operators: `= != LIKE ILIKE` on names, sources and tags (LIKE's `%` and `_`, LIKE
case-sensitive, ILIKE not); `= != IN NOT IN` on run ids; `= != < <= > >=` on version
numbers. A tag clause `!=` also matches entries without the tag (so the clause MLflow's
client adds to every model search, ``tag.`mlflow.prompt.is_prompt` != 'true'``, keeps
untagged models); the other operators need the tag. Stages and aliases are not
searchable (`current_stage` is refused, as MLflow refuses it).

The parser is pure; the searches read the candidate rows (narrowed in SQL by an exact
name or run id when the filter has one), filter and order them here, and page by offset:
a registry holds thousands of entries, not millions. LIKE means what it means in run
search (app.tracking.filters.like_matches)."""

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.errors import ValidationError
from app.registry.models import ModelVersion, RegisteredModel
from app.tracking.filters import like_matches

FILTER_LIMIT = 10_000

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<backtick>`[^`]*`)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
    | (?P<word>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)
_TAG_PREFIXES = ("tags", "tag")
_ATTRIBUTE_PREFIXES = ("attributes", "attribute", "attr")


@dataclass(frozen=True)
class Clause:
    """One condition: an attribute (`tag` False) or a tag compared with a value."""

    key: str
    op: str
    value: str | float | tuple[str, ...]
    tag: bool = False


@dataclass(frozen=True)
class Grammar:
    """Which attributes a search knows and the operators each takes."""

    entity: str
    attributes: dict[str, tuple[str, ...]]
    numeric: frozenset[str] = frozenset()


TEXT_OPS = ("=", "!=", "LIKE", "ILIKE")
MODEL_GRAMMAR = Grammar("registered model", {"name": TEXT_OPS})
VERSION_GRAMMAR = Grammar(
    "model version",
    {
        "name": TEXT_OPS,
        "run_id": ("=", "!=", "IN", "NOT IN"),
        "source_path": TEXT_OPS,
        "version_number": ("=", "!=", "<", "<=", ">", ">="),
    },
    numeric=frozenset({"version_number"}),
)
TAG_OPS = TEXT_OPS


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if text[0] != "`" else body


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None or found.end() == at:
            raise ValidationError("filter", f"cannot parse {text[at:].strip()[:50]!r}")
        kind = found.lastgroup
        assert kind is not None, "every alternative is a named group"
        out.append((kind, found.group(kind)))
        at = found.end()
    return out


def parse(text: str | None, grammar: Grammar) -> list[Clause]:
    """The clauses of a filter (an empty or missing filter has none)."""
    if text is None or not text.strip():
        return []
    if len(text) > FILTER_LIMIT:
        raise ValidationError("filter", f"is {len(text)} characters, the limit is {FILTER_LIMIT}")
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise ValidationError("filter", "ends in the middle of a clause")
        i += 1
        return tokens[i - 1]

    while True:
        clauses.append(_clause(take, lambda: tokens[i] if i < len(tokens) else None, grammar))
        if i >= len(tokens):
            return clauses
        kind, word = take()
        if kind != "word" or word.upper() != "AND":
            raise ValidationError(
                "filter", f"Invalid clause(s) in filter string: {word!r} (only AND joins clauses)"
            )


def _clause(
    take: Callable[[], tuple[str, str]],
    peek: Callable[[], tuple[str, str] | None],
    grammar: Grammar,
) -> Clause:
    kind, text = take()
    if kind == "word" and text.endswith("."):
        quoted = peek()
        if quoted is None or quoted[0] not in ("backtick", "string"):
            raise ValidationError("filter", f"{text!r} needs a key after the dot")
        take()
        prefix, key = text[:-1], _unquote(quoted[1])
    elif kind == "word":
        prefix, _, key = text.partition(".") if "." in text else ("", "", text)
    elif kind in ("backtick", "string"):
        prefix, key = "", _unquote(text)
    else:
        raise ValidationError("filter", f"expected a key, found {text!r}")
    is_tag = prefix.lower() in _TAG_PREFIXES
    if prefix and not is_tag and prefix.lower() not in _ATTRIBUTE_PREFIXES:
        raise ValidationError(
            "filter", f"invalid entity type {prefix!r}; use tags.<key> or {_known(grammar)}"
        )
    kind, op = take()
    op = op.upper()
    if kind == "word" and op == "NOT":
        kind, nxt = take()
        op = f"NOT {nxt.upper()}"
    if op == "<>":
        op = "!="
    if kind not in ("op", "word"):
        raise ValidationError("filter", f"expected an operator after {key!r}, found {op!r}")
    if is_tag:
        allowed: tuple[str, ...] = TAG_OPS
    elif key in grammar.attributes:
        allowed = grammar.attributes[key]
    else:
        raise ValidationError(
            "filter",
            f"invalid attribute key {key!r} for a {grammar.entity} search; use {_known(grammar)} or tags.<key>",
        )
    if op not in allowed:
        raise ValidationError(
            "filter", f"{op!r} is not supported for {key!r}; use one of {', '.join(allowed)}"
        )
    return Clause(
        key=key,
        op=op,
        value=_value(take, op, key, key in grammar.numeric and not is_tag),
        tag=is_tag,
    )


def _known(grammar: Grammar) -> str:
    return ", ".join(grammar.attributes)


def _value(
    take: Callable[[], tuple[str, str]], op: str, key: str, numeric: bool
) -> str | float | tuple[str, ...]:
    kind, text = take()
    if op in ("IN", "NOT IN"):
        if text != "(":
            raise ValidationError("filter", f"{op} on {key!r} takes a list like ('a', 'b')")
        items: list[str] = []
        while True:
            kind, text = take()
            if kind != "string":
                raise ValidationError("filter", f"{op} on {key!r} takes quoted strings")
            items.append(_unquote(text))
            kind, text = take()
            if text == ")":
                return tuple(items)
            if text != ",":
                raise ValidationError("filter", f"expected ',' or ')' in the list for {key!r}")
    if numeric:
        if kind != "number":
            raise ValidationError("filter", f"{key!r} compares with a number, not {text!r}")
        return float(text)
    if kind != "string":
        raise ValidationError("filter", f"{key!r} compares with a quoted string, not {text!r}")
    return _unquote(text)


def holds(clause: Clause, actual: Any) -> bool:
    """Whether a value (None: the tag or attribute is missing) meets the clause."""
    op, want = clause.op, clause.value
    if actual is None:
        return op in ("!=", "NOT IN")
    if op in ("IN", "NOT IN"):
        assert isinstance(want, tuple)
        return (str(actual) in want) == (op == "IN")
    if isinstance(want, float):
        number = float(actual)
        return {
            "=": number == want,
            "!=": number != want,
            "<": number < want,
            "<=": number <= want,
            ">": number > want,
            ">=": number >= want,
        }[op]
    text = str(actual)
    assert isinstance(want, str)
    if op == "=":
        return text == want
    if op == "!=":
        return text != want
    return like_matches(text, want, ignore_case=op == "ILIKE")


# ---------------------------------------------------------------- ordering


@dataclass(frozen=True)
class Order:
    key: str
    descending: bool


_MODEL_ORDER = {
    "name": "name",
    "timestamp": "created_at",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}
_VERSION_ORDER = {
    "name": "name",
    "version_number": "version",
    "creation_timestamp": "created_at",
    "timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}


def parse_order(items: Sequence[str] | None, known: dict[str, str]) -> list[Order]:
    """`["name ASC", "last_updated_timestamp DESC"]` as orderings of known fields."""
    out: list[Order] = []
    for item in items or ():
        parts = item.split()
        if not parts or len(parts) > 2:
            raise ValidationError("order_by", f"cannot parse {item!r}")
        key = parts[0].removeprefix("attributes.").removeprefix("attribute.")
        if key not in known:
            raise ValidationError(
                "order_by", f"invalid order_by key {parts[0]!r}; use one of {', '.join(known)}"
            )
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise ValidationError("order_by", f"{direction!r} is neither ASC nor DESC")
        out.append(Order(known[key], direction == "DESC"))
    return out


def _sort(rows: list[Any], orders: Sequence[Order], value: Callable[[Any, str], Any]) -> None:
    # Stable sorts from the last key to the first give the combined order.
    for order in reversed(orders):
        key = order.key
        rows.sort(key=functools.partial(_by, value, key), reverse=order.descending)


def _by(value: Callable[[Any, str], Any], key: str, row: Any) -> Any:
    return value(row, key)


def _page(rows: list[Any], offset: int, limit: int) -> tuple[list[Any], int | None]:
    page = rows[offset : offset + limit]
    return page, (offset + limit if offset + limit < len(rows) else None)


# ---------------------------------------------------------------- searches


def _exact(clauses: Sequence[Clause], key: str) -> list[str] | None:
    for c in clauses:
        if not c.tag and c.key == key and c.op == "=" and isinstance(c.value, str):
            return [c.value]
        if not c.tag and c.key == key and c.op == "IN" and isinstance(c.value, tuple):
            return list(c.value)
    return None


async def search_models(
    session: AsyncSession,
    *,
    filter: str | None,
    order_by: Sequence[str] | None,
    offset: int,
    limit: int,
) -> tuple[list[RegisteredModel], int | None]:
    """Models meeting the filter, ordered (default by name), from `offset`; and the
    offset of the next page, if there is one."""
    clauses = parse(filter, MODEL_GRAMMAR)
    orders = [*parse_order(order_by, _MODEL_ORDER), Order("name", False)]
    stmt = select(RegisteredModel)
    names = _exact(clauses, "name")
    if names is not None:
        stmt = stmt.where(col(RegisteredModel.name).in_(names))
    rows = [
        m
        for m in (await session.execute(stmt)).scalars()
        if all(holds(c, (m.tags or {}).get(c.key) if c.tag else m.name) for c in clauses)
    ]
    _sort(rows, orders, getattr)
    return _page(rows, offset, limit)


async def search_versions(
    session: AsyncSession,
    *,
    filter: str | None,
    order_by: Sequence[str] | None,
    offset: int,
    limit: int,
) -> tuple[list[tuple[str, ModelVersion]], int | None]:
    """(model name, version) pairs meeting the filter, ordered (default by name, then
    newest version first), from `offset`; and the offset of the next page, if any."""
    clauses = parse(filter, VERSION_GRAMMAR)
    orders = [
        *parse_order(order_by, _VERSION_ORDER),
        Order("name", False),
        Order("version", True),
    ]
    stmt = select(col(RegisteredModel.name), ModelVersion).join(
        RegisteredModel, col(RegisteredModel.id) == col(ModelVersion.model_id)
    )
    names = _exact(clauses, "name")
    if names is not None:
        stmt = stmt.where(col(RegisteredModel.name).in_(names))
    runs = _exact(clauses, "run_id")
    if runs is not None:
        stmt = stmt.where(col(ModelVersion.run_id).in_(runs))

    def attribute(name: str, v: ModelVersion, key: str) -> Any:
        return {
            "name": name,
            "run_id": v.run_id,
            "source_path": v.source,
            "version_number": v.version,
        }[key]

    rows = [
        (name, v)
        for name, v in (await session.execute(stmt)).all()
        if all(
            holds(c, (v.tags or {}).get(c.key) if c.tag else attribute(name, v, c.key))
            for c in clauses
        )
    ]

    def value(row: tuple[str, ModelVersion], key: str) -> Any:
        return row[0] if key == "name" else getattr(row[1], key)

    _sort(rows, orders, value)
    return _page(rows, offset, limit)
