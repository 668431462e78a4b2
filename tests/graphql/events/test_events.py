"""The events query: the lifecycle stream as pages, for clients that poll."""

import base64

from tests.factories import make_version

EVENTS = """
query($model: String, $types: [LifecycleEventType!], $after: String, $first: Int) {
  events(model: $model, types: $types, after: $after, first: $first) {
    nodes { type model versionNumber fromStage toStage actor version { version stage } }
    edges { cursor }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_polling_with_the_last_cursor_returns_only_what_happened_since(db, gql):
    # given two models' histories
    await make_version(db, model="a", stage="PRODUCTION")
    await make_version(db, model="b")

    # when a poller reads model a two at a time, then again after more happens
    first = (await gql(EVENTS, model="a", first=2))["events"]
    rest = (await gql(EVENTS, model="a", after=first["pageInfo"]["endCursor"]))["events"]
    await make_version(db, model="a")
    later = (await gql(EVENTS, model="a", after=rest["pageInfo"]["endCursor"]))["events"]

    # then every event of a comes once, in order, and the page tells when there is more
    assert first["pageInfo"]["hasNextPage"] is True
    assert [n["type"] for n in first["nodes"] + rest["nodes"]] == [
        "MODEL_CREATED",
        "VERSION_REGISTERED",
        "STAGE_CHANGED",
        "STAGE_CHANGED",
    ]
    assert rest["nodes"][-1]["toStage"] == "PRODUCTION"
    assert rest["nodes"][-1]["version"] == {"version": 1, "stage": "PRODUCTION"}
    assert [(n["type"], n["versionNumber"]) for n in later["nodes"]] == [("VERSION_REGISTERED", 2)]
    assert all(n["model"] == "a" and n["actor"] == "test" for n in first["nodes"])


async def test_events_filter_by_type(db, gql):
    await make_version(db, model="a", stage="STAGING")
    nodes = (await gql(EVENTS, types=["STAGE_CHANGED"]))["events"]["nodes"]
    assert [(n["fromStage"], n["toStage"]) for n in nodes] == [("DEVELOPMENT", "STAGING")]


async def test_a_bad_event_cursor_is_invalid_input(gql):
    error = await gql.error(EVENTS, after="nope")
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "after"


async def test_a_filtered_poll_moves_past_events_it_did_not_match(db, gql):
    # given events of model a, then of model b
    await make_version(db, model="a")
    first = (await gql(EVENTS, model="a"))["events"]
    await make_version(db, model="b")

    # when the poller of model a polls again, nothing matches, yet its cursor moves on
    again = (await gql(EVENTS, model="a", after=first["pageInfo"]["endCursor"]))["events"]
    assert again["nodes"] == []
    assert again["pageInfo"]["endCursor"] not in (None, first["pageInfo"]["endCursor"])

    # and a change to a after that is the next thing it sees
    await make_version(db, model="a")
    later = (await gql(EVENTS, model="a", after=again["pageInfo"]["endCursor"]))["events"]
    assert [(n["type"], n["versionNumber"]) for n in later["nodes"]] == [("VERSION_REGISTERED", 2)]


async def test_a_cursor_beyond_the_newest_event_is_refused(gql):
    future = base64.urlsafe_b64encode(b"[999]").decode().rstrip("=")
    error = await gql.error(EVENTS, after=future)
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "after"
