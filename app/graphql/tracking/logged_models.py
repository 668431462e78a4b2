"""Logged models (MLflow 3's LoggedModel) in the graph: what a run produced, its params,
tags, metrics, the runs that output it, and its files by digest. Read-only here: training
code writes them through the MLflow face."""

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

import strawberry

from app.artifacts.model_files import artifacts_by_models
from app.db.pagination import Page
from app.errors import ValidationError
from app.graphql.artifacts.types import absolute
from app.graphql.context import Ctx
from app.graphql.inputs import KeyValue, from_items
from app.graphql.pagination import Connection, to_connection
from app.graphql.scalars import EpochMillis, Long, MetricValue
from app.graphql.tracking import loaders as tracking_loaders
from app.graphql.tracking.types import Experiment, Run
from app.tracking import logged_model_reads as reads
from app.tracking import service as tracking_service
from app.tracking.logged_model_models import LoggedModel as LoggedModelRow
from app.tracking.logged_model_models import LoggedModelStatus

strawberry.enum(
    LoggedModelStatus,
    description="PENDING while its files upload; READY once complete; FAILED if they were not.",
)


def _details(ctx: Any) -> Any:
    return ctx.loader(
        "logged_model_details",
        lambda s, ids: reads.details(s, model_ids=ids),
        reads.Details,
    )


def _files(ctx: Any) -> Any:
    return ctx.loader(
        "logged_model_files",
        lambda s, ids: artifacts_by_models(s, model_ids=ids),
        list,
    )


def _by_id(ctx: Any) -> Any:
    return ctx.loader("logged_model_by_id", lambda s, ids: reads.logged_models_by_ids(s, ids=ids))


@strawberry.type(description="A metric of a logged model: its run's value at the output step.")
class LoggedModelMetric:
    key: str
    value: MetricValue
    step: Long
    timestamp: EpochMillis
    run_id: strawberry.ID


@strawberry.type(description="A run that produced the model, and at which step.")
class LoggedModelOutput:
    run_id: strawberry.ID
    step: Long

    @strawberry.field
    async def run(self, info: Ctx) -> Run | None:
        found = await tracking_loaders.run_by_id(info.context).load(str(self.run_id))
        return Run.of(found) if found else None


@strawberry.type(description="One file of a logged model.")
class LoggedModelFile:
    path: str = strawberry.field(description="Relative to the model's root.")
    digest: str = strawberry.field(description="SHA-256 of the content.")
    size: Long
    download_url: str = strawberry.field(
        description="Where to GET the content (Range supported, ETag = digest)."
    )


@strawberry.type(
    description="A model a run produced (MLflow 3's logged model, `models:/<id>`): "
    "registering a version from it snapshots its files."
)
class LoggedModel:
    id: strawberry.ID = strawberry.field(description="`m-` and 32 hexadecimal digits.")
    name: str
    status: LoggedModelStatus
    status_message: str | None
    model_type: str | None
    created_at: datetime
    updated_at: datetime
    deleted: bool = strawberry.field(description="Deleted models are hidden unless asked for.")
    experiment_id: strawberry.Private[int]
    source_run_id: strawberry.Private[str | None]

    @classmethod
    def of(cls, row: LoggedModelRow) -> "LoggedModel":
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            status=row.status,
            status_message=row.status_message,
            model_type=row.model_type,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted=row.deleted_at is not None,
            experiment_id=row.experiment_id,
            source_run_id=row.source_run_id,
        )

    @strawberry.field
    async def experiment(self, info: Ctx) -> Experiment:
        found = await tracking_loaders.experiment_by_id(info.context).load(self.experiment_id)
        return Experiment.of(found)

    @strawberry.field(description="The run that created the model, if it still exists.")
    async def source_run(self, info: Ctx) -> Run | None:
        if self.source_run_id is None:
            return None
        found = await tracking_loaders.run_by_id(info.context).load(self.source_run_id)
        return Run.of(found) if found else None

    @strawberry.field(description="Written once when the model was logged.")
    async def params(self, info: Ctx) -> list[KeyValue]:
        found = await _details(info.context).load(str(self.id))
        return from_items(found.params)

    @strawberry.field
    async def tags(self, info: Ctx) -> list[KeyValue]:
        found = await _details(info.context).load(str(self.id))
        return from_items(found.tags)

    @strawberry.field(
        description="The metrics its runs logged at the step they output it (latest per key)."
    )
    async def metrics(self, info: Ctx) -> list[LoggedModelMetric]:
        found = await _details(info.context).load(str(self.id))
        return [
            LoggedModelMetric(
                key=m.key,
                value=MetricValue(m.value),
                step=Long(m.step),
                timestamp=EpochMillis(m.timestamp),
                run_id=strawberry.ID(m.run_id),
            )
            for m in found.metrics
        ]

    @strawberry.field(description="The runs that output this model.")
    async def outputs(self, info: Ctx) -> list[LoggedModelOutput]:
        found = await _details(info.context).load(str(self.id))
        return [
            LoggedModelOutput(run_id=strawberry.ID(run_id), step=Long(step))
            for run_id, step in found.outputs
        ]

    @strawberry.field(description="Its files, by path.")
    async def files(self, info: Ctx) -> list[LoggedModelFile]:
        found = await _files(info.context).load(str(self.id))
        base = f"/api/2.0/mlflow-artifacts/artifacts/{self.experiment_id}/models/{self.id}"
        return [
            LoggedModelFile(
                path=f.path,
                digest=f.digest,
                size=Long(f.size),
                download_url=absolute(info, f"{base}/artifacts/{quote(f.path)}"),
            )
            for f in found
        ]


def _offset(after: str | None) -> int:
    if after is None:
        return 0
    try:
        padded = after + "=" * (-len(after) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        offset = values[0]
    except (ValueError, IndexError, TypeError, binascii.Error):
        raise ValidationError("after", "is not a cursor this list gave") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValidationError("after", "is not a cursor this list gave")
    return offset


@strawberry.type
class LoggedModelQuery:
    @strawberry.field(description="The logged model with this id (deleted ones too).")
    async def logged_model(self, info: Ctx, id: strawberry.ID) -> LoggedModel | None:
        found = await _by_id(info.context).load(str(id))
        return LoggedModel.of(found) if found else None

    @strawberry.field(
        description="An experiment's logged models, newest first. `filter` is MLflow's "
        "grammar: clauses joined by AND on name, model_id, model_type, status, "
        "source_run_id, creation_timestamp, metrics.<key>, params.<key>, tags.<key> "
        "(e.g. \"metrics.acc > 0.9 AND tags.team = 'a'\")."
    )
    async def logged_models(
        self,
        info: Ctx,
        experiment: str,
        filter: str | None = None,
        include_deleted: bool = False,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[LoggedModel]:
        size = info.context.page_size(first)
        offset = _offset(after)
        async with info.context.read() as session:
            found = await tracking_service.require_experiment(session, name=experiment)
            assert found.id is not None, "a stored experiment has its id"
            models, more = await reads.search_logged_models(
                session,
                experiment_ids=[found.id],
                filter=filter,
                offset=offset,
                limit=size,
                include_deleted=include_deleted,
            )
        page: Page[Any] = Page(
            items=models,
            has_next=more,
            rows=[(offset + i + 1,) for i in range(len(models))],
            key_start=0,
        )
        return to_connection(page, LoggedModel.of)
