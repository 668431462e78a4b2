"""recordValidation: CI reports checks on a version; latest per check, with history."""

from sqlalchemy import select

from app.events.models import Event
from tests.conftest import ADMIN
from tests.factories import make_version

RECORD = """
mutation($check: String!, $status: ValidationStatus!, $key: String) {
  recordValidation(input: {model: "m", version: 1, check: $check, status: $status,
                           detailsUrl: "https://ci/1", metrics: [{key: "auc", value: 0.91}],
                           idempotencyKey: $key}) {
    __typename
    ... on RecordValidationSuccess { validation { check status detailsUrl actor metrics { key value } } }
    ... on Error { code }
  }
}
"""
VALIDATIONS = """
{ modelVersion(model: "m", version: 1) {
    validations { check status }
    validationHistory(check: "tests") { status }
} }
"""
EVENTS = '{ events(model: "m", types: [VALIDATION_RECORDED]) { nodes { check checkStatus versionNumber } } }'


async def test_latest_result_per_check_with_history_and_an_event_each(db, gql):
    await make_version(db, model="m")
    first = await gql(RECORD, check="tests", status="FAILED")
    await gql(RECORD, check="tests", status="PASSED")
    await gql(RECORD, check="bias-audit", status="PENDING")

    assert first["recordValidation"]["validation"] == {
        "check": "tests",
        "status": "FAILED",
        "detailsUrl": "https://ci/1",
        "actor": ADMIN,
        "metrics": [{"key": "auc", "value": 0.91}],
    }
    data = (await gql(VALIDATIONS))["modelVersion"]
    assert data["validations"] == [
        {"check": "bias-audit", "status": "PENDING"},
        {"check": "tests", "status": "PASSED"},
    ]
    assert [v["status"] for v in data["validationHistory"]] == ["PASSED", "FAILED"]
    events = (await gql(EVENTS))["events"]["nodes"]
    assert [(e["check"], e["checkStatus"]) for e in events] == [
        ("tests", "FAILED"),
        ("tests", "PASSED"),
        ("bias-audit", "PENDING"),
    ]


async def test_a_retried_report_is_recorded_once(db, gql):
    await make_version(db, model="m")
    await gql(RECORD, check="tests", status="PASSED", key="job-9")
    await gql(RECORD, check="tests", status="PASSED", key="job-9")
    data = (await gql(VALIDATIONS))["modelVersion"]
    assert len(data["validationHistory"]) == 1
    async with db.read() as s:
        types = list(
            (
                await s.execute(select(Event.type).where(Event.type == "VALIDATION_RECORDED"))
            ).scalars()
        )
    assert len(types) == 1


async def test_a_report_on_an_unknown_version_is_not_found(gql):
    data = await gql(RECORD, check="tests", status="PASSED")
    assert data["recordValidation"] == {"__typename": "NotFound", "code": "NOT_FOUND"}
