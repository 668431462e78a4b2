"""Rollback reads the PRODUCTION history as a stack: repeated rollbacks keep going back."""

from tests.factories import make_version

PROMOTE = """
mutation($version: Int!) {
  transitionModelVersion(input: {model: "m", version: $version, stage: PRODUCTION}) { __typename }
}
"""

ROLLBACK = """
mutation {
  rollbackModel(input: {model: "m", reason: "bad release"}) {
    __typename
    ... on RollbackModelSuccess { modelVersion { version stage } transitions { toStage rollback } }
    ... on NoRollbackTarget { code message }
  }
}
"""

STAGES = '{ model(name: "m") { versions { nodes { version stage } } } }'


async def stages(gql) -> dict[int, str]:
    nodes = (await gql(STAGES))["model"]["versions"]["nodes"]
    return {n["version"]: n["stage"] for n in nodes}


async def test_repeated_rollbacks_walk_back_through_production_history(db, gql):
    # given versions 1, 2, 3 promoted to PRODUCTION in turn
    for _ in range(3):
        version = await make_version(db, model="m", stage="STAGING")
        assert (await gql(PROMOTE, version=version))["transitionModelVersion"]["__typename"] == (
            "TransitionModelVersionSuccess"
        )

    # when rolled back twice
    first = (await gql(ROLLBACK))["rollbackModel"]
    second = (await gql(ROLLBACK))["rollbackModel"]

    # then production goes 3 → 2 → 1, each restoring move marked as a rollback
    assert first["modelVersion"] == {"version": 2, "stage": "PRODUCTION"}
    assert first["transitions"] == [
        {"toStage": "ARCHIVED", "rollback": False},
        {"toStage": "PRODUCTION", "rollback": True},
    ]
    assert second["modelVersion"] == {"version": 1, "stage": "PRODUCTION"}
    assert await stages(gql) == {1: "PRODUCTION", 2: "ARCHIVED", 3: "ARCHIVED"}

    # and a third has nowhere to go, and changes nothing
    third = (await gql(ROLLBACK))["rollbackModel"]
    assert third["__typename"] == "NoRollbackTarget"
    assert await stages(gql) == {1: "PRODUCTION", 2: "ARCHIVED", 3: "ARCHIVED"}


async def test_a_promotion_after_a_rollback_can_itself_be_rolled_back(db, gql):
    # given 1 then 2 in PRODUCTION, rolled back to 1, then a new version 3 promoted
    for _ in range(2):
        await gql(PROMOTE, version=await make_version(db, model="m", stage="STAGING"))
    await gql(ROLLBACK)
    await gql(PROMOTE, version=await make_version(db, model="m", stage="STAGING"))

    # when rolled back
    result = (await gql(ROLLBACK))["rollbackModel"]

    # then version 1, which 3 replaced, returns
    assert result["modelVersion"] == {"version": 1, "stage": "PRODUCTION"}
