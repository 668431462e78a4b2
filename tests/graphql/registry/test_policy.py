"""Promotion policies: required checks, metric thresholds, beating production."""

from tests.factories import make_run, make_version

SET_POLICY = """
mutation {
  setPromotionPolicy(input: {model: "m", stage: PRODUCTION, requiredChecks: ["tests"],
                             metricRules: [{metric: "acc", op: GTE, value: 0.9}],
                             mustBeatProduction: {metric: "acc", goal: MAXIMIZE}}) {
    __typename
    ... on SetPromotionPolicySuccess {
      policy { stage requiredChecks metricRules { metric op value } mustBeatProduction { metric goal } }
    }
  }
}
"""
PROMOTE = """
mutation($v: Int!) {
  transitionModelVersion(input: {model: "m", version: $v, stage: PRODUCTION}) {
    __typename
    ... on PolicyViolation { code unmet { condition actual required } }
  }
}
"""
CHECK = """
query($v: Int!) {
  checkPromotion(model: "m", version: $v, stage: PRODUCTION) { allowed unmet { condition } }
}
"""
PASS = """
mutation($v: Int!) {
  recordValidation(input: {model: "m", version: $v, check: "tests", status: PASSED}) { __typename }
}
"""
STAGES = '{ model(name: "m") { versions { nodes { version stage } } promotionPolicy { stage } } }'


async def staged_version(db, acc: float) -> int:
    run = await make_run(db, experiment="exp", metrics={"acc": acc})
    return await make_version(db, model="m", run_id=run.id, stage="STAGING")


async def test_a_policy_refuses_with_every_unmet_condition_and_changes_nothing(db, gql):
    v1 = await staged_version(db, 0.85)
    policy = (await gql(SET_POLICY))["setPromotionPolicy"]["policy"]
    assert policy == {
        "stage": "PRODUCTION",
        "requiredChecks": ["tests"],
        "metricRules": [{"metric": "acc", "op": "GTE", "value": 0.9}],
        "mustBeatProduction": {"metric": "acc", "goal": "MAXIMIZE"},
    }

    refused = (await gql(PROMOTE, v=v1))["transitionModelVersion"]
    assert refused["__typename"] == "PolicyViolation"
    assert refused["code"] == "POLICY_VIOLATION"
    assert refused["unmet"] == [
        {"condition": "check tests", "actual": "not reported", "required": "PASSED"},
        {"condition": "metric acc", "actual": "0.85", "required": "GTE 0.9"},
    ]
    stages = (await gql(STAGES))["model"]
    assert stages["versions"]["nodes"] == [{"version": 1, "stage": "STAGING"}]
    assert stages["promotionPolicy"] == [{"stage": "PRODUCTION"}]


async def test_checks_passed_and_production_beaten_let_the_move_through(db, gql):
    v1 = await staged_version(db, 0.92)
    assert (await gql(SET_POLICY))["setPromotionPolicy"]["__typename"] == (
        "SetPromotionPolicySuccess"
    )
    await gql(PASS, v=v1)
    assert (await gql(CHECK, v=v1))["checkPromotion"] == {"allowed": True, "unmet": []}
    assert (await gql(PROMOTE, v=v1))["transitionModelVersion"]["__typename"] == (
        "TransitionModelVersionSuccess"
    )

    # a weaker candidate does not beat production; the dry run says so first
    v2 = await staged_version(db, 0.91)
    await gql(PASS, v=v2)
    check = (await gql(CHECK, v=v2))["checkPromotion"]
    assert check["allowed"] is False
    assert check["unmet"] == [{"condition": "beats production version 1 on acc"}]
    refused = (await gql(PROMOTE, v=v2))["transitionModelVersion"]
    assert refused["unmet"] == [
        {
            "condition": "beats production version 1 on acc",
            "actual": "0.91",
            "required": "above 0.92",
        }
    ]

    # a stronger one does
    v3 = await staged_version(db, 0.95)
    await gql(PASS, v=v3)
    assert (await gql(PROMOTE, v=v3))["transitionModelVersion"]["__typename"] == (
        "TransitionModelVersionSuccess"
    )


async def test_check_promotion_reports_a_move_the_lifecycle_forbids(db, gql):
    await make_version(db, model="m")
    check = (await gql(CHECK, v=1))["checkPromotion"]
    assert check["allowed"] is False
    assert check["unmet"] == [{"condition": "move from DEVELOPMENT"}]


AUDIT = """
{ model(name: "m") { transitions(first: 1) { nodes { toStage policy { requiredChecks
    metricRules { metric op value } mustBeatProduction { metric goal } } } } } }
"""
EVENT_POLICY = """
{ events(model: "m", types: [STAGE_CHANGED]) { nodes { toStage policy { requiredChecks } } } }
"""


async def test_the_audit_trail_and_the_event_record_the_policy_a_move_passed(db, gql):
    v1 = await staged_version(db, 0.93)
    await gql(SET_POLICY)
    await gql(PASS, v=v1)
    await gql(PROMOTE, v=v1)

    latest = (await gql(AUDIT))["model"]["transitions"]["nodes"][0]
    assert latest == {
        "toStage": "PRODUCTION",
        "policy": {
            "requiredChecks": ["tests"],
            "metricRules": [{"metric": "acc", "op": "GTE", "value": 0.9}],
            "mustBeatProduction": {"metric": "acc", "goal": "MAXIMIZE"},
        },
    }
    moves = (await gql(EVENT_POLICY))["events"]["nodes"]
    assert moves[-1] == {"toStage": "PRODUCTION", "policy": {"requiredChecks": ["tests"]}}
    assert moves[0]["policy"] is None  # the move to STAGING had no policy
