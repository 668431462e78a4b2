"""Names, keys and texts are checked for characters as well as length; metric values are
numbers or NaN/±Infinity and nothing else. Every refusal names the field; none changes
anything."""

import pytest

from tests.factories import make_run, make_version
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


# Each made a separate model that prints as "fraud-detector-...": invisible (default
# ignorable), bidi, Hangul filler and tag characters. Then a few of their kin: a bidi
# isolate, a Khmer inherent vowel, a variation selector beyond the BMP, private use, an
# unassigned code point, a noncharacter and a line separator.
LOOK_ALIKES = [
    "\u00ad",
    "\u061c",
    "\u180e",
    "\u034f",
    "\u115f",
    "\u3164",
    "\ufe0f",
    "\U000e0020",
    "\u2066",
    "\u1160",
    "\uffa0",
    "\u17b4",
    "\U000e0100",
    "\ue000",
    "\u0378",
    "\uffff",
    "\u2028",
]
NAMED = """
mutation($name: String!, $key: String!, $run: ID!) {
  createExperiment(input: {name: $name}) { __typename ... on InvalidInput { field } }
  registerModelVersion(input: {model: $name}) { __typename ... on InvalidInput { field } }
  startRun(input: {experiment: "exp", name: $name}) { __typename ... on InvalidInput { field } }
  setModelAlias(input: {model: "m", alias: $name, version: 1}) {
    __typename ... on InvalidInput { field }
  }
  createApiToken(input: {name: $name, role: READER}) { __typename ... on InvalidInput { field } }
  logParams(input: {runId: $run, params: [{key: $key, value: "1"}]}) {
    __typename ... on InvalidInput { field }
  }
  logMetrics(input: {runId: $run, points: [{key: $key, value: 1}]}) {
    __typename ... on InvalidInput { field }
  }
  setRunTags(input: {runId: $run, tags: [{key: $key, value: "v"}]}) {
    __typename ... on InvalidInput { field }
  }
}
"""
MODELS = "{ models { nodes { name } } }"


@pytest.mark.parametrize("char", LOOK_ALIKES, ids=[f"U+{ord(c):04X}" for c in LOOK_ALIKES])
async def test_a_name_or_key_with_an_invisible_or_look_alike_character_is_refused(gql, db, char):
    # given a model and a run to name things in
    await make_version(db, model="m")
    run = await make_run(db)
    before = await snapshot(db)

    # when every kind of name and key carries the character
    data = await gql(NAMED, name=f"fraud-detector-{char}", key=f"loss{char}", run=run.id)

    # then each is refused, naming its field, and nothing is made
    assert {root: (p["__typename"], p.get("field")) for root, p in data.items()} == {
        "createExperiment": ("InvalidInput", "name"),
        "registerModelVersion": ("InvalidInput", "model"),
        "startRun": ("InvalidInput", "name"),
        "setModelAlias": ("InvalidInput", "alias"),
        "createApiToken": ("InvalidInput", "name"),
        "logParams": ("InvalidInput", "params.key"),
        "logMetrics": ("InvalidInput", "points[0].key"),
        "setRunTags": ("InvalidInput", "tags.key"),
    }
    assert await snapshot(db) == before
    assert (await gql(MODELS))["models"]["nodes"] == [{"name": "m"}]


async def test_the_refusal_says_which_character_and_where(gql):
    payload = (await gql(CREATE, name="fraud-detector-\u3164"))["createExperiment"]
    assert payload == {
        "__typename": "InvalidInput",
        "field": "name",
        "message": "name: must not contain control, invisible, private-use or unassigned "
        "characters "
        "(U+3164 HANGUL FILLER at 15)",
    }


@pytest.mark.parametrize(
    "name",
    ["cafe\u0301", "naïve", "ロケット 🚀", "한국어 모델", "עברית", "مدل", "Ω-v2", "a\u00a0b"],
)
async def test_readable_scripts_marks_and_emoji_stay_welcome_in_names(gql, name):
    payload = (await gql(CREATE, name=name))["createExperiment"]
    assert payload["__typename"] == "CreateExperimentSuccess", name
