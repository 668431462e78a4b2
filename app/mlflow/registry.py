"""MLflow's model registry calls (registered-models/…, model-versions/…) over the registry's
services: the same writes, events and audit rows as the GraphQL mutations.

MLflow's stages are the lifecycle's: None, Staging, Production, Archived are DEVELOPMENT,
STAGING, PRODUCTION, ARCHIVED. MLflow moves a version between any two stages in one
call; here such a move walks the lifecycle's allowed path (None → Production goes
through Staging), each step checked against the promotion policy, in one unit of work
(walk.walk_version). A policy refusal is INVALID_STATE with every unmet condition.
"""

import base64
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.mlflow import uris
from app.mlflow.wire import Call, MlflowError, endpoint, invalid, millis
from app.registry import catalog, entries, reads, removal, search, walk
from app.registry.errors import InvalidTransitionError
from app.registry.models import ModelVersion, RegisteredModel
from app.registry.policy import PolicyViolationError
from app.registry.stages import Stage

STAGE_NAMES = {
    Stage.DEVELOPMENT: "None",
    Stage.STAGING: "Staging",
    Stage.PRODUCTION: "Production",
    Stage.ARCHIVED: "Archived",
}
STAGES = {name.lower(): stage for stage, name in STAGE_NAMES.items()}
MODELS_SEARCH_MAX = 1000
VERSIONS_SEARCH_MAX = 200_000


def _stage(text: str) -> Stage:
    found = STAGES.get(text.strip().lower())
    if found is None:
        raise invalid(
            f"Invalid Model Version stage: {text}. Value must be one of "
            f"{', '.join(STAGE_NAMES.values())}."
        )
    return found


def _tags(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in sorted((tags or {}).items())]


def _tag_dict(call: Call, name: str = "tags") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in call.objects(name):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str | int | float):
            raise invalid(f"Invalid value for parameter '{name}': key/value pairs of strings")
        out[key] = str(value)
    return out


VERSION_MAX = 2**31 - 1  # the column is a 32-bit integer


def _version_number(call: Call) -> int:
    number = call.integer("version", required=True)
    assert number is not None
    if not 1 <= number <= VERSION_MAX:
        raise invalid(f"Invalid value {number} for parameter 'version': from 1 to {VERSION_MAX}")
    return number


def version_json(name: str, v: ModelVersion, aliases: Sequence[str]) -> dict[str, Any]:
    """A ModelVersion message as MLflow's client reads it."""
    out: dict[str, Any] = {
        "name": name,
        "version": str(v.version),
        "creation_timestamp": millis(v.created_at),
        "last_updated_timestamp": millis(v.updated_at),
        "current_stage": STAGE_NAMES[v.stage],
        "source": v.source or "",
        "status": "READY",
        "tags": _tags(v.tags),
        "aliases": list(aliases),
        "run_link": v.run_link or "",
    }
    # Absent, not empty, when unset: the client reads an empty run_id as a run id.
    if v.description is not None:
        out["description"] = v.description
    if v.run_id is not None:
        out["run_id"] = v.run_id
    if v.logged_model_id:
        out["model_id"] = v.logged_model_id
    return out


async def _versions_json(
    session: AsyncSession, pairs: Sequence[tuple[str, ModelVersion]]
) -> list[dict[str, Any]]:
    ids = [v.id for _, v in pairs if v.id is not None]
    aliases = await reads.aliases_by_versions(session, version_ids=ids)
    return [version_json(name, v, aliases.get(v.id or 0, [])) for name, v in pairs]


async def _models_json(
    session: AsyncSession, models: Sequence[RegisteredModel]
) -> list[dict[str, Any]]:
    ids = [m.id for m in models if m.id is not None]
    latest = await reads.latest_per_stage(session, model_ids=ids)
    aliases = await reads.aliases_by_models(session, model_ids=ids)
    # Every model's latest versions in one batch (one alias read for all of them).
    pairs = [(m.name, v) for m in models for v in latest.get(m.id or 0, [])]
    shown_versions = iter(await _versions_json(session, pairs))
    out = []
    for m in models:
        mine = latest.get(m.id or 0, [])
        shown: dict[str, Any] = {
            "name": m.name,
            "creation_timestamp": millis(m.created_at),
            "last_updated_timestamp": millis(m.updated_at),
            "latest_versions": [next(shown_versions) for _ in mine],
            "tags": _tags(m.tags),
            "aliases": [
                {"alias": alias, "version": str(v.version)}
                for alias, v in aliases.get(m.id or 0, [])
            ],
        }
        if m.description is not None:
            shown["description"] = m.description
        out.append(shown)
    return out


async def _model_json(session: AsyncSession, model: RegisteredModel) -> dict[str, Any]:
    return (await _models_json(session, [model]))[0]


async def _one_version_json(session: AsyncSession, name: str, v: ModelVersion) -> dict[str, Any]:
    return (await _versions_json(session, [(name, v)]))[0]


def _offset(call: Call) -> int:
    token = call.text("page_token")
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token {token[:50]!r}") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid(f"Invalid page token {token[:50]!r}")
    return offset


def _token(offset: int | None) -> str | None:
    if offset is None:
        return None
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _max_results(call: Call, default: int, limit: int) -> int:
    count = call.integer("max_results", default=default)
    assert count is not None
    if count < 1 or count > limit:
        raise invalid(f"Invalid value for max_results: {count}; it must be between 1 and {limit}")
    return count


# ---------------------------------------------------------------- registered models


@endpoint("POST", "registered-models/create", operation="mlflow.create_registered_model")
async def create_registered_model(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        model = await entries.create_model(
            session,
            name=call.required_text("name"),
            description=call.text("description"),
            tags=_tag_dict(call),
            actor=call.principal.actor,
        )
        return {"registered_model": await _model_json(session, model)}


@endpoint("GET", "registered-models/get", operation="model")
async def get_registered_model(call: Call) -> dict[str, Any]:
    async with call.db.read() as session:
        model = await catalog.require_model(session, name=call.required_text("name"), field="name")
        return {"registered_model": await _model_json(session, model)}


@endpoint("GET", "registered-models/search", operation="models")
async def search_registered_models(call: Call) -> dict[str, Any]:
    limit = _max_results(call, 100, MODELS_SEARCH_MAX)
    async with call.db.read() as session:
        models, after = await search.search_models(
            session,
            filter=call.text("filter"),
            order_by=call.texts("order_by"),
            offset=_offset(call),
            limit=limit,
        )
        found = await _models_json(session, models)
    answer: dict[str, Any] = {"registered_models": found}
    if after is not None:
        answer["next_page_token"] = _token(after)
    return answer


@endpoint("PATCH", "registered-models/update", operation="update_model")
async def update_registered_model(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        model = await catalog.update_model(
            session,
            name=call.required_text("name"),
            description=call.text("description"),
            actor=call.principal.actor,
        )
        return {"registered_model": await _model_json(session, model)}


@endpoint("POST", "registered-models/rename", operation="rename_model")
async def rename_registered_model(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        model = await entries.rename_model(
            session,
            name=call.required_text("name"),
            new_name=call.required_text("new_name"),
            actor=call.principal.actor,
        )
        return {"registered_model": await _model_json(session, model)}


@endpoint("DELETE", "registered-models/delete", operation="delete_model")
async def delete_registered_model(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await removal.delete_model(
            session, name=call.required_text("name"), actor=call.principal.actor
        )
    return {}


@endpoint("POST", "registered-models/set-tag", operation="set_model_tag")
async def set_registered_model_tag(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await entries.set_model_tag(
            session,
            name=call.required_text("name"),
            key=call.required_text("key"),
            value=call.text("value", default="") or "",
            actor=call.principal.actor,
        )
    return {}


@endpoint("DELETE", "registered-models/delete-tag", operation="delete_model_tag")
async def delete_registered_model_tag(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await entries.delete_model_tag(
            session,
            name=call.required_text("name"),
            key=call.required_text("key"),
            actor=call.principal.actor,
        )
    return {}


@endpoint("POST", "registered-models/alias", operation="set_model_alias")
async def set_registered_model_alias(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await catalog.set_alias(
            session,
            model=call.required_text("name"),
            alias=call.required_text("alias"),
            version=_version_number(call),
            actor=call.principal.actor,
        )
    return {}


@endpoint("DELETE", "registered-models/alias", operation="delete_model_alias")
async def delete_registered_model_alias(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await catalog.delete_alias(
            session,
            model=call.required_text("name"),
            alias=call.required_text("alias"),
            actor=call.principal.actor,
        )
    return {}


@endpoint("GET", "registered-models/alias", operation="model_version")
async def get_model_version_by_alias(call: Call) -> dict[str, Any]:
    name, alias = call.required_text("name"), call.required_text("alias")
    async with call.db.read() as session:
        await catalog.require_model(session, name=name, field="name")
        found = await catalog.get_version(session, model=name, alias=alias)
        if found is None:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"Registered model alias {alias} not found."
            )
        return {"model_version": await _one_version_json(session, name, found)}


async def _latest_versions(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    stages = [_stage(s) for s in call.texts("stages")] or None
    async with call.db.read() as session:
        model = await catalog.require_model(session, name=name, field="name")
        assert model.id is not None
        latest = await reads.latest_per_stage(session, model_ids=[model.id], stages=stages)
        found = await _versions_json(session, [(name, v) for v in latest.get(model.id, [])])
    return {"model_versions": found}


@endpoint("POST", "registered-models/get-latest-versions", operation="model")
async def get_latest_versions_post(call: Call) -> dict[str, Any]:
    return await _latest_versions(call)


@endpoint("GET", "registered-models/get-latest-versions", operation="model")
async def get_latest_versions_get(call: Call) -> dict[str, Any]:
    return await _latest_versions(call)


# ---------------------------------------------------------------- model versions


@endpoint("POST", "model-versions/create", operation="register_model_version")
async def create_model_version(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    source = call.text("source")
    async with call.db.unit_of_work() as session:
        # MLflow registers versions of existing models only (register_model creates the
        # model first); GraphQL's registerModelVersion creates it on the way.
        await catalog.require_model(session, name=name, field="name")
        registration = await catalog.register_version(
            session,
            model=name,
            run_id=call.text("run_id") or None,
            source=source,
            description=call.text("description"),
            tags=_tag_dict(call),
            run_link=call.text("run_link") or None,
            # A models:/<id> source (or model_id) registers that logged model's files.
            logged_model_id=call.text("model_id") or None,
            actor=call.principal.actor,
        )
        return {"model_version": await _one_version_json(session, name, registration.version)}


async def _require_version(session: AsyncSession, call: Call) -> tuple[str, ModelVersion]:
    name, number = call.required_text("name"), _version_number(call)
    model = await catalog.require_model(session, name=name, field="name")
    return name, await catalog.require_version(session, model=model, version=number)


@endpoint("GET", "model-versions/get", operation="model_version")
async def get_model_version(call: Call) -> dict[str, Any]:
    async with call.db.read() as session:
        name, found = await _require_version(session, call)
        return {"model_version": await _one_version_json(session, name, found)}


@endpoint("GET", "model-versions/search", operation="model_version")
async def search_model_versions(call: Call) -> dict[str, Any]:
    limit = _max_results(call, 10_000, VERSIONS_SEARCH_MAX)
    async with call.db.read() as session:
        pairs, after = await search.search_versions(
            session,
            filter=call.text("filter"),
            order_by=call.texts("order_by"),
            offset=_offset(call),
            limit=limit,
        )
        found = await _versions_json(session, pairs)
    answer: dict[str, Any] = {"model_versions": found}
    if after is not None:
        answer["next_page_token"] = _token(after)
    return answer


@endpoint("PATCH", "model-versions/update", operation="update_model_version")
async def update_model_version(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    async with call.db.unit_of_work() as session:
        found = await catalog.update_version(
            session,
            model=name,
            version=_version_number(call),
            description=call.text("description"),
            actor=call.principal.actor,
        )
        return {"model_version": await _one_version_json(session, name, found)}


@endpoint("DELETE", "model-versions/delete", operation="delete_model_version")
async def delete_model_version(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await removal.delete_version(
            session,
            model=call.required_text("name"),
            version=_version_number(call),
            actor=call.principal.actor,
        )
    return {}


@endpoint("POST", "model-versions/transition-stage", operation="transition_model_version")
async def transition_model_version_stage(call: Call) -> dict[str, Any]:
    name = call.required_text("name")
    stage = _stage(call.required_text("stage"))
    try:
        async with call.db.unit_of_work() as session:
            result = await walk.walk_version(
                session,
                model=name,
                version=_version_number(call),
                stage=stage,
                archive_others=call.boolean("archive_existing_versions"),
                actor=call.principal.actor,
            )
            return {"model_version": await _one_version_json(session, name, result.version)}
    except (PolicyViolationError, InvalidTransitionError) as refused:
        raise MlflowError("INVALID_STATE", refused.message) from None


@endpoint("POST", "model-versions/set-tag", operation="set_model_version_tag")
async def set_model_version_tag(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await entries.set_version_tag(
            session,
            model=call.required_text("name"),
            version=_version_number(call),
            key=call.required_text("key"),
            value=call.text("value", default="") or "",
            actor=call.principal.actor,
        )
    return {}


@endpoint("DELETE", "model-versions/delete-tag", operation="delete_model_version_tag")
async def delete_model_version_tag(call: Call) -> dict[str, Any]:
    async with call.db.unit_of_work() as session:
        await entries.delete_version_tag(
            session,
            model=call.required_text("name"),
            version=_version_number(call),
            key=call.required_text("key"),
            actor=call.principal.actor,
        )
    return {}


@endpoint("GET", "model-versions/get-download-uri", operation="model_version")
async def get_model_version_download_uri(call: Call) -> dict[str, Any]:
    async with call.db.read() as session:
        _, found = await _require_version(session, call)
        # A version registered with files kept elsewhere (an s3:// source) is fetched
        # from there, as MLflow does; every other version from its own files here.
        elsewhere = await reads.external_source(session, version=found)
    return {"artifact_uri": elsewhere or uris.version_artifact_uri(found.model_id, found.version)}
