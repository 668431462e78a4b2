import strawberry

from app.auth import service as auth_service
from app.graphql.auth.types import ApiToken, Viewer
from app.graphql.context import Ctx
from app.graphql.pagination import Connection, to_connection


@strawberry.type
class AuthQuery:
    @strawberry.field(description="Who this request acts as, and with which role.")
    def viewer(self, info: Ctx) -> Viewer:
        principal = info.context.principal
        assert principal is not None
        return Viewer(name=principal.name, role=principal.role)

    @strawberry.field(description="API tokens in creation order, revoked ones included.")
    async def api_tokens(
        self,
        info: Ctx,
        include_revoked: bool = True,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[ApiToken]:
        size = info.context.page_size(first)
        async with info.context.read() as session:
            page = await auth_service.list_tokens(
                session, first=size, after=after, include_revoked=include_revoked
            )
        return to_connection(page, ApiToken.of)
