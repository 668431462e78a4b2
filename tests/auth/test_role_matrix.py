"""Every query, mutation and subscription under every role: allowed where the matrix
(app/auth/roles.py) says, PermissionDenied naming the role needed, and nothing changed,
everywhere else."""

import pytest

from app.auth.roles import OPERATION_ROLES, Principal, Role
from app.graphql.events.types import event_cursor
from app.graphql.schema import schema
from app.registry import catalog
from app.registry.stages import Stage
from app.tracking import service as tracking_service
from app.tracking.models import RunStatus
from tests.conftest import asgi_client, make_token, subscription_context
from tests.factories import make_run, make_version
from tests.integrity import snapshot

RUN = "$run: ID!"
# operation: (the document, run with {"run": <a run id>, "name": <unique per call>})
OPERATIONS: dict[str, str] = {
    "viewer": "{ viewer { name } }",
    "experiments": "{ experiments { nodes { name } } }",
    "experiment": '{ experiment(name: "exp") { name } }',
    "run": f"query({RUN}) {{ run(id: $run) {{ id }} }}",
    "runs": '{ runs(experiment: "exp") { nodes { id } } }',
    "best_run": '{ bestRun(experiment: "exp", metric: "acc") { id } }',
    "search_runs": '{ searchRuns(filter: "metrics.acc > 0.5", orderBy: ["metrics.acc DESC"]) { nodes { id } } }',
    "models": "{ models { nodes { name } } }",
    "model": '{ model(name: "m") { name } }',
    "model_version": '{ modelVersion(model: "m", version: 1) { version } }',
    "check_promotion": '{ checkPromotion(model: "m", version: 1, stage: STAGING) { unmet { condition } } }',
    "events": "{ events { nodes { type } } }",
    "logged_model": '{ loggedModel(id: "m-00000000000000000000000000000000") { id } }',
    "logged_models": '{ loggedModels(experiment: "exp") { nodes { id } } }',
    "api_tokens": "{ apiTokens { nodes { name } } }",
    # From the first event, so an allowed watcher gets one at once.
    "lifecycle_events": "subscription($start: String) { lifecycleEvents(after: $start) { type } }",
    # Of a finished run, so an allowed watcher's stream simply ends.
    "run_metrics": "subscription($done: ID!) { runMetrics(runId: $done) { points { key } } }",
    "create_experiment": "mutation($name: String!) { createExperiment(input: {name: $name}) { __typename ...D } }",
    "start_run": 'mutation { startRun(input: {experiment: "exp"}) { __typename ...D } }',
    "log_metrics": f'mutation({RUN}) {{ logMetrics(input: {{runId: $run, points: [{{key: "acc", value: 0.5, step: 9}}]}}) {{ __typename ...D }} }}',
    "log_params": f'mutation({RUN}, $name: String!) {{ logParams(input: {{runId: $run, params: [{{key: $name, value: "1"}}]}}) {{ __typename ...D }} }}',
    "set_run_tags": f'mutation({RUN}) {{ setRunTags(input: {{runId: $run, tags: [{{key: "t", value: "v"}}]}}) {{ __typename ...D }} }}',
    "end_run": f"mutation({RUN}) {{ endRun(input: {{runId: $run}}) {{ __typename ...D }} }}",
    "update_run": f"mutation({RUN}, $name: String!) {{ updateRun(input: {{runId: $run, name: $name}}) {{ __typename ...D }} }}",
    "delete_run": f"mutation({RUN}) {{ deleteRun(input: {{runId: $run}}) {{ __typename ...D }} }}",
    "restore_run": f"mutation({RUN}) {{ restoreRun(input: {{runId: $run}}) {{ __typename ...D }} }}",
    "delete_run_tag": f'mutation({RUN}) {{ deleteRunTag(input: {{runId: $run, key: "t"}}) {{ __typename ...D }} }}',
    "log_inputs": f'mutation({RUN}) {{ logInputs(input: {{runId: $run, datasets: [{{name: "d", digest: "1", sourceType: "local", source: "/d"}}]}}) {{ __typename ...D }} }}',
    "update_experiment": 'mutation($name: String!) { updateExperiment(input: {id: "1", name: $name}) { __typename ...D } }',
    "delete_experiment": 'mutation { deleteExperiment(input: {id: "1"}) { __typename ...D } }',
    "restore_experiment": 'mutation { restoreExperiment(input: {id: "1"}) { __typename ...D } }',
    "register_model_version": 'mutation { registerModelVersion(input: {model: "m"}) { __typename ...D } }',
    "record_validation": 'mutation { recordValidation(input: {model: "m", version: 1, check: "ci", status: PASSED}) { __typename ...D } }',
    "update_model": 'mutation { updateModel(input: {name: "m", description: "d"}) { __typename ...D } }',
    "update_model_version": 'mutation { updateModelVersion(input: {model: "m", version: 1, description: "d"}) { __typename ...D } }',
    "set_model_tag": 'mutation { setModelTag(input: {name: "m", key: "t", value: "v"}) { __typename ...D } }',
    "delete_model_tag": 'mutation { deleteModelTag(input: {name: "m", key: "t"}) { __typename ...D } }',
    "set_model_version_tag": 'mutation { setModelVersionTag(input: {model: "m", version: 1, key: "t", value: "v"}) { __typename ...D } }',
    "delete_model_version_tag": 'mutation { deleteModelVersionTag(input: {model: "m", version: 1, key: "t"}) { __typename ...D } }',
    "rename_model": 'mutation($name: String!) { renameModel(input: {name: "m", newName: $name}) { __typename ...D } }',
    "delete_model": 'mutation { deleteModel(input: {name: "m"}) { __typename ...D } }',
    "delete_model_version": 'mutation { deleteModelVersion(input: {model: "m", version: 1}) { __typename ...D } }',
    "transition_model_version": 'mutation { transitionModelVersion(input: {model: "m", version: 1, stage: STAGING}) { __typename ...D } }',
    "promote_best_run": 'mutation { promoteBestRun(input: {experiment: "exp", metric: "acc", model: "m"}) { __typename ...D } }',
    "rollback_model": 'mutation { rollbackModel(input: {model: "m"}) { __typename ...D } }',
    "set_model_alias": 'mutation { setModelAlias(input: {model: "m", alias: "champion", version: 1}) { __typename ...D } }',
    "delete_model_alias": 'mutation { deleteModelAlias(input: {model: "m", alias: "old"}) { __typename ...D } }',
    "set_promotion_policy": 'mutation { setPromotionPolicy(input: {model: "m", stage: PRODUCTION, requiredChecks: ["ci"]}) { __typename ...D } }',
    "create_api_token": "mutation($name: String!) { createApiToken(input: {name: $name, role: READER}) { __typename ...D } }",
    "revoke_api_token": 'mutation { revokeApiToken(input: {name: "victim"}) { __typename ...D } }',
}
DENIED = " fragment D on PermissionDenied { code operation requiredRole role }"
# The matrix, written out: READER reads and watches; WRITER logs experiments,
# runs and metrics, registers versions, records validations (and edits descriptions and
# tags); DEPLOYER moves stages, promotes, rolls back, sets aliases; ADMIN runs tokens and
# promotion policies.
MATRIX = {
    Role.READER: {
        "viewer", "experiments", "experiment", "run", "runs", "best_run", "models", "model",
        "model_version", "check_promotion", "events", "lifecycle_events", "run_metrics",
        "search_runs",
        "logged_model", "logged_models",
    },
    Role.WRITER: {
        "create_experiment", "start_run", "log_metrics", "log_params", "set_run_tags",
        "end_run", "register_model_version", "record_validation", "update_model",
        "update_model_version", "set_model_tag", "delete_model_tag", "set_model_version_tag",
        "delete_model_version_tag", "update_run", "delete_run", "restore_run",
        "delete_run_tag", "log_inputs", "update_experiment", "delete_experiment",
        "restore_experiment",
    },
    Role.DEPLOYER: {
        "transition_model_version", "promote_best_run", "rollback_model", "set_model_alias",
        "delete_model_alias", "rename_model", "delete_model", "delete_model_version",
    },
    Role.ADMIN: {"set_promotion_policy", "api_tokens", "create_api_token", "revoke_api_token"},
}  # fmt: skip
EXPECTED = {operation: role for role, operations in MATRIX.items() for operation in operations}
ROLES = list(Role)


def test_every_operation_of_the_schema_is_in_the_matrix_and_here():
    roots = {
        f.python_name
        for root in (schema.query, schema.mutation, schema.subscription)
        for f in root.__strawberry_definition__.fields
    }
    assert roots == set(OPERATION_ROLES) == set(OPERATIONS) == set(EXPECTED)
    assert OPERATION_ROLES == EXPECTED


async def seed(db) -> dict[str, str]:
    """A running run with a metric and a finished one, a model with versions in
    DEVELOPMENT and PRODUCTION and an alias; the variables the operations use."""
    run = await make_run(db, experiment="exp", metrics={"acc": 0.9})
    done = await make_run(db, experiment="exp")
    await make_version(db, model="m", run_id=run.id)
    await make_version(db, model="m", run_id=run.id, stage=Stage.PRODUCTION)
    async with db.unit_of_work() as session:
        await catalog.set_alias(session, model="m", alias="old", version=2, actor="t")
        await tracking_service.end_run(
            session, run_id=done.id, status=RunStatus.FINISHED, actor="t"
        )
    return {"run": run.id, "done": done.id, "start": event_cursor(0)}


async def subscribe(app, db, principal: Principal, query: str, variables: dict) -> dict:
    """The first result of a subscription (in process: the role check is the same field
    extension as over WebSocket), or {} when the stream ends without one."""
    context = subscription_context(app, principal, db)
    stream = await schema.subscribe(query, variable_values=variables, context_value=context)
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return {}
    finally:
        await stream.aclose()
    return {"data": first.data, "errors": [e.formatted for e in first.errors or ()]}


async def call(app, db, secret: str, principal: Principal, operation: str, given: dict, n: int):
    """Run `operation` as the token; the answer (data and errors) as a dict."""
    query = OPERATIONS[operation]
    variables = {k: v for k, v in {**given, "name": f"n{n}"}.items() if f"${k}" in query}
    if query.startswith("subscription"):
        return await subscribe(app, db, principal, query, variables)
    query = query + DENIED if "...D" in query else query
    async with asgi_client(app, secret) as client:
        response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def denial(answer: dict, operation: str) -> dict | None:
    """The PermissionDenied the answer carries (payload or top-level error), if any."""
    for value in (
        (answer.get("data") or {}).values() if isinstance(answer.get("data"), dict) else ()
    ):
        if isinstance(value, dict) and value.get("__typename") == "PermissionDenied":
            return value
    for error in answer.get("errors") or ():
        extensions = error.get("extensions") or {}
        if extensions.get("code") == "PERMISSION_DENIED":
            return extensions
    return None


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_an_operation_under_every_role(operation, app, db):
    # given the data every operation needs (written through the app's own database, so its
    # event bus hears of the events at once), and a token of each role
    given = await seed(app.state.db)
    secrets = {role: await make_token(db, f"as-{role.value.lower()}", role) for role in ROLES}
    await make_token(db, "victim", Role.READER)
    required = EXPECTED[operation]

    for n, role in enumerate(ROLES):
        principal = Principal(name=f"as-{role.value.lower()}", role=role, token_id=0)
        before = await snapshot(db)

        # when the operation is called with that role
        answer = await call(app, db, secrets[role], principal, operation, given, n)

        # then it is refused, naming the role it needs, and nothing changed; or it runs
        refused = denial(answer, operation)
        if role.includes(required):
            assert refused is None, (role, answer)
            assert not any(
                (e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
                for e in answer.get("errors") or ()
            ), answer
        else:
            assert refused is not None, (role, answer)
            assert refused["requiredRole"] == required.value
            assert refused["role"] == role.value
            assert refused.get("code", "PERMISSION_DENIED") == "PERMISSION_DENIED"
            assert await snapshot(db) == before
