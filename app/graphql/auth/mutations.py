import strawberry

from app.auth import service as auth_service
from app.auth.roles import Role
from app.graphql.auth.types import ApiToken
from app.graphql.context import Ctx
from app.graphql.payloads import payload


@strawberry.input
class CreateApiTokenInput:
    name: str = strawberry.field(
        description="Unique for ever (the audit trail names tokens): letters, digits, . _ -"
    )
    role: Role


@strawberry.type
class CreateApiTokenSuccess:
    token: ApiToken
    secret: str = strawberry.field(
        description="Send as `Authorization: Bearer <secret>`. Shown only this once."
    )


CreateApiTokenPayload = payload("CreateApiTokenPayload", CreateApiTokenSuccess, creates=True)


@strawberry.input
class RevokeApiTokenInput:
    name: str


@strawberry.type
class RevokeApiTokenSuccess:
    token: ApiToken


RevokeApiTokenPayload = payload("RevokeApiTokenPayload", RevokeApiTokenSuccess, lookups=True)


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        graphql_type=CreateApiTokenPayload,
        description="A new API token; its secret is in the answer, only there.",
    )
    async def create_api_token(
        self, info: Ctx, input: CreateApiTokenInput
    ) -> CreateApiTokenSuccess:
        async with info.context.unit_of_work() as session:
            token, secret = await auth_service.create_token(
                session, name=input.name, role=input.role, actor=info.context.actor
            )
        return CreateApiTokenSuccess(token=ApiToken.of(token), secret=secret)

    @strawberry.mutation(
        graphql_type=RevokeApiTokenPayload,
        description="Revoke a token: it stops working at once, on open subscriptions too. "
        "The last active ADMIN token cannot be revoked (a Conflict): create another first.",
    )
    async def revoke_api_token(
        self, info: Ctx, input: RevokeApiTokenInput
    ) -> RevokeApiTokenSuccess:
        async with info.context.unit_of_work() as session:
            token = await auth_service.revoke_token(
                session, name=input.name, actor=info.context.actor
            )
        return RevokeApiTokenSuccess(token=ApiToken.of(token))
