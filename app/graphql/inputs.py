"""What clients send: key/value pairs (how params and tags travel in both directions),
and the one rule every argument's text obeys, whatever field it goes to."""

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema.name_converter import NameConverter
from strawberry.types.base import StrawberryContainer, get_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.union import StrawberryUnion

from app.errors import ValidationError, check_storable, storable
from app.graphql.limits import charged

V = TypeVar("V", covariant=True)


@strawberry.type(description="A param or tag.")
class KeyValue:
    key: str
    value: str


@strawberry.input(description="A param or tag to set.")
class KeyValueInput:
    key: str
    value: str


class Pair(Protocol[V]):
    # Read-only, so a pair of a narrower value type is a Pair of the wider one.
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> V: ...


def to_dict(field: str, pairs: Iterable[Pair[V]] | None) -> dict[str, V]:
    """The pairs as a dict; a key given twice is refused rather than silently dropped."""
    out: dict[str, V] = {}
    for pair in pairs or ():
        if pair.key in out:
            raise ValidationError(field, f"key {pair.key!r} is given more than once")
        out[pair.key] = pair.value
    return out


def from_items(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> list[KeyValue]:
    pairs = items.items() if isinstance(items, Mapping) else items
    return charged([KeyValue(key=k, value=v) for k, v in sorted(pairs)])


# ---------------------------------------------------------------- text a database can hold

# The schema is built with auto_camel_case, as this converter's default: refusals name
# fields as the client wrote them.
_NAMES = NameConverter()
_PLAIN = frozenset({int, float, bool, type(None)})
_INPUT_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}

Path = list[str | int]


def _input_fields(kind: type) -> tuple[tuple[str, str], ...]:
    """(python name, GraphQL name) of each field of an input type; () for anything else."""
    fields = _INPUT_FIELDS.get(kind)
    if fields is None:
        definition = get_object_definition(kind)
        fields = tuple(
            (f.python_name, _NAMES.from_field(f))
            for f in (definition.fields if definition is not None and definition.is_input else ())
        )
        _INPUT_FIELDS[kind] = fields
    return fields


def _unstorable(value: Any) -> tuple[Path, str] | None:
    """The first text in `value` a database cannot hold, and its path (innermost first),
    looking through input objects and lists."""
    kind = type(value)
    if kind is str:
        return None if storable(value) else ([], value)
    if kind is list:
        for i, item in enumerate(value):
            # Packed metric values and steps: thousands of numbers, nothing to look at.
            if type(item) in _PLAIN:
                continue
            found = _unstorable(item)
            if found is not None:
                found[0].append(i)
                return found
        return None
    if kind is dict:
        for key, item in value.items():
            found = _unstorable(key) or _unstorable(item)
            if found is not None:
                found[0].append(str(key) if storable(str(key)) else "key")
                return found
        return None
    for python_name, name in _input_fields(kind):
        found = _unstorable(getattr(value, python_name))
        if found is not None:
            found[0].append(name)
            return found
    return None


def _dotted(path: Path) -> str:
    out = ""
    for part in reversed(path):
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
    return out


class StorableText(FieldExtension):
    """Refuses a field's arguments when any text in them (input fields and list items
    included) cannot be stored: a lone surrogate fails in both database drivers, in a
    lookup as much as in a write. It runs as the arguments are converted, before the
    resolver, so a mutation answers with its InvalidInput payload and a query with an
    INVALID_INPUT error, each naming the field."""

    def apply(self, field: StrawberryField) -> None:
        self.arguments = {a.python_name: _NAMES.from_argument(a) for a in field.arguments}

    def map_arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        for python_name, value in kwargs.items():
            found = _unstorable(value)
            if found is not None:
                path, text = found
                name = self.arguments.get(python_name, python_name)
                # A mutation's one `input` argument goes unnamed, as in every refusal.
                if name != "input" or not path:
                    path.append(name)
                check_storable(_dotted(path), text)
        return kwargs


def _object_types(annotation: Any) -> Iterable[Any]:
    """The object types a field's type leads to, through lists, optionals and unions."""
    if isinstance(annotation, LazyType):
        annotation = annotation.resolve_type()
    if isinstance(annotation, StrawberryContainer):
        yield from _object_types(annotation.of_type)
    elif isinstance(annotation, StrawberryUnion):
        for member in annotation.types:
            yield from _object_types(member)
    elif (definition := get_object_definition(annotation)) is not None:
        yield definition


def refuse_unstorable_text(*types: type) -> None:
    """Give every field that takes arguments, on these types and every type reachable
    from them, its StorableText (once; the types are module-level). Nested fields count:
    `versionAt(alias)` is as much a lookup as `model(name)`."""
    seen: set[int] = set()
    pending = [get_object_definition(t, strict=True) for t in types]
    while pending:
        definition = pending.pop()
        if id(definition) in seen:
            continue
        seen.add(id(definition))
        for field in definition.fields:
            if field.arguments and not any(isinstance(e, StorableText) for e in field.extensions):
                field.extensions.append(StorableText())
            pending.extend(_object_types(field.type))
