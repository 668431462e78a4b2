"""GraphQL types of access control: roles, tokens, and who is asking."""

from datetime import datetime

import strawberry

from app.auth import models
from app.auth.roles import Role

strawberry.enum(
    Role,
    description="What a token may do; each role includes the ones before it. READER: queries "
    "and subscriptions. WRITER: experiments, runs, metrics, registering versions, validations, "
    "descriptions and tags. DEPLOYER: stage moves, promotion, rollback, aliases. ADMIN: tokens "
    "and promotion policies.",
)


@strawberry.type(description="An API token. Its secret is shown once, when it is created.")
class ApiToken:
    name: str
    role: Role
    prefix: str = strawberry.field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None = strawberry.field(
        description="When it last authenticated a request (kept to about a minute)."
    )

    @classmethod
    def of(cls, t: models.ApiToken) -> "ApiToken":
        return cls(
            name=t.name,
            role=Role(t.role),
            prefix=t.prefix,
            created_at=t.created_at,
            created_by=t.created_by,
            revoked_at=t.revoked_at,
            revoked_by=t.revoked_by,
            last_used_at=t.last_used_at,
        )


@strawberry.type(description="Who this request acts as.")
class Viewer:
    name: str = strawberry.field(
        description="The token's name (`anonymous` or `dev` without one): the actor recorded "
        "on every change this caller makes."
    )
    role: Role
