"""setModelTag/deleteModelTag, setModelVersionTag/deleteModelVersionTag, renameModel,
deleteModel and deleteModelVersion over HTTP: the answer, the outbox, and refusals that
change nothing."""

from sqlalchemy import select

from app.db import Database
from app.events.models import Event
from app.registry.stages import Stage
from tests.factories import make_version
from tests.integrity import last_seq, snapshot

ACTOR = "test-admin"  # the token the gql fixture sends
REFUSAL = "... on Error { code message } ... on NotFound { field value }"

SET_MODEL_TAG = f"""
mutation($input: SetModelTagInput!) {{
  setModelTag(input: $input) {{
    __typename ... on SetModelTagSuccess {{ model {{ name tags {{ key value }} }} }} {REFUSAL}
  }}
}}
"""
DELETE_MODEL_TAG = f"""
mutation($input: DeleteModelTagInput!) {{
  deleteModelTag(input: $input) {{
    __typename ... on DeleteModelTagSuccess {{ model {{ tags {{ key value }} }} }} {REFUSAL}
  }}
}}
"""
SET_VERSION_TAG = f"""
mutation($input: SetModelVersionTagInput!) {{
  setModelVersionTag(input: $input) {{
    __typename
    ... on SetModelVersionTagSuccess {{ modelVersion {{ version tags {{ key value }} }} }}
    {REFUSAL}
  }}
}}
"""
DELETE_VERSION_TAG = f"""
mutation($input: DeleteModelVersionTagInput!) {{
  deleteModelVersionTag(input: $input) {{
    __typename
    ... on DeleteModelVersionTagSuccess {{ modelVersion {{ version tags {{ key value }} }} }}
    {REFUSAL}
  }}
}}
"""
RENAME = f"""
mutation($input: RenameModelInput!) {{
  renameModel(input: $input) {{
    __typename
    ... on RenameModelSuccess {{
      previousName model {{ name versions {{ nodes {{ version stage }} }} aliases {{ alias }} }}
    }}
    {REFUSAL}
  }}
}}
"""
DELETE_MODEL = f"""
mutation($input: DeleteModelInput!) {{
  deleteModel(input: $input) {{ __typename ... on DeleteModelSuccess {{ name }} {REFUSAL} }}
}}
"""
DELETE_VERSION = f"""
mutation($input: DeleteModelVersionInput!) {{
  deleteModelVersion(input: $input) {{
    __typename ... on DeleteModelVersionSuccess {{ model version stage }} {REFUSAL}
  }}
}}
"""
EVENTS = """
query($model: String) { events(model: $model, first: 100) { nodes { type versionNumber } } }
"""


async def events_since(db: Database, seq: int) -> list[tuple]:
    async with db.read() as s:
        rows = (await s.execute(select(Event).where(Event.seq > seq).order_by(Event.seq))).scalars()
        return [(e.type, e.model, e.version, e.actor) for e in rows.all()]


async def test_model_tags_set_and_delete(gql, db):
    await make_version(db, model="m")
    seq = await last_seq(db)

    set_ = await gql(SET_MODEL_TAG, input={"name": "m", "key": "team", "value": "fraud"})
    deleted = await gql(DELETE_MODEL_TAG, input={"name": "m", "key": "team"})

    assert set_["setModelTag"]["model"]["tags"] == [{"key": "team", "value": "fraud"}]
    assert deleted["deleteModelTag"] == {
        "__typename": "DeleteModelTagSuccess",
        "model": {"tags": []},
    }
    assert await events_since(db, seq) == [
        ("MODEL_UPDATED", "m", None, ACTOR),
        ("MODEL_UPDATED", "m", None, ACTOR),
    ]
    state = await snapshot(db)
    again = await gql(DELETE_MODEL_TAG, input={"name": "m", "key": "team"})
    assert again["deleteModelTag"]["__typename"] == "NotFound"
    assert again["deleteModelTag"]["field"] == "key"
    assert await snapshot(db) == state


async def test_version_tags_set_and_delete(gql, db):
    await make_version(db, model="m")
    seq = await last_seq(db)

    set_ = await gql(
        SET_VERSION_TAG, input={"model": "m", "version": 1, "key": "ok", "value": "yes"}
    )
    deleted = await gql(DELETE_VERSION_TAG, input={"model": "m", "version": 1, "key": "ok"})
    missing = await gql(
        SET_VERSION_TAG, input={"model": "m", "version": 9, "key": "ok", "value": "yes"}
    )

    assert set_["setModelVersionTag"]["modelVersion"] == {
        "version": 1,
        "tags": [{"key": "ok", "value": "yes"}],
    }
    assert deleted["deleteModelVersionTag"]["modelVersion"]["tags"] == []
    assert missing["setModelVersionTag"]["__typename"] == "NotFound"
    assert await events_since(db, seq) == [
        ("VERSION_UPDATED", "m", 1, ACTOR),
        ("VERSION_UPDATED", "m", 1, ACTOR),
    ]


async def test_rename_model_keeps_versions_aliases_and_events(gql, db):
    await make_version(db, model="old", stage=Stage.PRODUCTION)
    await make_version(db, model="old")
    await gql(
        'mutation { setModelAlias(input: {model: "old", alias: "champion", version: 1}) '
        "{ __typename } }"
    )
    before = len((await gql(EVENTS, model="old"))["events"]["nodes"])

    renamed = (await gql(RENAME, input={"name": "old", "newName": "new"}))["renameModel"]

    assert renamed == {
        "__typename": "RenameModelSuccess",
        "previousName": "old",
        "model": {
            "name": "new",
            "versions": {
                "nodes": [
                    {"version": 2, "stage": "DEVELOPMENT"},
                    {"version": 1, "stage": "PRODUCTION"},
                ]
            },
            "aliases": [{"alias": "champion"}],
        },
    }
    history = (await gql(EVENTS, model="new"))["events"]["nodes"]
    assert len(history) == before + 1
    assert history[-1] == {"type": "MODEL_RENAMED", "versionNumber": None}
    assert (await gql(EVENTS, model="old"))["events"]["nodes"] == []
    taken = (await gql(RENAME, input={"name": "new", "newName": "new2"}))["renameModel"]
    assert taken["__typename"] == "RenameModelSuccess"
    await make_version(db, model="other")
    clash = (await gql(RENAME, input={"name": "new2", "newName": "other"}))["renameModel"]
    assert clash["__typename"] == "AlreadyExists"


async def test_delete_version_and_model_and_the_production_refusal(gql, db):
    await make_version(db, model="m", stage=Stage.PRODUCTION)
    await make_version(db, model="m", stage=Stage.STAGING)
    state = await snapshot(db)

    refused = (await gql(DELETE_VERSION, input={"model": "m", "version": 1}))["deleteModelVersion"]
    refused_model = (await gql(DELETE_MODEL, input={"name": "m"}))["deleteModel"]

    assert refused["__typename"] == "Conflict"
    assert "PRODUCTION" in refused["message"]
    assert refused_model["__typename"] == "Conflict"
    assert await snapshot(db) == state

    seq = await last_seq(db)
    deleted = (await gql(DELETE_VERSION, input={"model": "m", "version": 2}))["deleteModelVersion"]
    assert deleted == {
        "__typename": "DeleteModelVersionSuccess",
        "model": "m",
        "version": 2,
        "stage": "STAGING",
    }
    await gql(
        'mutation { transitionModelVersion(input: {model: "m", version: 1, stage: ARCHIVED}) '
        "{ __typename } }"
    )
    gone = (await gql(DELETE_MODEL, input={"name": "m"}))["deleteModel"]
    assert gone == {"__typename": "DeleteModelSuccess", "name": "m"}
    assert (await gql('{ model(name: "m") { name } }'))["model"] is None
    assert await events_since(db, seq) == [
        ("VERSION_DELETED", "m", 2, ACTOR),
        ("STAGE_CHANGED", "m", 1, ACTOR),
        ("MODEL_DELETED", "m", None, ACTOR),
    ]
    missing = (await gql(DELETE_MODEL, input={"name": "m"}))["deleteModel"]
    assert missing["__typename"] == "NotFound"
