"""versionAt: what was in a stage, or behind an alias, at a given moment."""

from datetime import UTC, datetime

from tests.factories import make_version

AT = """
query($at: DateTime!, $stage: Stage, $alias: String) {
  model(name: "m") { versionAt(at: $at, stage: $stage, alias: $alias) { version } }
}
"""
PROMOTE = """
mutation($v: Int!) {
  transitionModelVersion(input: {model: "m", version: $v, stage: PRODUCTION}) { __typename }
}
"""
ALIAS = """
mutation($v: Int!) { setModelAlias(input: {model: "m", alias: "champion", version: $v}) { __typename } }
"""
UNALIAS = 'mutation { deleteModelAlias(input: {model: "m", alias: "champion"}) { __typename } }'


def now() -> str:
    return datetime.now(UTC).isoformat()


async def version_at(gql, at: str, **which) -> int | None:
    found = (await gql(AT, at=at, **which))["model"]["versionAt"]
    return found["version"] if found else None


async def test_what_was_in_production_at_each_moment(db, gql):
    await make_version(db, model="m", stage="STAGING")
    await make_version(db, model="m", stage="STAGING")
    before = now()
    await gql(PROMOTE, v=1)
    first_live = now()
    await gql(PROMOTE, v=2)
    second_live = now()

    assert await version_at(gql, before, stage="PRODUCTION") is None
    assert await version_at(gql, first_live, stage="PRODUCTION") == 1
    assert await version_at(gql, second_live, stage="PRODUCTION") == 2
    assert await version_at(gql, second_live, stage="ARCHIVED") == 1
    assert await version_at(gql, before, stage="STAGING") == 2


async def test_where_an_alias_pointed_at_each_moment(db, gql):
    for _ in range(2):
        await make_version(db, model="m")
    await gql(ALIAS, v=1)
    on_one = now()
    await gql(ALIAS, v=2)
    on_two = now()
    await gql(UNALIAS)
    gone = now()

    assert await version_at(gql, on_one, alias="champion") == 1
    assert await version_at(gql, on_two, alias="champion") == 2
    assert await version_at(gql, gone, alias="champion") is None


async def test_version_at_needs_exactly_one_of_stage_and_alias(db, gql):
    await make_version(db, model="m")
    error = await gql.error(AT, at=now())
    assert error["extensions"]["code"] == "INVALID_INPUT"
