"""Aliases and description/tag edits of models and versions over HTTP, with their outbox rows."""

import pytest
from sqlalchemy import select

from app.db import Database
from app.events.models import Event
from tests.factories import make_version
from tests.integrity import last_seq, snapshot

ERROR_FIELDS = """
  ... on Error { message code }
  ... on NotFound { field value }
  ... on InvalidInput { field limit }
  ... on Conflict { field }
"""

SET_ALIAS = f"""
mutation SetAlias($input: SetModelAliasInput!) {{
  setModelAlias(input: $input) {{
    __typename
    ... on SetModelAliasSuccess {{ alias modelVersion {{ version aliases }} }}
    {ERROR_FIELDS}
  }}
}}
"""

DELETE_ALIAS = f"""
mutation DeleteAlias($input: DeleteModelAliasInput!) {{
  deleteModelAlias(input: $input) {{
    __typename
    ... on DeleteModelAliasSuccess {{ alias modelVersion {{ version aliases }} }}
    {ERROR_FIELDS}
  }}
}}
"""

UPDATE_MODEL = f"""
mutation UpdateModel($input: UpdateModelInput!) {{
  updateModel(input: $input) {{
    __typename
    ... on UpdateModelSuccess {{ model {{ name description tags {{ key value }} }} }}
    {ERROR_FIELDS}
  }}
}}
"""

UPDATE_VERSION = f"""
mutation UpdateVersion($input: UpdateModelVersionInput!) {{
  updateModelVersion(input: $input) {{
    __typename
    ... on UpdateModelVersionSuccess {{
      modelVersion {{ version stage description tags {{ key value }} }}
    }}
    {ERROR_FIELDS}
  }}
}}
"""

BY_ALIAS = """
query ByAlias($model: String!, $alias: String!) {
  modelVersion(model: $model, alias: $alias) { version aliases }
}
"""

MODEL = """
query Model($name: String!) {
  model(name: $name) {
    description
    tags { key value }
    aliases { alias version { version } }
    versions { nodes { version aliases description tags { key value } } }
  }
}
"""

ANONYMOUS = "test-admin"  # the token the gql fixture sends


async def events_since(db: Database, seq: int) -> list[tuple]:
    """Outbox rows written after `seq`: (type, model, version, alias, actor)."""
    async with db.read() as s:
        rows = (await s.execute(select(Event).where(Event.seq > seq).order_by(Event.seq))).scalars()
        return [(e.type, e.model, e.version, e.alias, e.actor) for e in rows.all()]


async def set_alias(gql, model: str, alias: str, version: int) -> dict:
    data = await gql(SET_ALIAS, input={"model": model, "alias": alias, "version": version})
    return data["setModelAlias"]


# ---------------------------------------------------------------- setModelAlias


async def test_set_alias_points_it_at_the_version(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    seq = await last_seq(db)

    # when
    payload = await set_alias(gql, "m", "champion", 1)

    # then
    assert payload == {
        "__typename": "SetModelAliasSuccess",
        "alias": "champion",
        "modelVersion": {"version": 1, "aliases": ["champion"]},
    }
    assert (await gql(BY_ALIAS, model="m", alias="champion"))["modelVersion"] == {
        "version": 1,
        "aliases": ["champion"],
    }
    assert await events_since(db, seq) == [("ALIAS_SET", "m", 1, "champion", ANONYMOUS)]


async def test_set_alias_again_moves_it_in_one_mutation(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    await set_alias(gql, "m", "champion", 1)
    seq = await last_seq(db)

    # when
    payload = await set_alias(gql, "m", "champion", 2)

    # then
    assert payload["__typename"] == "SetModelAliasSuccess"
    assert payload["modelVersion"] == {"version": 2, "aliases": ["champion"]}
    model = (await gql(MODEL, name="m"))["model"]
    assert model["aliases"] == [{"alias": "champion", "version": {"version": 2}}]
    assert {v["version"]: v["aliases"] for v in model["versions"]["nodes"]} == {
        2: ["champion"],
        1: [],
    }
    assert (await gql(BY_ALIAS, model="m", alias="champion"))["modelVersion"]["version"] == 2
    assert await events_since(db, seq) == [("ALIAS_SET", "m", 2, "champion", ANONYMOUS)]


async def test_a_version_can_carry_several_aliases(gql, db):
    await make_version(db, model="m")

    await set_alias(gql, "m", "champion", 1)
    payload = await set_alias(gql, "m", "baseline", 1)

    assert payload["modelVersion"]["aliases"] == ["baseline", "champion"]


async def test_the_same_alias_name_in_two_models_is_independent(gql, db):
    # given
    await make_version(db, model="a")
    await make_version(db, model="b")
    await make_version(db, model="b")

    # when
    await set_alias(gql, "a", "champion", 1)
    await set_alias(gql, "b", "champion", 2)

    # then
    assert (await gql(BY_ALIAS, model="a", alias="champion"))["modelVersion"]["version"] == 1
    assert (await gql(BY_ALIAS, model="b", alias="champion"))["modelVersion"]["version"] == 2


@pytest.mark.parametrize(
    "alias",
    [
        "latest",
        "LATEST",
        "v3",
        "V12",
        "has space",
        "",
        "a/b",
        "dots.not.allowed",
        "é",
        "x" * 257,
        "champion\n",
    ],
)
async def test_set_alias_with_an_invalid_name_is_invalid_input(gql, db, alias):
    # given
    await make_version(db, model="m")
    before = await snapshot(db)

    # when
    payload = await set_alias(gql, "m", alias, 1)

    # then
    assert payload["__typename"] == "InvalidInput"
    assert payload["code"] == "INVALID_INPUT"
    assert payload["field"] == "alias"
    assert await snapshot(db) == before


async def test_set_alias_over_the_length_limit_names_the_limit(gql, db):
    await make_version(db, model="m")

    payload = await set_alias(gql, "m", "x" * 257, 1)

    assert payload["limit"] == 256


@pytest.mark.parametrize("alias", ["champion", "prod_2024", "canary-eu", "v", "version3", "v3a"])
async def test_set_alias_accepts_ordinary_names(gql, db, alias):
    await make_version(db, model="m")

    payload = await set_alias(gql, "m", alias, 1)

    assert payload["__typename"] == "SetModelAliasSuccess"


@pytest.mark.parametrize(
    ("model", "version", "field"),
    [("unknown", 1, "model"), ("m", 5, "version")],
)
async def test_set_alias_on_unknown_model_or_version_is_not_found(gql, db, model, version, field):
    # given
    await make_version(db, model="m")
    before = await snapshot(db)

    # when
    payload = await set_alias(gql, model, "champion", version)

    # then
    assert payload["__typename"] == "NotFound"
    assert payload["code"] == "NOT_FOUND"
    assert payload["field"] == field
    assert await snapshot(db) == before


async def test_moving_an_alias_to_an_unknown_version_keeps_it_where_it_was(gql, db):
    await make_version(db, model="m")
    await set_alias(gql, "m", "champion", 1)
    before = await snapshot(db)

    payload = await set_alias(gql, "m", "champion", 9)

    assert payload["__typename"] == "NotFound"
    assert await snapshot(db) == before
    assert (await gql(BY_ALIAS, model="m", alias="champion"))["modelVersion"]["version"] == 1


# ---------------------------------------------------------------- deleteModelAlias


async def test_delete_alias_removes_it(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    await set_alias(gql, "m", "champion", 2)
    await set_alias(gql, "m", "baseline", 2)
    seq = await last_seq(db)

    # when
    data = await gql(DELETE_ALIAS, input={"model": "m", "alias": "champion"})

    # then
    assert data["deleteModelAlias"] == {
        "__typename": "DeleteModelAliasSuccess",
        "alias": "champion",
        "modelVersion": {"version": 2, "aliases": ["baseline"]},
    }
    assert (await gql(BY_ALIAS, model="m", alias="champion"))["modelVersion"] is None
    assert (await gql(MODEL, name="m"))["model"]["aliases"] == [
        {"alias": "baseline", "version": {"version": 2}}
    ]
    assert await events_since(db, seq) == [("ALIAS_DELETED", "m", 2, "champion", ANONYMOUS)]


@pytest.mark.parametrize(
    ("model", "alias", "field"),
    [("m", "nobody", "alias"), ("unknown", "champion", "model")],
)
async def test_delete_unknown_alias_is_not_found(gql, db, model, alias, field):
    # given
    await make_version(db, model="m")
    await set_alias(gql, "m", "champion", 1)
    before = await snapshot(db)

    # when
    data = await gql(DELETE_ALIAS, input={"model": model, "alias": alias})

    # then
    payload = data["deleteModelAlias"]
    assert payload["__typename"] == "NotFound"
    assert payload["code"] == "NOT_FOUND"
    assert payload["field"] == field
    assert await snapshot(db) == before


async def test_delete_alias_twice_is_not_found_the_second_time(gql, db):
    await make_version(db, model="m")
    await set_alias(gql, "m", "champion", 1)
    await gql(DELETE_ALIAS, input={"model": "m", "alias": "champion"})
    before = await snapshot(db)

    data = await gql(DELETE_ALIAS, input={"model": "m", "alias": "champion"})

    assert data["deleteModelAlias"]["__typename"] == "NotFound"
    assert await snapshot(db) == before


# ---------------------------------------------------------------- updateModel


async def test_update_model_sets_description_and_tags(gql, db):
    # given
    await make_version(db, model="m")
    seq = await last_seq(db)

    # when
    data = await gql(
        UPDATE_MODEL,
        input={
            "name": "m",
            "description": "churn classifier",
            "setTags": [{"key": "team", "value": "growth"}, {"key": "tier", "value": "1"}],
        },
    )

    # then
    assert data["updateModel"] == {
        "__typename": "UpdateModelSuccess",
        "model": {
            "name": "m",
            "description": "churn classifier",
            "tags": [{"key": "team", "value": "growth"}, {"key": "tier", "value": "1"}],
        },
    }
    model = (await gql(MODEL, name="m"))["model"]
    assert model["description"] == "churn classifier"
    assert model["tags"] == [{"key": "team", "value": "growth"}, {"key": "tier", "value": "1"}]
    assert await events_since(db, seq) == [("MODEL_UPDATED", "m", None, None, ANONYMOUS)]


async def test_update_model_removes_and_overwrites_tags(gql, db):
    # given
    await make_version(db, model="m")
    await gql(
        UPDATE_MODEL,
        input={
            "name": "m",
            "description": "keep me",
            "setTags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
        },
    )
    seq = await last_seq(db)

    # when
    data = await gql(
        UPDATE_MODEL,
        input={"name": "m", "setTags": [{"key": "b", "value": "3"}], "removeTags": ["a"]},
    )

    # then
    assert data["updateModel"]["model"] == {
        "name": "m",
        "description": "keep me",
        "tags": [{"key": "b", "value": "3"}],
    }
    assert await events_since(db, seq) == [("MODEL_UPDATED", "m", None, None, ANONYMOUS)]


async def test_update_model_of_an_unknown_model_is_not_found(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(UPDATE_MODEL, input={"name": "unknown", "description": "x"})

    assert data["updateModel"]["__typename"] == "NotFound"
    assert data["updateModel"]["field"] == "model"
    assert await snapshot(db) == before


async def test_update_model_description_over_the_limit_is_invalid_input(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(UPDATE_MODEL, input={"name": "m", "description": "d" * 10_001})

    payload = data["updateModel"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["field"] == "description"
    assert payload["limit"] == 10_000
    assert await snapshot(db) == before


async def test_update_model_tag_value_over_the_limit_names_set_tags(gql, db):
    # given
    await make_version(db, model="m")
    before = await snapshot(db)

    # when
    data = await gql(
        UPDATE_MODEL, input={"name": "m", "setTags": [{"key": "k", "value": "v" * 8001}]}
    )

    # then: the field named is one the client sent
    payload = data["updateModel"]
    assert payload["__typename"] == "InvalidInput"
    assert payload["field"].startswith("setTags"), payload
    assert payload["limit"] == 8000
    assert await snapshot(db) == before


async def test_update_model_with_a_tag_key_twice_is_invalid_input(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(
        UPDATE_MODEL,
        input={"name": "m", "setTags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]},
    )

    assert data["updateModel"]["__typename"] == "InvalidInput"
    assert data["updateModel"]["field"] == "setTags"
    assert await snapshot(db) == before


# ---------------------------------------------------------------- updateModelVersion


async def test_update_version_sets_description_and_tags(gql, db):
    # given
    await make_version(db, model="m")
    await make_version(db, model="m")
    seq = await last_seq(db)

    # when
    data = await gql(
        UPDATE_VERSION,
        input={
            "model": "m",
            "version": 1,
            "description": "trained on March data",
            "setTags": [{"key": "dataset", "value": "2024-03"}],
        },
    )

    # then
    assert data["updateModelVersion"] == {
        "__typename": "UpdateModelVersionSuccess",
        "modelVersion": {
            "version": 1,
            "stage": "DEVELOPMENT",
            "description": "trained on March data",
            "tags": [{"key": "dataset", "value": "2024-03"}],
        },
    }
    versions = (await gql(MODEL, name="m"))["model"]["versions"]["nodes"]
    assert versions[1]["description"] == "trained on March data"
    assert versions[0]["description"] is None
    assert versions[0]["tags"] == []
    assert await events_since(db, seq) == [("VERSION_UPDATED", "m", 1, None, ANONYMOUS)]


async def test_update_version_removes_tags(gql, db):
    # given
    await make_version(db, model="m")
    await gql(
        UPDATE_VERSION,
        input={
            "model": "m",
            "version": 1,
            "setTags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
        },
    )
    seq = await last_seq(db)

    # when
    data = await gql(UPDATE_VERSION, input={"model": "m", "version": 1, "removeTags": ["a"]})

    # then
    assert data["updateModelVersion"]["modelVersion"]["tags"] == [{"key": "b", "value": "2"}]
    assert await events_since(db, seq) == [("VERSION_UPDATED", "m", 1, None, ANONYMOUS)]


@pytest.mark.parametrize(
    ("model", "version", "field"),
    [("unknown", 1, "model"), ("m", 3, "version")],
)
async def test_update_version_of_unknown_model_or_version_is_not_found(
    gql, db, model, version, field
):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(UPDATE_VERSION, input={"model": model, "version": version, "description": "x"})

    assert data["updateModelVersion"]["__typename"] == "NotFound"
    assert data["updateModelVersion"]["field"] == field
    assert await snapshot(db) == before


async def test_update_version_description_over_the_limit_is_invalid_input(gql, db):
    await make_version(db, model="m")
    before = await snapshot(db)

    data = await gql(
        UPDATE_VERSION, input={"model": "m", "version": 1, "description": "d" * 10_001}
    )

    assert data["updateModelVersion"]["__typename"] == "InvalidInput"
    assert data["updateModelVersion"]["field"] == "description"
    assert await snapshot(db) == before
