"""Queries too deep, too aliased or too large are refused before they run."""

HUGE = """
{ experiments(first: 500) { nodes { runs(first: 500) { nodes {
    metricHistory(key: "loss") { nodes { value } } } } } } }
"""
FINE = """
{ experiments(first: 10) { nodes { runs(first: 20) { nodes {
    metricHistory(key: "loss", first: 1000) { nodes { value } } } } } } }
"""
DEEP = (
    "{ models { nodes { "
    + "versions { nodes { run { modelVersions { model { " * 3
    + "name"
    + " } } } } }" * 3
    + " } } }"
)


async def test_a_query_that_could_return_too_many_items_is_refused(gql):
    error = await gql.error(HUGE)
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    assert "smaller pages" in error["message"]


async def test_a_query_within_the_item_limit_runs(gql):
    data = await gql(FINE)
    assert data["experiments"]["nodes"][0]["runs"]["nodes"] == []


async def test_a_query_too_deep_is_refused(gql):
    body = await gql.raw(DEEP)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused(gql):
    query = "{ " + " ".join(f"a{i}: experiments {{ nodes {{ name }} }}" for i in range(31)) + " }"
    body = await gql.raw(query)
    assert "aliases" in body["errors"][0]["message"].lower()
