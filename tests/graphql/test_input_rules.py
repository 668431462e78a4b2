"""Names, keys and texts are checked for characters as well as length; metric values are
numbers or NaN/±Infinity and nothing else. Every refusal names the field; none changes
anything."""

import pytest

from tests.factories import make_run
from tests.integrity import snapshot

CREATE = """
mutation($name: String!, $description: String) {
  createExperiment(input: {name: $name, description: $description}) {
    __typename ... on InvalidInput { field message }
  }
}
"""
REGISTER = """
mutation($model: String!, $tags: [KeyValueInput!]) {
  registerModelVersion(input: {model: $model, tags: $tags}) {
    __typename ... on InvalidInput { field message }
  }
}
"""
PARAMS = """
mutation($run: ID!, $key: String!) {
  logParams(input: {runId: $run, params: [{key: $key, value: "1"}]}) {
    __typename ... on InvalidInput { field message }
  }
}
"""
POINTS = """
mutation($run: ID!, $key: String!, $value: MetricValue!) {
  logMetrics(input: {runId: $run, points: [{key: $key, value: $value}]}) {
    __typename ... on InvalidInput { field message }
  }
}
"""


@pytest.mark.parametrize(
    "name",
    [
        "tab\there",
        "line\nbreak",
        "escape\x1b[31m",
        " leading",
        "trailing ",
        "bidi\u202eevil",
        "zero\u200bwidth",
        "del\x7f",
    ],
)
async def test_a_name_with_control_invisible_or_surrounding_characters_is_refused(gql, db, name):
    before = await snapshot(db)
    for query, variables, field in (
        (CREATE, {"name": name}, "name"),
        (REGISTER, {"model": name}, "model"),
    ):
        payload = next(iter((await gql(query, **variables)).values()))
        assert payload["__typename"] == "InvalidInput", name
        assert payload["field"] == field
    assert await snapshot(db) == before


async def test_names_may_be_any_readable_text(gql):
    for name in ("fraud detection (v2)", "Klassifikation: Betrug", "实验", "a/b:c"):
        payload = (await gql(CREATE, name=name))["createExperiment"]
        assert payload["__typename"] == "CreateExperimentSuccess", name


async def test_descriptions_keep_line_breaks_but_not_control_characters(gql):
    ok = await gql(CREATE, name="e1", description="line one\nline two\ttabbed")
    assert ok["createExperiment"]["__typename"] == "CreateExperimentSuccess"
    bad = (await gql(CREATE, name="e2", description="bell\x07"))["createExperiment"]
    assert bad == {
        "__typename": "InvalidInput",
        "field": "description",
        "message": "description: must not contain control characters (U+0007 at 4)",
    }


@pytest.mark.parametrize("key", ["a;b", "semi'quote", "../up", "/absolute", "a//b", "./here"])
async def test_a_key_outside_mlflows_alphabet_or_a_strange_path_is_refused(gql, db, key):
    run = await make_run(db)
    before = await snapshot(db)
    params = (await gql(PARAMS, run=run.id, key=key))["logParams"]
    points = (await gql(POINTS, run=run.id, key=key, value=1.0))["logMetrics"]
    tags = await gql(REGISTER, model="m", tags=[{"key": key, "value": "v"}])
    assert (params["__typename"], params["field"]) == ("InvalidInput", "params.key")
    assert (points["__typename"], points["field"]) == ("InvalidInput", "points[0].key")
    assert tags["registerModelVersion"]["field"] == "tags.key"
    assert await snapshot(db) == before


async def test_mlflow_style_keys_are_accepted(gql, db):
    run = await make_run(db)
    for key in ("mlflow.source.name", "train/loss", "val loss", "a-b_c:d", "Genauigkeit"):
        assert (await gql(PARAMS, run=run.id, key=key))["logParams"]["__typename"] == (
            "LogParamsSuccess"
        )


@pytest.mark.parametrize("value", [True, "nan", "inf", "1.5", None, [1.0], {"v": 1}])
async def test_a_metric_value_is_a_number_or_nan_or_infinity_and_nothing_else(gql, db, value):
    run = await make_run(db)
    before = await snapshot(db)
    body = await gql.raw(POINTS, run=run.id, key="acc", value=value)
    assert body.get("data") is None
    assert "MetricValue" in body["errors"][0]["message"] or "null" in body["errors"][0]["message"]
    assert await snapshot(db) == before


@pytest.mark.parametrize("value", [0, -1.5, 1e308, "NaN", "Infinity", "-Infinity"])
async def test_numbers_and_the_three_non_finite_words_are_metric_values(gql, db, value):
    run = await make_run(db)
    assert (await gql(POINTS, run=run.id, key="acc", value=value))["logMetrics"][
        "__typename"
    ] == "LogMetricsSuccess"
