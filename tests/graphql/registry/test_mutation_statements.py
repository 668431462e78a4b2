"""A registry mutation's answer is made of what the mutation holds: the model and run it
wrote under, and the history a new version cannot have yet, are not read again in new
sessions to answer."""

from tests.factories import make_run, make_version
from tests.graphql.tracking.test_mutation_statements import reads_of

REGISTER = """
mutation($input: RegisterModelVersionInput!) {
  registerModelVersion(input: $input) {
    __typename
    ... on RegisterModelVersionSuccess {
      modelVersion {
        version stage
        model { name }
        run { id }
        aliases
        validations { check }
        transitions { toStage }
      }
    }
  }
}
"""

SET_POLICY = """
mutation {
  setPromotionPolicy(input: {model: "m", stage: STAGING, requiredChecks: ["tests"]}) {
    __typename
    ... on SetPromotionPolicySuccess { model { name } policy { stage requiredChecks } }
  }
}
"""


async def test_register_model_version_answers_from_what_it_wrote(db, gql, sql_counter):
    # given a run and a model with one version already
    run = await make_run(db)
    await make_version(db, model="m")
    sql_counter.reset()

    # when the run is registered as the model's next version, the answer asking for its
    # model, run, aliases, validations and stage history
    data = await gql(REGISTER, input={"model": "m", "runId": run.id})

    # then the answer is right, and none of them was read back to give it
    version = data["registerModelVersion"]["modelVersion"]
    assert (version["version"], version["stage"]) == (2, "DEVELOPMENT")
    assert version["model"] == {"name": "m"}
    assert version["run"] == {"id": run.id}
    assert (version["aliases"], version["validations"], version["transitions"]) == ([], [], [])
    reread = reads_of(sql_counter.statements, "model_alias", "validation", "stage_transition")
    assert reread == [], reread
    # the run read once, in the unit of work, to check it; the model not read at all: one
    # UPDATE ... RETURNING locks it, takes the next number and stamps its updated_at
    assert len(reads_of(sql_counter.statements, "run")) == 1, sql_counter.statements
    assert reads_of(sql_counter.statements, "registered_model") == [], sql_counter.statements
    claims = [s for s in sql_counter.statements if s.lstrip().startswith("UPDATE registered_model")]
    assert len(claims) == 1, sql_counter.statements
    assert "RETURNING" in claims[0], claims
    # the run checked, the model claimed, the version, its event; 7 before (the model
    # upserted, then locked by a read, the highest number read, the model's updated_at in a
    # statement of its own), 12 before that, when the answer read the model, the run,
    # aliases, validations and stage history again (PostgreSQL adds its outbox signalling:
    # an advisory lock and a NOTIFY per event)
    queries = [s for s in sql_counter.statements if "pg_" not in s]
    assert len(queries) == 4, "\n".join(queries)


async def test_set_promotion_policy_answers_with_the_model_it_locked(db, gql, sql_counter):
    # given a model
    await make_version(db, model="m")
    sql_counter.reset()

    # when a policy is set, the answer asking for the model
    data = (await gql(SET_POLICY))["setPromotionPolicy"]

    # then the answer is right and the model was read once, under its lock
    assert data["model"] == {"name": "m"}
    assert data["policy"] == {"stage": "STAGING", "requiredChecks": ["tests"]}
    model_reads = reads_of(sql_counter.statements, "registered_model")
    assert len(model_reads) == 1, model_reads
