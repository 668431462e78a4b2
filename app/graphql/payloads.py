"""A mutation's result: its success type or one of the refusals it can meet, as a named
union built here so no mutation keeps its own list of refusals.

A resolver returns its success type; a refusal is a domain error raised inside it, which
the ExceptionHandler for that error turns into its type, but only when the type is a
member of the field's union (else it becomes a top-level error with data: null). Hence
the refusals every write can meet are always members:

- InvalidInput: any input can break a rule or a limit;
- Conflict: any unit of work can lose to a concurrent writer (a unique constraint, a
  deadlock) besides the conflicts a service names itself;
- PermissionDenied: every mutation checks the token's role.

Use it as the mutation's GraphQL type, keeping the resolver's Python type its success::

    EndRunPayload = payload("EndRunPayload", EndRunSuccess, lookups=True)

    @strawberry.mutation(graphql_type=EndRunPayload)
    async def end_run(self, info: Ctx, input: EndRunInput) -> EndRunSuccess: ...
"""

from collections.abc import Sequence
from typing import Annotated, Any, Union

import strawberry

from app.graphql.errors import AlreadyExists, Conflict, InvalidInput, NotFound, PermissionDenied

ALWAYS: tuple[type, ...] = (InvalidInput, Conflict, PermissionDenied)


def payload(
    name: str,
    success: type,
    *,
    lookups: bool = False,
    creates: bool = False,
    refusals: Sequence[type] = (),
) -> Any:
    """The union `name` of `success` and the refusals its mutation can meet: always
    InvalidInput, Conflict and PermissionDenied; NotFound when its input names something
    that must exist (`lookups`); AlreadyExists when it creates a thing under a name the
    caller chooses (`creates`); and the domain's own (`refusals`, e.g. PolicyViolation)."""
    members: list[type] = [success]
    if lookups:
        members.append(NotFound)
    if creates:
        members.append(AlreadyExists)
    members += [r for r in refusals if r not in ALWAYS]
    members += ALWAYS
    # Union[...] from a tuple is the runtime form of `A | B | ...` for a computed list.
    return Annotated[Union[tuple(members)], strawberry.union(name)]  # noqa: UP007
