"""The schema: one Query and one Mutation merged from the per-domain faces."""

import strawberry
from strawberry.extensions import AddValidationRules, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from app.graphql import errors
from app.graphql.events.queries import EventsQuery
from app.graphql.events.subscriptions import EventsSubscription
from app.graphql.limits import VALIDATION_RULES
from app.graphql.registry import types as registry_types
from app.graphql.registry.mutations import RegistryMutation
from app.graphql.registry.queries import RegistryQuery
from app.graphql.scalars import SCALAR_MAP
from app.graphql.tracking.mutations import TrackingMutation
from app.graphql.tracking.queries import TrackingQuery
from app.graphql.tracking.subscriptions import TrackingSubscription


@strawberry.type
class Query(TrackingQuery, RegistryQuery, EventsQuery):
    pass


@strawberry.type
class Subscription(EventsSubscription, TrackingSubscription):
    pass


@strawberry.type
class Mutation(TrackingMutation, RegistryMutation):
    pass


def build_schema() -> strawberry.Schema:
    """The schema with parser and validation caches (validation dominates a request: NOTES.md)."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[errors.NotFound, errors.InvalidInput, errors.AlreadyExists, errors.Conflict],
        extensions=[
            lambda: AddValidationRules(VALIDATION_RULES),
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            errors.ErrorPolicy,
        ],
        exception_handlers=[*errors.HANDLERS, *registry_types.HANDLERS],
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    )


schema = build_schema()


def export_sdl() -> str:
    return schema.as_str() + "\n"
