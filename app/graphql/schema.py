"""The schema: one Query and one Mutation merged from the per-domain faces."""

from functools import lru_cache
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types.graphql import OperationType

from app.graphql import errors
from app.graphql.abandoned import ClosesAbandonedResolvers
from app.graphql.auth.mutations import AuthMutation
from app.graphql.auth.queries import AuthQuery
from app.graphql.events.queries import EventsQuery
from app.graphql.events.subscriptions import EventsSubscription
from app.graphql.execution import LeafListExecution
from app.graphql.fanout import SharedSubscriptionExecution
from app.graphql.inputs import refuse_unstorable_text
from app.graphql.limits import (
    CachedValidation,
    Checks,
    DocumentCache,
    QueryLimits,
    QuerySizeLimit,
    ResultBudget,
)
from app.graphql.permissions import guard_root_fields
from app.graphql.registry import types as registry_types
from app.graphql.registry.mutations import RegistryMutation
from app.graphql.registry.queries import RegistryQuery
from app.graphql.scalars import SCALAR_MAP
from app.graphql.tracking.fast_points import FastPointsExecutionContext
from app.graphql.tracking.logged_models import LoggedModelQuery
from app.graphql.tracking.mutations import TrackingMutation
from app.graphql.tracking.queries import TrackingQuery
from app.graphql.tracking.subscriptions import TrackingSubscription


@strawberry.type
class Query(TrackingQuery, LoggedModelQuery, RegistryQuery, EventsQuery, AuthQuery):
    pass


@strawberry.type
class Subscription(EventsSubscription, TrackingSubscription):
    pass


@strawberry.type
class Mutation(TrackingMutation, RegistryMutation, AuthMutation):
    pass


guard_root_fields(Query, Mutation, Subscription)
refuse_unstorable_text(Query, Mutation, Subscription)


class Execution(
    FastPointsExecutionContext,
    LeafListExecution,
    SharedSubscriptionExecution,
    ClosesAbandonedResolvers,
):
    """graphql-core's execution with: shared subscription results (app/graphql/fanout.py);
    lists of plain objects completed in one loop (app/graphql/execution.py); the points of
    a logMetrics batch coerced in one loop (app/graphql/tracking/fast_points.py); and
    resolvers abandoned before they start closed quietly (app/graphql/abandoned.py)."""


class Schema(strawberry.Schema):
    documents: DocumentCache

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Strawberry logs every error at ERROR level; most are the client's (a typo, a
        limit). ErrorPolicy logs the bugs, with the request id."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Queries and mutations. A subscription cannot be executed as one (only streamed,
        over a WebSocket): asked for over HTTP, it is refused with a 400."""
        allowed = kwargs.get("allowed_operation_types") or DEFAULT_ALLOWED_OPERATION_TYPES
        kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
        return await super().execute(*args, **kwargs)


@lru_cache(maxsize=8)
def build_schema(limits: QueryLimits = QueryLimits()) -> Schema:
    """The schema for one set of limits, built once: its validation rules and its cache of
    parsed and validated documents live as long as it does (validation dominates a
    request)."""
    checks = Checks(limits)
    documents = DocumentCache(limits.cache_bytes)
    built = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            errors.NotFound,
            errors.InvalidInput,
            errors.AlreadyExists,
            errors.Conflict,
            errors.PermissionDenied,
        ],
        extensions=[
            lambda: QuerySizeLimit(limits.size),
            lambda: MaxTokensLimiter(limits.tokens),
            lambda: ResultBudget(limits.cost),
            lambda: CachedValidation(documents, checks),
            lambda: errors.ErrorPolicy(limits),
        ],
        exception_handlers=[*errors.HANDLERS, *registry_types.HANDLERS],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
        # Each subscription event executed once per query shared by its watchers; lists of
        # plain objects completed in one loop.
        execution_context_class=Execution,
    )
    built.documents = documents
    return built


schema = build_schema()


def export_sdl() -> str:
    return schema.as_str() + "\n"
