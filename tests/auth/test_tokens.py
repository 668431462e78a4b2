"""API tokens: the secret is shown once and only its hash is kept, names are unique for
ever, revocation acts on the next request, and every change names the token behind it."""

import asyncio

from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import ApiToken
from app.auth.roles import Role
from app.errors import ConflictError
from app.events.models import Event
from tests.conftest import ADMIN, asgi_client, make_token

CREATE = """
mutation($name: String!, $role: Role!) {
  createApiToken(input: {name: $name, role: $role}) {
    __typename
    ... on CreateApiTokenSuccess { secret token { name role prefix createdBy revokedAt } }
    ... on Error { code message }
    ... on InvalidInput { field }
  }
}
"""
REVOKE = """
mutation($name: String!) {
  revokeApiToken(input: {name: $name}) {
    __typename
    ... on RevokeApiTokenSuccess { token { name revokedAt revokedBy } }
    ... on Error { code message }
  }
}
"""
TOKENS = "{ apiTokens { nodes { name role prefix createdBy revokedAt lastUsedAt } } }"
VIEWER = "{ viewer { name role } }"
START = 'mutation { startRun(input: {experiment: "e"}) { __typename } }'


async def stored_tokens(db) -> list[ApiToken]:
    async with db.read() as session:
        return list((await session.execute(select(ApiToken).order_by(ApiToken.id))).scalars())


async def test_a_created_token_works_and_only_its_hash_is_stored(gql, app, db):
    # when an admin creates a DEPLOYER token
    made = (await gql(CREATE, name="ci-main", role="DEPLOYER"))["createApiToken"]

    # then the answer carries the secret, which authenticates as that token
    assert made["__typename"] == "CreateApiTokenSuccess"
    secret = made["secret"]
    assert secret.startswith("mg_")
    assert len(secret) > 40
    assert made["token"] == {
        "name": "ci-main",
        "role": "DEPLOYER",
        "prefix": secret[:10],
        "createdBy": ADMIN,
        "revokedAt": None,
    }
    async with asgi_client(app, secret) as client:
        response = await client.post("/graphql", json={"query": VIEWER})
    assert response.json()["data"]["viewer"] == {"name": "ci-main", "role": "DEPLOYER"}

    # and the database holds its hash, never the secret
    stored = next(t for t in await stored_tokens(db) if t.name == "ci-main")
    assert stored.secret_hash == auth_service.hash_secret(secret)
    assert all(secret not in str(value) for value in stored.model_dump().values())


async def test_a_token_name_is_unique_for_ever_and_must_be_plain(gql):
    assert (await gql(CREATE, name="ci", role="WRITER"))["createApiToken"]["__typename"] == (
        "CreateApiTokenSuccess"
    )
    await gql(REVOKE, name="ci")
    again = (await gql(CREATE, name="ci", role="WRITER"))["createApiToken"]
    assert again["code"] == "ALREADY_EXISTS"
    for bad in ("", "has space", "x" * 65, "-leading", "ünïcode", "a\nb", "anonymous", "Dev"):
        refused = (await gql(CREATE, name=bad, role="READER"))["createApiToken"]
        assert refused["__typename"] == "InvalidInput", bad
        assert refused["field"] == "name", bad


async def test_a_revoked_token_is_refused_on_the_next_request(app, gql, database_url):
    # given a WRITER token that works
    secret = await make_token(database_url, "trainer", Role.WRITER)
    async with asgi_client(app, secret) as client:
        assert (await client.post("/graphql", json={"query": START})).status_code == 200

        # when an admin revokes it
        revoked = (await gql(REVOKE, name="trainer"))["revokeApiToken"]

        # then the next request is a 401, whatever it asks
        response = await client.post("/graphql", json={"query": VIEWER})
    assert revoked["token"]["revokedBy"] == ADMIN
    assert revoked["token"]["revokedAt"]
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # revoking it again changes nothing
    assert (await gql(REVOKE, name="trainer"))["revokeApiToken"]["token"]["revokedAt"] == (
        revoked["token"]["revokedAt"]
    )


async def test_the_last_active_admin_cannot_be_revoked(gql, db):
    refused = (await gql(REVOKE, name=ADMIN))["revokeApiToken"]
    assert refused["code"] == "CONFLICT"
    assert "last active ADMIN" in refused["message"]
    assert all(t.revoked_at is None for t in await stored_tokens(db))


async def test_token_changes_are_events_naming_who_made_them(gql, db):
    await gql(CREATE, name="ci", role="DEPLOYER")
    await gql(REVOKE, name="ci")
    async with db.read() as session:
        events = (
            await session.execute(
                select(Event.type, Event.actor, Event.payload)
                .where(Event.type.in_(["TOKEN_CREATED", "TOKEN_REVOKED"]))
                .order_by(Event.seq)
            )
        ).all()
    assert [tuple(e) for e in events][-2:] == [
        ("TOKEN_CREATED", ADMIN, {"name": "ci", "role": "DEPLOYER"}),
        ("TOKEN_REVOKED", ADMIN, {"name": "ci"}),
    ]


async def test_every_change_records_the_token_that_made_it(app, database_url, db):
    secret = await make_token(database_url, "trainer", Role.WRITER)
    async with asgi_client(app, secret) as client:
        await client.post("/graphql", json={"query": START})
    async with db.read() as session:
        actors = set(
            (
                await session.execute(select(Event.actor).where(Event.type == "RUN_STARTED"))
            ).scalars()
        )
    assert actors == {"trainer"}


async def test_admins_list_tokens_with_their_last_use_but_never_a_secret(gql, db):
    # given a request made with the admin token (its use is recorded in the background)
    await gql(VIEWER)
    for _ in range(100):
        if all(t.last_used_at for t in await stored_tokens(db)):
            break
        await asyncio.sleep(0.05)

    # when the tokens are listed
    nodes = (await gql(TOKENS))["apiTokens"]["nodes"]

    # then each shows its name, role, prefix and last use; no field can carry a secret
    assert [(n["name"], n["role"]) for n in nodes] == [(ADMIN, "ADMIN")]
    assert nodes[0]["lastUsedAt"] is not None
    assert "secret" not in TOKENS


async def test_two_racing_revocations_cannot_leave_no_admin(db):
    # given exactly two active ADMIN tokens
    for name in ("a1", "a2"):
        async with db.unit_of_work() as session:
            await auth_service.create_token(session, name=name, role=Role.ADMIN, actor="t")

    # when both are revoked at once
    async def revoke(name: str) -> str:
        try:
            async with db.unit_of_work() as session:
                await auth_service.revoke_token(session, name=name, actor="t")
        except ConflictError:
            return "refused"
        return "revoked"

    outcomes = await asyncio.gather(revoke("a1"), revoke("a2"))

    # then one wins and one ADMIN is left
    assert sorted(outcomes) == ["refused", "revoked"]
    active = [t for t in await stored_tokens(db) if t.revoked_at is None]
    assert [t.role for t in active] == ["ADMIN"]
