"""GraphQL for what the tracking core grew: soft delete and restore, renames and tags,
resume, nested runs, dataset inputs (and the lineage from a version to its data), and run
search across experiments in MLflow's grammar; refusals are typed."""

from app.db import Database
from app.registry import catalog
from app.tracking import datasets
from tests.factories import ACTOR, make_run

RUN_FIELDS = "id name status deleted userId parent { id } children { id }"
DELETE_RUN = f"""
mutation($run: ID!) {{
  deleteRun(input: {{runId: $run}}) {{
    __typename ... on DeleteRunSuccess {{ run {{ {RUN_FIELDS} }} }}
    ... on NotFound {{ field value }}
  }}
}}
"""
RESTORE_RUN = f"""
mutation($run: ID!) {{
  restoreRun(input: {{runId: $run}}) {{
    __typename ... on RestoreRunSuccess {{ run {{ {RUN_FIELDS} }} }}
    ... on Conflict {{ field message }}
  }}
}}
"""
UPDATE_RUN = """
mutation($run: ID!, $name: String, $resume: Boolean!) {
  updateRun(input: {runId: $run, name: $name, resume: $resume}) {
    __typename ... on UpdateRunSuccess { run { name status endTime } }
    ... on InvalidInput { field message }
  }
}
"""
DELETE_RUN_TAG = """
mutation($run: ID!, $key: String!) {
  deleteRunTag(input: {runId: $run, key: $key}) {
    __typename ... on DeleteRunTagSuccess { run { tags { key value } } }
    ... on NotFound { field value }
  }
}
"""
DELETE_EXPERIMENT = """
mutation($id: ID!) {
  deleteExperiment(input: {id: $id}) {
    __typename ... on DeleteExperimentSuccess { experiment { name deleted runCount } }
    ... on InvalidInput { field message }
    ... on NotFound { field value }
  }
}
"""
RESTORE_EXPERIMENT = """
mutation($id: ID!) {
  restoreExperiment(input: {id: $id}) {
    __typename ... on RestoreExperimentSuccess { experiment { name deleted runCount } }
  }
}
"""
UPDATE_EXPERIMENT = """
mutation($id: ID!, $name: String, $set: [KeyValueInput!], $delete: [String!]) {
  updateExperiment(input: {id: $id, name: $name, setTags: $set, deleteTags: $delete}) {
    __typename ... on UpdateExperimentSuccess { experiment { name tags { key value } } }
    ... on AlreadyExists { field value }
    ... on NotFound { field value }
  }
}
"""
EXPERIMENTS = """
query($deleted: Boolean!) { experiments(includeDeleted: $deleted) { nodes { name deleted } } }
"""
START_CHILD = """
mutation($parent: ID!) {
  startRun(input: {experiment: "exp", name: "child", parentRunId: $parent, userId: "ana"}) {
    __typename ... on StartRunSuccess { run { id userId parent { id } } }
    ... on NotFound { field value }
  }
}
"""
RUN = f"query($id: ID!) {{ run(id: $id) {{ {RUN_FIELDS} }} }}"
LOG_INPUTS = """
mutation($run: ID!, $digest: String!) {
  logInputs(input: {runId: $run, datasets: [
    {name: "iris", digest: $digest, sourceType: "local", source: "/d/iris.csv", context: "training"}
  ]}) {
    __typename ... on InvalidInput { field message limit }
  }
}
"""
LINEAGE = """
query($model: String!) {
  modelVersion(model: $model, version: 1) {
    run { inputs { context dataset { name digest source } tags { key value } } }
  }
}
"""
SEARCH = """
query($filter: String, $orderBy: [String!], $ids: [ID!], $view: RunViewType!, $first: Int,
      $after: String) {
  searchRuns(filter: $filter, orderBy: $orderBy, experimentIds: $ids, viewType: $view,
             first: $first, after: $after) {
    nodes { name }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_a_run_deleted_and_restored(db: Database, gql) -> None:
    run = await make_run(db, name="r")

    deleted = (await gql(DELETE_RUN, run=run.id))["deleteRun"]
    shown = (await gql(RUN, id=run.id))["run"]
    restored = (await gql(RESTORE_RUN, run=run.id))["restoreRun"]
    missing = (await gql(DELETE_RUN, run="f" * 32))["deleteRun"]

    assert deleted["run"]["deleted"] is True
    assert shown["deleted"] is True
    assert restored["run"]["deleted"] is False
    assert missing == {"__typename": "NotFound", "field": "runId", "value": "f" * 32}


async def test_rename_resume_and_delete_a_tag(db: Database, gql) -> None:
    run = await make_run(db, tags={"t": "v"})
    await gql("mutation($run: ID!) { endRun(input: {runId: $run}) { __typename } }", run=run.id)

    renamed = (await gql(UPDATE_RUN, run=run.id, name="better", resume=True))["updateRun"]
    untagged = (await gql(DELETE_RUN_TAG, run=run.id, key="t"))["deleteRunTag"]
    again = (await gql(DELETE_RUN_TAG, run=run.id, key="t"))["deleteRunTag"]
    bad = (await gql(UPDATE_RUN, run=run.id, name=" padded ", resume=False))["updateRun"]

    assert renamed["run"] == {"name": "better", "status": "RUNNING", "endTime": None}
    assert untagged["run"]["tags"] == []
    assert again == {"__typename": "NotFound", "field": "key", "value": "t"}
    assert bad["__typename"] == "InvalidInput"
    assert bad["field"] == "name"


async def test_an_experiment_deleted_renamed_tagged_and_restored(db: Database, gql) -> None:
    run = await make_run(db, experiment="old")
    await make_run(db, experiment="taken")
    eid = str(run.experiment_id)

    updated = (await gql(UPDATE_EXPERIMENT, id=eid, name="new", set=[{"key": "a", "value": "1"}]))[
        "updateExperiment"
    ]
    untagged = (await gql(UPDATE_EXPERIMENT, id=eid, delete=["a"]))["updateExperiment"]
    clash = (await gql(UPDATE_EXPERIMENT, id=eid, name="taken"))["updateExperiment"]
    deleted = (await gql(DELETE_EXPERIMENT, id=eid))["deleteExperiment"]
    hidden = (await gql(EXPERIMENTS, deleted=False))["experiments"]["nodes"]
    listed = (await gql(EXPERIMENTS, deleted=True))["experiments"]["nodes"]
    run_hidden = (await gql(RUN, id=run.id))["run"]["deleted"]
    restored = (await gql(RESTORE_EXPERIMENT, id=eid))["restoreExperiment"]
    default = (await gql(DELETE_EXPERIMENT, id="0"))["deleteExperiment"]
    bogus = (await gql(DELETE_EXPERIMENT, id="x"))["deleteExperiment"]

    assert updated["experiment"] == {"name": "new", "tags": [{"key": "a", "value": "1"}]}
    assert untagged["experiment"]["tags"] == []
    assert clash == {"__typename": "AlreadyExists", "field": "name", "value": "taken"}
    assert deleted["experiment"] == {"name": "new", "deleted": True, "runCount": 0}
    assert "new" not in [n["name"] for n in hidden]
    assert {"name": "new", "deleted": True} in listed
    assert run_hidden is True
    assert restored["experiment"] == {"name": "new", "deleted": False, "runCount": 1}
    assert default["__typename"] == "InvalidInput"
    assert bogus["__typename"] == "InvalidInput"


async def test_nested_runs_show_parent_and_children(db: Database, gql) -> None:
    parent = await make_run(db)

    child = (await gql(START_CHILD, parent=parent.id))["startRun"]
    orphan = (await gql(START_CHILD, parent="f" * 32))["startRun"]
    shown = (await gql(RUN, id=parent.id))["run"]

    assert child["run"]["parent"] == {"id": parent.id}
    assert child["run"]["userId"] == "ana"
    assert shown["children"] == [{"id": child["run"]["id"]}]
    assert orphan == {"__typename": "NotFound", "field": "parentRunId", "value": "f" * 32}


async def test_the_data_behind_a_version(db: Database, gql) -> None:
    run = await make_run(db)
    async with db.unit_of_work() as session:
        await catalog.register_version(
            session, model="m", run_id=run.id, source="s3://b/m", actor=ACTOR
        )

    logged = (await gql(LOG_INPUTS, run=run.id, digest="d1"))["logInputs"]
    too_long = (await gql(LOG_INPUTS, run=run.id, digest="x" * 37))["logInputs"]
    lineage = (await gql(LINEAGE, model="m"))["modelVersion"]["run"]["inputs"]

    assert logged == {"__typename": "LogInputsSuccess"}
    assert too_long == {
        "__typename": "InvalidInput",
        "field": "datasets[0].digest",
        "message": "datasets[0].digest: is 37 characters, the limit is 36",
        "limit": 36,
    }
    assert lineage == [
        {
            "context": "training",
            "dataset": {"name": "iris", "digest": "d1", "source": "/d/iris.csv"},
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
        }
    ]


async def test_search_runs_across_experiments(db: Database, gql) -> None:
    a = await make_run(db, experiment="e1", name="a", metrics={"acc": 0.9}, params={"lr": "1"})
    await make_run(db, experiment="e2", name="b", metrics={"acc": 0.7}, params={"lr": "2"})
    await make_run(db, experiment="e2", name="c")

    async def names(**variables) -> list[str]:
        variables.setdefault("view", "ACTIVE_ONLY")
        data = await gql(SEARCH, **variables)
        return [n["name"] for n in data["searchRuns"]["nodes"]]

    assert await names(filter="metrics.acc > 0.8") == ["a"]
    assert await names(orderBy=["metrics.acc DESC"]) == ["a", "b", "c"]
    assert await names(ids=[str(a.experiment_id)]) == ["a"]
    first = (await gql(SEARCH, orderBy=["metrics.acc DESC"], first=2, view="ACTIVE_ONLY"))[
        "searchRuns"
    ]
    assert [n["name"] for n in first["nodes"]] == ["a", "b"]
    assert await names(orderBy=["metrics.acc DESC"], after=first["pageInfo"]["endCursor"]) == ["c"]
    await gql(DELETE_RUN, run=a.id)
    assert await names(view="DELETED_ONLY") == ["a"]


async def test_a_filter_it_cannot_read_is_an_invalid_input_error(db: Database, gql) -> None:
    response = await gql.raw(SEARCH, filter="metrics.a > 1 or params.b = 'c'", view="ALL")

    [error] = response["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "filter"
    assert "Invalid clause(s) in filter string" in error["message"]


SEARCH_SCREEN = """
query($first: Int!) {
  searchRuns(filter: "metrics.acc >= 0", first: $first) {
    nodes {
      id userId deleted
      parent { id name }
      children { id }
      inputs { context dataset { name digest } }
      metrics { key value }
    }
  }
}
"""


async def screen_statements(gql, sql_counter, first: int) -> int:
    sql_counter.reset()
    data = await gql(SEARCH_SCREEN, first=first)
    nodes = data["searchRuns"]["nodes"]
    assert len(nodes) == first
    assert all(n["inputs"] for n in nodes)
    return sql_counter.count


async def test_a_search_screen_with_parents_children_and_inputs_takes_the_same_statements_for_3_and_30_runs(
    db: Database, gql, sql_counter
) -> None:
    # given 30 nested runs, each with a metric and a dataset input
    parent = await make_run(db, metrics={"acc": 0.0})
    async with db.unit_of_work() as session:
        await datasets.log_inputs(
            session,
            run_id=parent.id,
            inputs=[
                datasets.DatasetInput("d", "0", "local", "/d", tags={"mlflow.data.context": "t"})
            ],
            actor=ACTOR,
        )
    for i in range(29):
        run = await make_run(db, metrics={"acc": i / 100}, parent_run_id=parent.id)
        async with db.unit_of_work() as session:
            await datasets.log_inputs(
                session,
                run_id=run.id,
                inputs=[datasets.DatasetInput("d", str(i), "local", "/d")],
                actor=ACTOR,
            )

    # when the screen is read for 3 runs and for 30
    small = await screen_statements(gql, sql_counter, 3)
    large = await screen_statements(gql, sql_counter, 30)

    # then both take the same number of statements: one per loader batch
    assert small == large
    assert large <= 8, sql_counter.statements


HIDDEN = """
{
  experiment(name: "exp") { runCount runs { nodes { name } } bestRun(metric: "acc") { name } }
  runs(experiment: "exp") { nodes { name } }
  bestRun(experiment: "exp", metric: "acc") { name }
}
"""


async def test_a_deleted_run_is_in_no_list_and_never_best(db: Database, gql) -> None:
    best = await make_run(db, name="best", metrics={"acc": 0.99})
    await make_run(db, name="other", metrics={"acc": 0.5})

    await gql(DELETE_RUN, run=best.id)
    data = await gql(HIDDEN)

    assert data["experiment"] == {
        "runCount": 1,
        "runs": {"nodes": [{"name": "other"}]},
        "bestRun": {"name": "other"},
    }
    assert data["runs"]["nodes"] == [{"name": "other"}]
    assert data["bestRun"] == {"name": "other"}
