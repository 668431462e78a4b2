"""One rule for mutation results: every payload union carries the refusals any mutation can
meet, and every code a client can be given is a member of the ErrorCode enum."""

import re
from pathlib import Path

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLUnionType

import app
from app.errors import DomainError, ErrorCode
from app.graphql.schema import schema

# Refusals any write can meet: bad input, a concurrent writer (the database's own
# constraints and deadlocks come back as Conflict), a token without the role.
EVERY_MUTATION = {"InvalidInput", "Conflict", "PermissionDenied"}
# Mutations whose input names nothing that must already exist (a missing experiment is
# created by startRun). Every other mutation looks something up and can meet NotFound.
LOOKS_NOTHING_UP = {"createExperiment", "startRun", "createApiToken"}
# Mutations that create a thing under a name the caller chooses.
CREATES_NAMED = {"createExperiment", "createApiToken"}


def mutation_unions() -> dict[str, set[str]]:
    mutation = schema._schema.mutation_type
    assert mutation is not None
    unions = {}
    for name, field in mutation.fields.items():
        output = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        assert isinstance(output, GraphQLUnionType), f"{name} returns {output}, not a union"
        unions[name] = {t.name for t in output.types}
    return unions


def test_every_mutation_payload_holds_the_refusals_any_mutation_can_meet():
    # given every Mutation field of the built schema
    unions = mutation_unions()
    assert len(unions) > 10

    # then each returns a union of its success type and the refusals it can meet
    missing = {}
    for name, members in unions.items():
        expected = set(EVERY_MUTATION)
        if name not in LOOKS_NOTHING_UP:
            expected.add("NotFound")
        if name in CREATES_NAMED:
            expected.add("AlreadyExists")
        if not expected <= members:
            missing[name] = sorted(expected - members)
    assert not missing, missing


def test_every_payload_union_is_named_after_its_mutation_with_one_success_type():
    mutation = schema._schema.mutation_type
    assert mutation is not None
    for name, field in mutation.fields.items():
        union = field.type.of_type
        pascal = name[0].upper() + name[1:]
        assert union.name == f"{pascal}Payload"
        assert [t.name for t in union.types if not t.interfaces] == [f"{pascal}Success"]


def domain_error_classes() -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    pending = [DomainError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_domain_error_code_is_an_error_code_member():
    # given every domain error class the application defines (the schema imports them all)
    classes = [c for c in domain_error_classes() if c is not DomainError]
    assert len(classes) >= 10

    # then each one's code is a member of the one enum of codes
    for cls in classes:
        assert isinstance(cls.code, ErrorCode), (cls, cls.code)


def test_error_code_is_a_graphql_enum_with_every_domain_and_request_code():
    enum = schema._schema.type_map["ErrorCode"]
    assert isinstance(enum, GraphQLEnumType)
    error = schema._schema.type_map["Error"]
    assert str(error.fields["code"].type) == "ErrorCode!"

    # every domain code is a value, and so is every code the GraphQL face writes itself
    assert {c.value for c in ErrorCode} <= set(enum.values)
    written = set()
    for path in Path(app.__file__).parent.rglob("*.py"):
        written |= set(re.findall(r"[\"']code[\"']: \"([A-Z_]+)\"", path.read_text()))
    assert written, "no literal codes found: the pattern no longer matches the source"
    assert written <= set(enum.values), sorted(written - set(enum.values))
