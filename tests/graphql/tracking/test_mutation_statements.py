"""A tracking mutation's answer is made of what the mutation holds: nothing it wrote or
read in its unit of work is read again, in new sessions, to answer."""

import re

CREATE_EXPERIMENT = """
mutation($input: CreateExperimentInput!) {
  createExperiment(input: $input) {
    __typename
    ... on CreateExperimentSuccess {
      experiment { id name runCount tags { key value } }
    }
  }
}
"""

START_RUN = """
mutation($input: StartRunInput!) {
  startRun(input: $input) {
    __typename
    ... on StartRunSuccess {
      run {
        id status
        experiment { name }
        params { key value }
        tags { key value }
        metrics { key value }
        modelVersions { version }
      }
    }
  }
}
"""


def reads_of(statements: list[str], *tables: str) -> list[str]:
    """The SELECTs among `statements` that read any of `tables`."""
    pattern = re.compile(rf"\bFROM\s+\"?({'|'.join(tables)})\"?\b", re.IGNORECASE)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and pattern.search(s)]


async def test_create_experiment_answers_without_counting_runs_it_cannot_have(gql, sql_counter):
    # given a new experiment's name
    sql_counter.reset()

    # when it is created, asking for its run count
    data = await gql(CREATE_EXPERIMENT, input={"name": "e", "tags": [{"key": "k", "value": "v"}]})

    # then the answer is right and no statement counted its runs
    experiment = data["createExperiment"]["experiment"]
    assert (experiment["runCount"], experiment["tags"]) == (0, [{"key": "k", "value": "v"}])
    assert reads_of(sql_counter.statements, "run") == [], sql_counter.statements


async def test_start_run_answers_from_what_it_wrote(gql, sql_counter):
    # given an existing experiment
    await gql(CREATE_EXPERIMENT, input={"name": "e"})
    sql_counter.reset()

    # when a run starts in it with params and tags, the answer asking for all of them
    data = await gql(
        START_RUN,
        input={
            "experiment": "e",
            "params": [{"key": "lr", "value": "0.1"}, {"key": "depth", "value": "4"}],
            "tags": [{"key": "team", "value": "ml"}],
        },
    )

    # then the answer holds what was written, and nothing was read back to give it
    run = data["startRun"]["run"]
    assert run["experiment"] == {"name": "e"}
    assert run["params"] == [{"key": "depth", "value": "4"}, {"key": "lr", "value": "0.1"}]
    assert run["tags"] == [{"key": "team", "value": "ml"}]
    assert (run["metrics"], run["modelVersions"]) == ([], [])
    reread = reads_of(sql_counter.statements, "param", "run_tag", "latest_metric", "model_version")
    assert reread == [], reread
