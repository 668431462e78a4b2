"""Requests too deep, too aliased, too long, too costly or too large are refused before
they run, with the limit named; fragments hide nothing; the limits are settings and keep
the validation cache working."""

import itertools

from graphql import get_introspection_query

from app.graphql import limits
from tests.factories import make_run

HUGE = """
{ experiments(first: 500) { nodes { runs(first: 500) { nodes {
    metricHistory(key: "loss") { nodes { value } } } } } } }
"""
FINE = """
{ experiments(first: 10) { nodes { runs(first: 20) { nodes {
    metricHistory(key: "loss", first: 1000) { nodes { value } } } } } } }
"""
HIDDEN_COST = """
{ experiments(first: 500) { nodes { ...Runs } } }
fragment Runs on Experiment { runs(first: 500) { nodes { ...History } } }
fragment History on Run { metricHistory(key: "loss") { nodes { value } } }
"""
DEEP = (
    "{ models { nodes { "
    + "versions { nodes { run { modelVersions { model { " * 3
    + "name"
    + " } } } } }" * 3
    + " } } }"
)
# The same depth, five levels at a time inside fragments that spread each other.
HIDDEN_DEPTH = """
{ models { nodes { ...A } } }
fragment A on RegisteredModel { versions { nodes { run { modelVersions { model { ...B } } } } } }
fragment B on RegisteredModel { versions { nodes { run { modelVersions { model { ...C } } } } } }
fragment C on RegisteredModel { versions { nodes { run { modelVersions { model { name } } } } } }
"""
DEEP_INTROSPECTION = (
    "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
)
_unique = itertools.count()


async def refusal(gql, query: str, code: str) -> dict:
    """The error with `code` among those a refused request got (every broken limit is
    reported)."""
    body = await gql.raw(query)
    assert body.get("data") is None, body
    found = [e for e in body["errors"] if (e.get("extensions") or {}).get("code") == code]
    assert found, body["errors"]
    return found[0]


async def test_a_query_that_could_return_too_many_objects_is_refused(gql):
    error = await refusal(gql, HUGE, "QUERY_TOO_COSTLY")
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["limit"] == 500_000
    assert error["extensions"]["cost"] > 500_000
    assert "smaller pages" in error["message"]


async def test_a_query_within_the_cost_limit_runs(gql):
    data = await gql(FINE)
    assert data["experiments"]["nodes"][0]["runs"]["nodes"] == []


async def test_fragments_do_not_hide_cost_or_depth(gql):
    await refusal(gql, HIDDEN_COST, "QUERY_TOO_COSTLY")
    await refusal(gql, HIDDEN_DEPTH, "QUERY_TOO_DEEP")


async def test_a_query_too_deep_is_refused_naming_the_limit(gql):
    error = await refusal(gql, DEEP, "QUERY_TOO_DEEP")
    assert error["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 12}
    assert "12 levels" in error["message"]


async def test_too_many_aliases_are_refused_even_through_a_fragment(gql):
    direct = "{ " + " ".join(f"a{i}: experiments {{ nodes {{ name }} }}" for i in range(31)) + " }"
    assert (await gql.error(direct))["extensions"] == {"code": "TOO_MANY_ALIASES", "limit": 30}
    # 4 aliases in a fragment spread 8 times: 32 aliased fields
    spreads = " ".join(f'e{i}: experiment(name: "x") {{ ...F }}' for i in range(8))
    fragment = "fragment F on Experiment { a: name b: name c: name d: name }"
    error = await gql.error("{ " + spreads + " } " + fragment)
    assert error["extensions"]["code"] == "TOO_MANY_ALIASES"


async def test_a_document_with_too_many_tokens_is_refused_before_parsing_ends(gql):
    query = "{ " + " ".join("__typename" for _ in range(6_000)) + " }"
    error = await gql.error(query)
    assert error["extensions"] == {"code": "TOO_MANY_TOKENS", "limit": 5_000}


async def test_the_standard_introspection_query_runs_and_a_nested_one_is_refused(gql):
    data = await gql(get_introspection_query())
    assert any(t["name"] == "ModelVersion" for t in data["__schema"]["types"])
    error = await refusal(gql, DEEP_INTROSPECTION, "INTROSPECTION_TOO_DEEP")
    assert error["extensions"]["limit"] == 3


async def test_introspection_can_be_turned_off(app_with):
    async with app_with(introspection=False) as gql:
        body = await gql.raw("{ __schema { types { name } } }")
        assert body["data"] is None
        assert "introspection has been disabled" in body["errors"][0]["message"]
        # __typename is not introspection of the schema: clients need it for unions
        assert await gql("{ viewer { __typename name } }") == {
            "viewer": {"__typename": "Viewer", "name": "test-admin"}
        }


async def test_each_limit_is_a_setting(app_with):
    settings = {
        "max_query_depth": 3,
        "max_query_aliases": 1,
        "max_query_tokens": 20,
        "max_query_cost": 10,
    }
    async with app_with(**settings) as gql:
        deep = "{ models { nodes { versions { nodes { version } } } } }"
        assert (await refusal(gql, deep, "QUERY_TOO_DEEP"))["extensions"]["limit"] == 3
        aliased = "{ a: viewer { name } b: viewer { name } }"
        assert (await gql.error(aliased))["extensions"]["limit"] == 1
        costly = "{ experiments(first: 11) { nodes { name } } }"
        assert (await refusal(gql, costly, "QUERY_TOO_COSTLY"))["extensions"]["limit"] == 10
        long = "{ " + "__typename " * 30 + "}"
        assert (await gql.error(long))["extensions"] == {"code": "TOO_MANY_TOKENS", "limit": 20}


async def test_the_limits_keep_the_validation_cache_hitting(gql, monkeypatch):
    # given a query this process has never validated
    walks = []
    original = limits._Walk.__init__

    def counting(self, *args, **kwargs):
        walks.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(limits._Walk, "__init__", counting)
    query = f"{{ experiments(first: {next(_unique) + 1}) {{ nodes {{ name }} }} }}"

    # when it is sent three times
    for _ in range(3):
        await gql(query)

    # then the limits were computed once: the later requests hit the validation cache
    assert len(walks) == 1


async def test_a_body_over_the_limit_is_a_413_naming_it(app_with):
    async with app_with(max_body_bytes=1_000) as gql:
        padding = "x" * 2_000
        query = f'{{ experiment(name: "{padding}") {{ name }} }}'
        response = await gql.client.post("/graphql", json={"query": query})
        assert response.status_code == 413
        assert response.json()["errors"][0]["extensions"] == {
            "code": "REQUEST_TOO_LARGE",
            "limit": 1_000,
        }

        # the same without a Content-Length (a chunked upload) is cut off as it streams
        async def chunks():
            for _ in range(20):
                yield b" " * 100

        chunked = await gql.client.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413


async def test_the_metric_batch_limit_is_a_setting(app_with, db):
    async with app_with(max_metric_batch=5) as gql:
        run = await gql(
            'mutation { startRun(input: {experiment: "e"}) { ... on StartRunSuccess { run { id } } } }'
        )
        run_id = run["startRun"]["run"]["id"]
        data = await gql(
            """mutation($run: ID!) { logMetrics(input: {runId: $run,
                 series: [{key: "a", values: [1, 2, 3, 4, 5, 6]}]}) {
                 __typename ... on InvalidInput { field limit } } }""",
            run=run_id,
        )
    assert data["logMetrics"] == {"__typename": "InvalidInput", "field": "points", "limit": 5}


def doubling(levels: int, leaf: str) -> str:
    """Each fragment spreads the next twice: 2**levels leaves once expanded."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ {leaf} }}"


async def test_nested_fragment_spreads_are_counted_without_expanding_them_each_time(gql):
    # given documents whose fragments, expanded, would be 2**40 fields
    # when they are sent, then they are answered (the count is done once per fragment):
    # without aliases the fields merge and the query is cheap; with one, 2**40 aliases
    assert await gql(doubling(40, "__typename")) == {"__typename": "Query"}
    error = await refusal(gql, doubling(40, "a: __typename"), "TOO_MANY_ALIASES")
    assert error["extensions"]["limit"] == 30


async def test_a_long_document_is_refused_before_it_is_parsed_or_cached(app_with):
    async with app_with(max_query_bytes=1_000) as gql:
        padded = "# " + "x" * 2_000 + "\n{ viewer { name } }"
        error = await gql.error(padded)
        assert error["extensions"] == {"code": "QUERY_TOO_LARGE", "limit": 1_000}
        # the same query, short, runs; variables are not part of the document
        query = "query($n: String!) { experiment(name: $n) { name } }"
        assert await gql(query, n="y" * 5_000) == {"experiment": None}


async def test_lists_without_first_are_counted_as_they_resolve(app_with, db):
    # given a run with 50 metrics: validation prices a run's metrics at 10
    run = await make_run(db, metrics={f"m{i}": float(i) for i in range(50)})
    fields = " ".join(f'a{i}: run(id: "{run.id}") {{ metrics {{ key }} }}' for i in range(5))
    async with app_with(max_query_cost=100) as gql:
        # when a query passes validation (5 x 11 = 55) but would return 5 x 50 metrics
        body = await gql.raw(f"{{ {fields} }}")
        # then it is stopped with the same code, the limit named
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"QUERY_TOO_COSTLY"}
        assert body["errors"][0]["extensions"]["limit"] == 100
        # and the budget is per operation: a smaller one still runs afterwards
        one = await gql(f'{{ run(id: "{run.id}") {{ metrics {{ key }} }} }}')
        assert len(one["run"]["metrics"]) == 50
