"""Reading the registry over HTTP: models, versions, aliases, the audit trail, pagination."""

import base64
import json
from datetime import datetime

import pytest

from app.registry import catalog
from app.registry.stages import Stage
from tests.conftest import ADMIN
from tests.factories import make_run, make_version

MODELS = """
query Models($first: Int, $after: String) {
  models(first: $first, after: $after) {
    edges { cursor node { name } }
    nodes { name }
    pageInfo { hasNextPage endCursor }
  }
}
"""

MODEL = """
query Model($name: String!) {
  model(name: $name) {
    name
    description
    tags { key value }
    createdAt
    updatedAt
    productionVersion { version stage }
    latestVersion { version stage }
    latestStaging: latestVersion(stage: STAGING) { version }
    latestProduction: latestVersion(stage: PRODUCTION) { version }
    aliases { alias version { version } }
  }
}
"""

VERSIONS = """
query Versions($name: String!, $stage: Stage, $first: Int, $after: String) {
  model(name: $name) {
    versions(stage: $stage, first: $first, after: $after) {
      edges { cursor node { version stage } }
      nodes { version }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

MODEL_TRANSITIONS = """
query Transitions($name: String!, $first: Int, $after: String) {
  model(name: $name) {
    transitions(first: $first, after: $after) {
      nodes { fromStage toStage actor reason at modelVersion { version } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

MODEL_VERSION = """
query ModelVersion($model: String!, $version: Int, $alias: String) {
  modelVersion(model: $model, version: $version, alias: $alias) {
    version
    stage
    source
    description
    tags { key value }
    aliases
    createdAt
    updatedAt
    model { name }
    run { id name experiment { name } }
    transitions { fromStage toStage actor reason modelVersion { version } }
  }
}
"""

RUN_VERSIONS = """
query RunVersions($id: ID!) {
  run(id: $id) { modelVersions { version model { name } } }
}
"""

REGISTER = """
mutation Register($input: RegisterModelVersionInput!) {
  registerModelVersion(input: $input) {
    __typename
    ... on RegisterModelVersionSuccess { modelVersion { version } }
  }
}
"""

TRANSITION = """
mutation Transition($input: TransitionModelVersionInput!) {
  transitionModelVersion(input: $input) {
    __typename
    ... on TransitionModelVersionSuccess { modelVersion { version stage } }
  }
}
"""

SET_ALIAS = """
mutation SetAlias($input: SetModelAliasInput!) {
  setModelAlias(input: $input) { __typename }
}
"""


def cursor_of(values: list[object]) -> str:
    """A well-formed cursor with arbitrary sort-key values (what a tampering client sends)."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def walk(gql, query: str, path: list[str], page_size: int, **variables) -> list[list]:
    """Every page of a connection at `path`, following endCursor until hasNextPage is false."""
    pages, after = [], None
    while True:
        data = await gql(query, first=page_size, after=after, **variables)
        for key in path:
            data = data[key]
        assert len(data["nodes"]) <= page_size
        pages.append(data["nodes"])
        if not data["pageInfo"]["hasNextPage"]:
            return pages
        after = data["pageInfo"]["endCursor"]
        assert after is not None
        assert len(pages) < 50, "pagination does not terminate"


async def transition(gql, model: str, version: int, stage: str, reason: str | None = None):
    data = await gql(
        TRANSITION, input={"model": model, "version": version, "stage": stage, "reason": reason}
    )
    assert data["transitionModelVersion"]["__typename"] == "TransitionModelVersionSuccess", data
    return data


def parse_utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    offset = parsed.utcoffset()
    assert offset is not None, value
    assert offset.total_seconds() == 0, value
    return parsed


# ---------------------------------------------------------------- models


async def test_models_are_listed_by_name(gql, db):
    # given
    for name in ["delta", "alpha", "charlie"]:
        await make_version(db, model=name)

    # when
    data = await gql(MODELS)

    # then
    names = [n["name"] for n in data["models"]["nodes"]]
    assert names == ["alpha", "charlie", "delta"]
    assert [e["node"]["name"] for e in data["models"]["edges"]] == names
    assert data["models"]["pageInfo"]["hasNextPage"] is False


async def test_models_with_none_registered_is_an_empty_page(gql):
    data = await gql(MODELS)

    assert data["models"] == {
        "edges": [],
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 8])
async def test_models_keyset_pagination_walks_every_model_once(gql, db, page_size):
    # given
    names = ["golf", "alpha", "echo", "bravo", "hotel", "delta", "charlie"]
    for name in names:
        await make_version(db, model=name)

    # when
    pages = await walk(gql, MODELS, ["models"], page_size)

    # then
    walked = [n["name"] for page in pages for n in page]
    assert walked == sorted(names)
    assert all(len(page) == page_size for page in pages[:-1])


async def test_models_page_cursors_resume_after_the_edge(gql, db):
    # given
    for name in ["alpha", "bravo", "charlie"]:
        await make_version(db, model=name)
    first_page = await gql(MODELS, first=3)
    middle_cursor = first_page["models"]["edges"][0]["cursor"]

    # when
    data = await gql(MODELS, after=middle_cursor)

    # then
    assert [n["name"] for n in data["models"]["nodes"]] == ["bravo", "charlie"]


async def test_a_model_registered_between_pages_does_not_shift_the_walk(gql, db):
    # given
    for name in ["bravo", "delta"]:
        await make_version(db, model=name)
    page = await gql(MODELS, first=1)
    assert [n["name"] for n in page["models"]["nodes"]] == ["bravo"]

    # when: a model that sorts before the cursor appears, and one after it
    await make_version(db, model="alpha")
    await make_version(db, model="charlie")
    data = await gql(MODELS, after=page["models"]["pageInfo"]["endCursor"])

    # then
    assert [n["name"] for n in data["models"]["nodes"]] == ["charlie", "delta"]


async def test_model_unknown_is_null(gql, db):
    await make_version(db, model="known")

    data = await gql(MODEL, name="unknown")

    assert data == {"model": None}


async def test_model_fields(gql, db):
    # given
    await make_version(db, model="churn", stage=Stage.PRODUCTION)
    await make_version(db, model="churn", stage=Stage.STAGING)
    await make_version(db, model="churn")
    async with db.unit_of_work() as session:
        await catalog.update_model(
            session,
            name="churn",
            description="predicts churn",
            set_tags={"team": "growth", "domain": "billing"},
            actor="test",
        )

    # when
    data = await gql(MODEL, name="churn")

    # then
    model = data["model"]
    assert model["name"] == "churn"
    assert model["description"] == "predicts churn"
    assert model["tags"] == [
        {"key": "domain", "value": "billing"},
        {"key": "team", "value": "growth"},
    ]
    assert parse_utc(model["createdAt"]) <= parse_utc(model["updatedAt"])
    assert model["productionVersion"] == {"version": 1, "stage": "PRODUCTION"}
    assert model["latestVersion"] == {"version": 3, "stage": "DEVELOPMENT"}
    assert model["latestStaging"] == {"version": 2}
    assert model["latestProduction"] == {"version": 1}
    assert model["aliases"] == []


async def test_model_with_nothing_in_production(gql, db):
    await make_version(db, model="m", stage=Stage.STAGING)

    data = await gql(MODEL, name="m")

    assert data["model"]["productionVersion"] is None
    assert data["model"]["latestProduction"] is None
    assert data["model"]["latestStaging"] == {"version": 1}


async def test_model_aliases_list_each_alias_with_its_version(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    for alias, version in [("champion", 2), ("baseline", 1), ("challenger", 2)]:
        data = await gql(SET_ALIAS, input={"model": "m", "alias": alias, "version": version})
        assert data["setModelAlias"]["__typename"] == "SetModelAliasSuccess"

    # when
    data = await gql(MODEL, name="m")

    # then
    assert sorted(data["model"]["aliases"], key=lambda a: a["alias"]) == [
        {"alias": "baseline", "version": {"version": 1}},
        {"alias": "challenger", "version": {"version": 2}},
        {"alias": "champion", "version": {"version": 2}},
    ]


# ---------------------------------------------------------------- versions


async def test_version_numbers_count_per_model(gql, db):
    # given
    for model in ["a", "b", "a", "a", "b"]:
        await gql(REGISTER, input={"model": model})

    # when
    a = await gql(VERSIONS, name="a")
    b = await gql(VERSIONS, name="b")

    # then
    assert [n["version"] for n in a["model"]["versions"]["nodes"]] == [3, 2, 1]
    assert [n["version"] for n in b["model"]["versions"]["nodes"]] == [2, 1]


@pytest.mark.parametrize("page_size", [1, 2, 4, 5])
async def test_versions_are_newest_first_and_pagination_walks_all(gql, db, page_size):
    # given
    for _ in range(5):
        await make_version(db, model="m")

    # when
    pages = await walk(gql, VERSIONS, ["model", "versions"], page_size, name="m")

    # then
    assert [n["version"] for page in pages for n in page] == [5, 4, 3, 2, 1]


async def test_versions_filtered_by_stage(gql, db):
    # given: v1 archived by v4's promotion, v2 staging, v3 development, v4 production,
    # v5 staging, v6 archived
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    await make_version(db, model="m")
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    await make_version(db, model="m", stage=Stage.ARCHIVED)

    # when
    by_stage = {
        stage: await gql(VERSIONS, name="m", stage=stage)
        for stage in ["DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"]
    }
    everything = await gql(VERSIONS, name="m")

    # then
    def versions(data):
        return [
            (e["node"]["version"], e["node"]["stage"]) for e in data["model"]["versions"]["edges"]
        ]

    assert versions(by_stage["DEVELOPMENT"]) == [(3, "DEVELOPMENT")]
    assert versions(by_stage["STAGING"]) == [(5, "STAGING"), (2, "STAGING")]
    assert versions(by_stage["PRODUCTION"]) == [(4, "PRODUCTION")]
    assert versions(by_stage["ARCHIVED"]) == [(6, "ARCHIVED"), (1, "ARCHIVED")]
    assert [v for v, _ in versions(everything)] == [6, 5, 4, 3, 2, 1]


async def test_versions_stage_filter_paginates(gql, db):
    # given: staging versions 1, 3, 5, 7 among development versions
    for v in range(1, 9):
        await make_version(db, model="m", stage=Stage.STAGING if v % 2 else None)

    # when
    pages = await walk(gql, VERSIONS, ["model", "versions"], 3, name="m", stage="STAGING")

    # then
    assert [[n["version"] for n in page] for page in pages] == [[7, 5, 3], [1]]


async def test_versions_of_two_models_in_one_request_stay_apart(gql, db):
    # given
    for model in ["a", "b", "a", "b", "b"]:
        await make_version(db, model=model)
    query = """
    query {
      a: model(name: "a") { versions(first: 2) { nodes { version } pageInfo { hasNextPage } } }
      b: model(name: "b") { versions(first: 2) { nodes { version } pageInfo { hasNextPage } } }
    }
    """

    # when
    data = await gql(query)

    # then
    assert data["a"]["versions"] == {
        "nodes": [{"version": 2}, {"version": 1}],
        "pageInfo": {"hasNextPage": False},
    }
    assert data["b"]["versions"] == {
        "nodes": [{"version": 3}, {"version": 2}],
        "pageInfo": {"hasNextPage": True},
    }


async def test_model_version_fields(gql, db):
    # given
    run = await make_run(db, experiment="exp", name="trial-7", metrics={"acc": 0.9})
    data = await gql(
        REGISTER,
        input={
            "model": "m",
            "runId": run.id,
            "source": "s3://bucket/m/1",
            "description": "first cut",
            "tags": [{"key": "framework", "value": "torch"}, {"key": "arch", "value": "mlp"}],
        },
    )
    assert data["registerModelVersion"]["__typename"] == "RegisterModelVersionSuccess"
    await transition(gql, "m", 1, "STAGING", reason="looks good")
    await gql(SET_ALIAS, input={"model": "m", "alias": "candidate", "version": 1})

    # when
    data = await gql(MODEL_VERSION, model="m", version=1)

    # then
    mv = data["modelVersion"]
    assert mv["version"] == 1
    assert mv["stage"] == "STAGING"
    assert mv["source"] == "s3://bucket/m/1"
    assert mv["description"] == "first cut"
    assert mv["tags"] == [
        {"key": "arch", "value": "mlp"},
        {"key": "framework", "value": "torch"},
    ]
    assert mv["aliases"] == ["candidate"]
    assert parse_utc(mv["createdAt"]) <= parse_utc(mv["updatedAt"])
    assert mv["model"] == {"name": "m"}
    assert mv["run"] == {"id": run.id, "name": "trial-7", "experiment": {"name": "exp"}}
    assert mv["transitions"] == [
        {
            "fromStage": "DEVELOPMENT",
            "toStage": "STAGING",
            "actor": ADMIN,
            "reason": "looks good",
            "modelVersion": {"version": 1},
        }
    ]


async def test_model_version_without_a_run_has_null_run(gql, db):
    await make_version(db, model="m")

    data = await gql(MODEL_VERSION, model="m", version=1)

    assert data["modelVersion"]["run"] is None
    assert data["modelVersion"]["transitions"] == []
    assert data["modelVersion"]["aliases"] == []


async def test_run_lists_the_versions_made_from_it(gql, db):
    # given
    run = await make_run(db)
    await make_version(db, model="a", run_id=run.id)
    await make_version(db, model="b")
    await make_version(db, model="b", run_id=run.id)

    # when
    data = await gql(RUN_VERSIONS, id=run.id)

    # then
    found = sorted((v["model"]["name"], v["version"]) for v in data["run"]["modelVersions"])
    assert found == [("a", 1), ("b", 2)]


async def test_model_version_transitions_are_newest_first(gql, db):
    # given
    await make_version(db, model="m")
    for stage in ["STAGING", "DEVELOPMENT", "STAGING", "PRODUCTION"]:
        await transition(gql, "m", 1, stage)

    # when
    data = await gql(MODEL_VERSION, model="m", version=1)

    # then
    moves = [(t["fromStage"], t["toStage"]) for t in data["modelVersion"]["transitions"]]
    assert moves == [
        ("STAGING", "PRODUCTION"),
        ("DEVELOPMENT", "STAGING"),
        ("STAGING", "DEVELOPMENT"),
        ("DEVELOPMENT", "STAGING"),
    ]


# ---------------------------------------------------------------- modelVersion lookup


async def test_model_version_by_number(gql, db):
    await make_version(db, model="m")
    await make_version(db, model="m", stage=Stage.STAGING)

    data = await gql(MODEL_VERSION, model="m", version=2)

    assert data["modelVersion"]["version"] == 2
    assert data["modelVersion"]["stage"] == "STAGING"


async def test_model_version_by_alias_follows_the_alias(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    await gql(SET_ALIAS, input={"model": "m", "alias": "champion", "version": 1})
    first = await gql(MODEL_VERSION, model="m", alias="champion")

    # when
    await gql(SET_ALIAS, input={"model": "m", "alias": "champion", "version": 2})
    second = await gql(MODEL_VERSION, model="m", alias="champion")

    # then
    assert first["modelVersion"]["version"] == 1
    assert second["modelVersion"]["version"] == 2
    assert second["modelVersion"]["aliases"] == ["champion"]


async def test_an_alias_of_another_model_does_not_resolve(gql, db):
    await make_version(db, model="a")
    await make_version(db, model="b")
    await gql(SET_ALIAS, input={"model": "a", "alias": "champion", "version": 1})

    data = await gql(MODEL_VERSION, model="b", alias="champion")

    assert data == {"modelVersion": None}


@pytest.mark.parametrize(
    "lookup",
    [
        {"model": "m", "version": 9},
        {"model": "m", "alias": "nobody"},
        {"model": "unknown", "version": 1},
        {"model": "unknown", "alias": "champion"},
    ],
)
async def test_model_version_unknown_is_null(gql, db, lookup):
    await make_version(db, model="m")

    data = await gql(MODEL_VERSION, **lookup)

    assert data == {"modelVersion": None}


@pytest.mark.parametrize(
    "lookup",
    [
        {"model": "m"},
        {"model": "m", "version": 1, "alias": "champion"},
    ],
    ids=["neither", "both"],
)
async def test_model_version_needs_exactly_one_of_version_or_alias(gql, db, lookup):
    # given
    await make_version(db, model="m")
    await gql(SET_ALIAS, input={"model": "m", "alias": "champion", "version": 1})

    # when
    error = await gql.error(MODEL_VERSION, **lookup)

    # then
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["path"] == ["modelVersion"]
    assert "Traceback" not in json.dumps(error)


# ---------------------------------------------------------------- audit trail


async def test_model_transitions_are_the_audit_trail_newest_first(gql, db):
    # given: v1 to production, then v2 replaces it
    await make_version(db, model="m")
    await make_version(db, model="m")
    await transition(gql, "m", 1, "STAGING", reason="smoke tests green")
    await transition(gql, "m", 1, "PRODUCTION", reason="go")
    await transition(gql, "m", 2, "STAGING")
    await transition(gql, "m", 2, "PRODUCTION", reason="better recall")

    # when
    data = await gql(MODEL_TRANSITIONS, name="m")

    # then
    nodes = data["model"]["transitions"]["nodes"]
    assert [
        (t["modelVersion"]["version"], t["fromStage"], t["toStage"], t["reason"]) for t in nodes
    ] == [
        (2, "STAGING", "PRODUCTION", "better recall"),
        (1, "PRODUCTION", "ARCHIVED", nodes[1]["reason"]),
        (2, "DEVELOPMENT", "STAGING", None),
        (1, "STAGING", "PRODUCTION", "go"),
        (1, "DEVELOPMENT", "STAGING", "smoke tests green"),
    ]
    assert {t["actor"] for t in nodes} == {ADMIN}
    times = [parse_utc(t["at"]) for t in nodes]
    assert times == sorted(times, reverse=True)


async def test_model_transitions_pagination_walks_all(gql, db):
    # given: seven moves of one version
    await make_version(db, model="m")
    stages = ["STAGING", "DEVELOPMENT", "STAGING", "ARCHIVED", "STAGING", "PRODUCTION", "ARCHIVED"]
    for stage in stages:
        await transition(gql, "m", 1, stage)

    # when
    pages = await walk(gql, MODEL_TRANSITIONS, ["model", "transitions"], 3, name="m")

    # then
    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [t["toStage"] for page in pages for t in page]
    assert walked == stages[::-1]


async def test_model_transitions_of_other_models_are_not_listed(gql, db):
    await make_version(db, model="a", stage=Stage.STAGING)
    await make_version(db, model="b")
    await transition(gql, "b", 1, "ARCHIVED")

    data = await gql(MODEL_TRANSITIONS, name="b")

    assert [(t["fromStage"], t["toStage"]) for t in data["model"]["transitions"]["nodes"]] == [
        ("DEVELOPMENT", "ARCHIVED")
    ]


# ---------------------------------------------------------------- bad input

BAD_CURSORS = [
    "not a cursor!",
    "%%%",
    "bm90IGpzb24",  # base64 of "not json"
    cursor_of({"a": 1}),
    cursor_of([]),
    cursor_of([1, 2, 3]),
    cursor_of([None]),
    cursor_of([True]),
    cursor_of([[1]]),
]

# A cursor that decodes but whose value has the wrong type for the list it is sent to
# (a name where a number goes, and back): a client mixing up cursors of two lists.
FOREIGN_CURSORS = {
    "models": cursor_of([7]),
    "versions": cursor_of(["alpha"]),
    "transitions": cursor_of(["alpha"]),
}

LIST_QUERIES = {
    "models": (MODELS, {}),
    "versions": (VERSIONS, {"name": "m"}),
    "transitions": (MODEL_TRANSITIONS, {"name": "m"}),
}


def assert_clean_error(body_or_error: dict, field: str) -> None:
    text = json.dumps(body_or_error)
    assert "Traceback" not in text
    assert "Internal server error" not in text
    assert body_or_error["extensions"]["code"] == "INVALID_INPUT", body_or_error
    assert body_or_error["extensions"]["field"] == field, body_or_error


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize("listing", list(LIST_QUERIES))
async def test_malformed_cursor_is_invalid_input_naming_after(gql, db, listing, cursor):
    # given
    await make_version(db, model="m", stage=Stage.STAGING)
    query, variables = LIST_QUERIES[listing]

    # when
    error = await gql.error(query, after=cursor, **variables)

    # then
    assert_clean_error(error, "after")


@pytest.mark.parametrize("listing", list(LIST_QUERIES))
async def test_cursor_of_the_wrong_type_is_invalid_input_naming_after(gql, db, listing):
    # given
    await make_version(db, model="m", stage=Stage.STAGING)
    query, variables = LIST_QUERIES[listing]

    # when
    error = await gql.error(query, after=FOREIGN_CURSORS[listing], **variables)

    # then
    assert_clean_error(error, "after")


@pytest.mark.parametrize("listing", list(LIST_QUERIES))
async def test_first_over_the_cap_is_invalid_input_naming_first(gql, db, listing):
    # given
    await make_version(db, model="m")
    query, variables = LIST_QUERIES[listing]

    # when
    error = await gql.error(query, first=501, **variables)

    # then
    assert_clean_error(error, "first")
    assert error["extensions"]["limit"] == 500


@pytest.mark.parametrize("listing", list(LIST_QUERIES))
async def test_first_at_the_cap_is_accepted(gql, db, listing):
    await make_version(db, model="m")
    query, variables = LIST_QUERIES[listing]

    body = await gql.raw(query, first=500, **variables)

    assert "errors" not in body


@pytest.mark.parametrize("listing", list(LIST_QUERIES))
async def test_negative_first_is_invalid_input_naming_first(gql, db, listing):
    await make_version(db, model="m")
    query, variables = LIST_QUERIES[listing]

    error = await gql.error(query, first=-1, **variables)

    assert_clean_error(error, "first")


# ---------------------------------------------------------------- statements per screen

AUDIT_SCREEN = """
query Audit($first: Int!) {
  models(first: $first) {
    nodes {
      name
      transitions(first: 10) { nodes { toStage modelVersion { version } } }
      versions(first: 10) { nodes { version transitions { toStage } } }
    }
  }
}
"""


async def audit_statements(gql, sql_counter, models: int) -> int:
    sql_counter.reset()
    data = await gql(AUDIT_SCREEN, first=models)
    assert len(data["models"]["nodes"]) == models
    assert all(len(n["transitions"]["nodes"]) == 2 for n in data["models"]["nodes"])
    return sql_counter.count


async def test_audit_trail_statement_count_does_not_grow_with_models(gql, db, sql_counter):
    # given: eight models, each with one version moved twice
    for m in range(8):
        await make_version(db, model=f"model-{m}", stage=Stage.PRODUCTION)

    # when
    small = await audit_statements(gql, sql_counter, 2)
    large = await audit_statements(gql, sql_counter, 8)

    # then
    assert small == large, sql_counter.statements
