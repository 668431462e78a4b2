"""Text that cannot be stored (a lone UTF-16 surrogate, which JSON's "\\ud800" escape can
carry and no UTF-8 database can hold) is refused where it enters: every argument and
input field, lookups included, gives INVALID_INPUT naming the field (an InvalidInput
payload from a mutation, a top-level error from a query), never an internal error."""

import asyncio
import json
from typing import Any

import pytest

from app.auth.roles import Principal, Role
from app.graphql.inputs import StorableText
from app.graphql.schema import schema
from tests.conftest import subscription_context
from tests.factories import make_run, make_version
from tests.integrity import snapshot

BAD = "fraud\ud800"
EXPERIMENT = "query($name: String!) { experiment(name: $name) { name } }"
RUN = "<run>"

# (root field, document, variables, the field the refusal must name). RUN in a variable
# stands for a real run's id; BAD is where the unstorable text goes.
QUERIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("experiment", "query($s: String!) { experiment(name: $s) { name } }", {"s": BAD}, "name"),
    ("run", "query($s: ID!) { run(id: $s) { id } }", {"s": BAD}, "id"),
    (
        "runs",
        "query($s: String!) { runs(experiment: $s) { nodes { id } } }",
        {"s": BAD},
        "experiment",
    ),
    (
        "runs.filter",
        """query($s: String!) {
             runs(experiment: "exp", filter: {params: [{key: "k", value: $s}]}) {
               nodes { id }
             }
           }""",
        {"s": BAD},
        "filter.params[0].value",
    ),
    (
        "bestRun",
        'query($s: String!) { bestRun(experiment: "exp", metric: $s) { id } }',
        {"s": BAD},
        "metric",
    ),
    ("model", "query($s: String!) { model(name: $s) { name } }", {"s": BAD}, "name"),
    (
        "modelVersion",
        "query($s: String!) { modelVersion(model: $s, version: 1) { version } }",
        {"s": BAD},
        "model",
    ),
    (
        "modelVersion.alias",
        'query($s: String!) { modelVersion(model: "m", alias: $s) { version } }',
        {"s": BAD},
        "alias",
    ),
    (
        "checkPromotion",
        "query($s: String!) { checkPromotion(model: $s, version: 1, stage: STAGING) { allowed } }",
        {"s": BAD},
        "model",
    ),
    ("events", "query($s: String) { events(model: $s) { nodes { cursor } } }", {"s": BAD}, "model"),
    (
        "experiments.after",
        "query($s: String) { experiments(after: $s) { nodes { name } } }",
        {"s": BAD},
        "after",
    ),
    (
        "versionAt",
        """query($s: String) {
             model(name: "m") { versionAt(at: "2030-01-01T00:00:00Z", alias: $s) { version } }
           }""",
        {"s": BAD},
        "alias",
    ),
    (
        "Run.metric",
        "query($r: ID!, $s: String!) { run(id: $r) { metric(key: $s) { value } } }",
        {"r": RUN, "s": BAD},
        "key",
    ),
    (
        "Run.metricHistory",
        "query($r: ID!, $s: String!) { run(id: $r) { metricHistory(key: $s) { nodes { step } } } }",
        {"r": RUN, "s": BAD},
        "key",
    ),
    (
        "ModelVersion.validationHistory",
        """query($s: String) {
             modelVersion(model: "m", version: 1) { validationHistory(check: $s) { status } }
           }""",
        {"s": BAD},
        "check",
    ),
]

MUTATIONS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "logParams.runId",
        'mutation($s: ID!) { logParams(input: {runId: $s, params: [{key: "k", value: "v"}]})'
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "runId",
    ),
    (
        "logParams.value",
        "mutation($r: ID!, $p: [KeyValueInput!]!) { logParams(input: {runId: $r, params: $p})"
        " { __typename ... on InvalidInput { field } } }",
        {"r": RUN, "p": [{"key": "k", "value": "v"}, {"key": "k2", "value": BAD}]},
        "params[1].value",
    ),
    (
        "revokeApiToken",
        "mutation($s: String!) { revokeApiToken(input: {name: $s})"
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "name",
    ),
    (
        "transitionModelVersion",
        "mutation($s: String!) {"
        " transitionModelVersion(input: {model: $s, version: 1, stage: STAGING})"
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "model",
    ),
    (
        "deleteModelAlias",
        'mutation($s: String!) { deleteModelAlias(input: {model: "m", alias: $s})'
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "alias",
    ),
    (
        "setModelAlias.idempotencyKey",
        "mutation($s: String!) { setModelAlias(input:"
        ' {model: "m", alias: "champion", version: 1, idempotencyKey: $s})'
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "idempotencyKey",
    ),
    (
        "endRun",
        "mutation($s: ID!) { endRun(input: {runId: $s}) { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "runId",
    ),
    (
        "createExperiment",
        "mutation($s: String!) { createExperiment(input: {name: $s})"
        " { __typename ... on InvalidInput { field } } }",
        {"s": BAD},
        "name",
    ),
]


async def post(client, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    # httpx's json= would refuse to encode a lone surrogate; json.dumps escapes it as a
    # client's JSON library does, so the server gets the six characters "\ud800".
    body = json.dumps({"query": document, "variables": variables})
    response = await client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def seed(db) -> str:
    run = await make_run(db, experiment="exp", metrics={"acc": 0.9})
    await make_version(db, model="m", run_id=run.id)
    return run.id


def with_run(variables: dict[str, Any], run_id: str) -> dict[str, Any]:
    return {k: run_id if v == RUN else v for k, v in variables.items()}


@pytest.mark.parametrize(
    ("document", "variables", "field"), [c[1:] for c in QUERIES], ids=[c[0] for c in QUERIES]
)
async def test_a_lookup_with_unstorable_text_is_invalid_input(
    client, db, document, variables, field
):
    # given
    run_id = await seed(db)

    # when
    body = await post(client, document, with_run(variables, run_id))

    # then
    assert len(body.get("errors") or []) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT", error
    assert error["extensions"]["field"] == field, error
    assert "surrogate" in error["message"]


@pytest.mark.parametrize(
    ("document", "variables", "field"), [c[1:] for c in MUTATIONS], ids=[c[0] for c in MUTATIONS]
)
async def test_a_mutation_with_unstorable_text_is_refused_and_changes_nothing(
    client, db, document, variables, field
):
    # given
    run_id = await seed(db)
    before = await snapshot(db)

    # when
    body = await post(client, document, with_run(variables, run_id))

    # then
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    assert payload == {"__typename": "InvalidInput", "field": field}
    assert await snapshot(db) == before


async def test_a_pair_of_surrogates_is_one_character_and_welcome(client, gql):
    # A surrogate pair in JSON ("\ud83d\ude00") decodes to one character, U+1F600.
    body = await post(
        client,
        "mutation($s: String!) { createExperiment(input: {name: $s}) { __typename } }",
        {"s": "smile \ud83d\ude00"},
    )
    assert body["data"]["createExperiment"]["__typename"] == "CreateExperimentSuccess"
    assert (await gql(EXPERIMENT, name="smile \U0001f600"))["experiment"] is not None


@pytest.mark.parametrize(
    "document",
    [
        "subscription($s: String) { lifecycleEvents(model: $s) { cursor } }",
        "subscription($s: ID!) { runMetrics(runId: $s) { points { key } } }",
    ],
)
async def test_a_subscription_with_unstorable_text_is_invalid_input(app, document):
    context = subscription_context(app, Principal(name="watcher", role=Role.READER))
    stream = await schema.subscribe(document, variable_values={"s": BAD}, context_value=context)
    # Bounded so that a watcher left waiting (the refusal missing) fails instead of hanging.
    result = await asyncio.wait_for(stream.__anext__(), 30)
    assert result.errors[0].extensions["code"] == "INVALID_INPUT"
    assert result.errors[0].extensions["field"] in ("model", "runId")
    await stream.aclose()


def test_every_field_that_takes_arguments_refuses_unstorable_text():
    # A field added later, on any type, is covered without anyone remembering to.
    unguarded = [
        f"{type_name}.{name}"
        for type_name, graphql_type in schema._schema.type_map.items()
        if not type_name.startswith("__")
        for name, field in (getattr(graphql_type, "fields", None) or {}).items()
        if getattr(field, "args", None)
        and not any(
            isinstance(e, StorableText)
            for e in field.extensions["strawberry-definition"].extensions
        )
    ]
    assert unguarded == []
