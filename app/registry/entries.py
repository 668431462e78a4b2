"""Single-purpose catalog entries: creating an empty model, one tag at a time, and renaming.

These are the narrow edits the MLflow registry API asks for one by one (and GraphQL's tag and
rename mutations); each is a thin rule over the catalog's models and versions, which
`catalog.py` keeps (with descriptions, tag sets, registration and aliases)."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.dialect import core_table, upsert_insert
from app.db.types import utcnow
from app.errors import AlreadyExistsError, NotFoundError, check_length, check_name, check_tags
from app.events.models import Event, EventType
from app.events.service import record_event
from app.registry import catalog
from app.registry.models import MODEL_NAME_LIMIT, ModelVersion, RegisteredModel
from app.tracking.models import DESCRIPTION_LIMIT, KEY_LIMIT, TAG_VALUE_LIMIT

# ---------------------------------------------------------------- models


async def create_model(
    session: AsyncSession,
    *,
    name: str,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    actor: str,
) -> RegisteredModel:
    """A new, empty registered model; AlreadyExistsError if the name is taken."""
    check_name("name", name, MODEL_NAME_LIMIT)
    check_length("description", description, DESCRIPTION_LIMIT)
    tags = tags or {}
    check_tags("tags", tags, key_limit=KEY_LIMIT, value_limit=TAG_VALUE_LIMIT)
    now = utcnow()
    table = core_table(RegisteredModel)
    stmt = (
        upsert_insert(session, table)
        .values(name=name, description=description, tags=tags, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(table.c.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        raise AlreadyExistsError("model", "name", name)
    await record_event(
        session,
        type=EventType.MODEL_CREATED,
        actor=actor,
        model=name,
        payload={"description": description, "tags": tags} if description or tags else None,
    )
    return await catalog.require_model(session, name=name, lock=True)


async def set_model_tag(
    session: AsyncSession, *, name: str, key: str, value: str, actor: str
) -> RegisteredModel:
    """Set one tag of a model (a MODEL_UPDATED event when it changes)."""
    return await catalog.update_model(session, name=name, set_tags={key: value}, actor=actor)


async def delete_model_tag(
    session: AsyncSession, *, name: str, key: str, actor: str
) -> RegisteredModel:
    """Remove one tag of a model; NotFoundError if it has no such tag."""
    model = await catalog.require_model(session, name=name, lock=True)
    if key not in (model.tags or {}):
        raise NotFoundError("model tag", "key", f"{name}/{key}")
    return await catalog.update_model(session, name=name, remove_tags=[key], actor=actor)


async def rename_model(
    session: AsyncSession, *, name: str, new_name: str, actor: str
) -> RegisteredModel:
    """Give a model a new name. Its versions, aliases, policies and stage history follow
    it (they hang on its id), and so do its past events: the outbox rows naming the old
    name are rewritten to the new one in the same unit of work, then MODEL_RENAMED is
    recorded under the new name with the old one in its payload."""
    check_name("newName", new_name, MODEL_NAME_LIMIT)
    model = await catalog.require_model(session, name=name, lock=True)
    if new_name == name:
        return model
    if await catalog.get_model(session, name=new_name) is not None:
        raise AlreadyExistsError("model", "newName", new_name)
    model.name = new_name
    model.updated_at = utcnow()
    await session.flush()
    await session.execute(
        update(Event).where(col(Event.model) == name).values(model=new_name),
        execution_options={"synchronize_session": False},
    )
    await record_event(
        session,
        type=EventType.MODEL_RENAMED,
        actor=actor,
        model=new_name,
        reason=f"renamed from {name}",
        payload={"previousName": name, "name": new_name},
    )
    return model


# ---------------------------------------------------------------- versions


async def set_version_tag(
    session: AsyncSession, *, model: str, version: int, key: str, value: str, actor: str
) -> ModelVersion:
    """Set one tag of a version (a VERSION_UPDATED event when it changes)."""
    return await catalog.update_version(
        session, model=model, version=version, set_tags={key: value}, actor=actor
    )


async def delete_version_tag(
    session: AsyncSession, *, model: str, version: int, key: str, actor: str
) -> ModelVersion:
    """Remove one tag of a version; NotFoundError if it has no such tag."""
    registered = await catalog.require_model(session, name=model, lock=True)
    found = await catalog.require_version(session, model=registered, version=version)
    if key not in (found.tags or {}):
        raise NotFoundError("model version tag", "key", f"{model}/{version}/{key}")
    return await catalog.update_version(
        session, model=model, version=version, remove_tags=[key], actor=actor
    )
