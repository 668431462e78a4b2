"""Validation cannot hold the event loop: our cheap limits (size, depth, aliases, cost,
fields) refuse a document before graphql-core's rules see it, the one quadratic rule runs
on a bounded budget, and every refusal carries `extensions.code`."""

import itertools

import pytest
from graphql.validation import OverlappingFieldsCanBeMergedRule

from app.graphql import limits
from tests.graphql.test_limits import DEEP

_unique = itertools.count(1)


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the documents graphql-core's OverlappingFieldsCanBeMerged rule is built for
    (once per validation that runs it)."""
    built: list[int] = []
    original = OverlappingFieldsCanBeMergedRule.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(OverlappingFieldsCanBeMergedRule, "__init__", counting)
    return built


def repeated(times: int, selection: str) -> str:
    return "{" + selection * times + "}"


def codes(body: dict) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body["errors"]]


async def test_a_costly_document_of_repeated_selections_is_refused_before_merging(gql, merges):
    # given the ~14 KB READER document that used to spend seconds in the merge rule:
    # ~270 repeated selections, the page size new for each document (no cache hit)
    first = 400 + next(_unique)
    query = repeated(270, f"experiments(first:{first}){{nodes{{runs{{nodes{{id}}}}}}}}")
    assert len(query) > 12_000

    # when it is sent
    body = await gql.raw(query)

    # then it is refused by the cost limit (and the field count), and the merge rule
    # never ran for it
    assert body.get("data") is None
    assert set(codes(body)) == {"QUERY_TOO_COSTLY", "TOO_MANY_FIELDS"}
    assert merges == []


async def test_a_cheap_document_of_too_many_fields_is_refused_before_merging(gql, merges):
    # given the same shape with tiny pages: within depth, aliases and cost
    first = next(_unique)
    query = repeated(200, f"experiments(first:{first}){{nodes{{runs(first:1){{nodes{{id}}}}}}}}")

    # when it is sent, then the field count refuses it, naming the limit
    body = await gql.raw(query)
    assert body.get("data") is None
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "TOO_MANY_FIELDS", "limit": 500, "fields": 1000}
    ]
    assert merges == []


async def test_a_document_within_the_limits_is_validated_in_full(gql, merges):
    # given a document the cheap limits let through, with a real conflict in it
    body = await gql.raw(
        "{ experiments(first: 1) { nodes { id } } experiments(first: 2) { nodes { id } } }"
    )

    # then graphql-core's rules ran and reported it, coded
    assert merges == [1]
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "conflict" in body["errors"][0]["message"]


async def test_merging_runs_on_a_budget_that_is_refused_with_a_code(app_with, merges):
    # given the field limit raised far past the merge budget
    async with app_with(max_query_fields=10_000) as gql:
        # when a document of ~1,000 identical fields (half a million comparisons) is sent
        body = await gql.raw("{ viewer { " + "name " * 1_000 + "} }")

    # then the merge rule gave up at its budget, and the refusal says so with a code
    assert merges == [1]
    assert body.get("data") is None
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "QUERY_TOO_COMPLEX", "limit": limits.MERGE_BUDGET}
    ]
    assert "Validation aborted" not in body["errors"][0]["message"]


async def test_too_many_validation_errors_are_refused_with_a_code(gql):
    # given a document with 150 unknown fields (graphql-core stops at 100 errors)
    body = await gql.raw("{ viewer { " + " ".join(f"nope{i}" for i in range(150)) + " } }")

    # then every error has a code, the last one naming the limit
    assert body.get("data") is None
    assert len(body["errors"]) == 101
    assert set(codes(body)[:100]) == {"GRAPHQL_VALIDATION_FAILED"}
    assert body["errors"][-1]["extensions"] == {"code": "TOO_MANY_ERRORS", "limit": 100}


REFUSALS = {
    "syntax": "{ viewer { name }",
    "unknown field": "{ viewr { name } }",
    "unknown argument": "{ experiments(frist: 1) { nodes { id } } }",
    "bad literal": '{ experiments(first: "ten") { nodes { id } } }',
    "missing variable": "query($n: String!) { experiment(name: $n) { name } }",
    "unknown variable type": "query($n: Strin) { experiment(name: $n) { name } }",
    "unknown fragment": "{ ...Nope }",
    "unused fragment": "{ viewer { name } } fragment F on Query { viewer { name } }",
    "fragment cycle": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    "depth": DEEP,
    "aliases": "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(31)) + " }",
    "tokens": "{ " + "__typename " * 6_000 + "}",
    "cost": "{ experiments(first: 500) { nodes { runs(first: 500) { nodes { params { key } } } } } }",
    "fields": "{ viewer { " + "name " * 600 + "} }",
    "too many errors": "{ viewer { " + " ".join(f"x{i}" for i in range(120)) + " } }",
    "introspection": "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
    "size": "# " + "x" * 100_001 + "\n{ viewer { name } }",
}


@pytest.mark.parametrize("name", REFUSALS)
async def test_every_refusal_carries_a_code(gql, name):
    # when a request that must be refused is sent
    body = await gql.raw(REFUSALS[name])

    # then it is refused, and every error says which refusal it is
    assert body.get("data") is None, body
    assert body["errors"], body
    assert None not in codes(body), body["errors"]


async def test_a_variable_of_the_wrong_type_is_refused_with_a_code(gql):
    body = await gql.raw("query($n: String!) { experiment(name: $n) { name } }", n=5)
    assert body.get("data") is None, body
    assert None not in codes(body), body["errors"]
