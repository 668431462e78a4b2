"""MLflow's filter grammar for model and version search: what it parses, what it refuses,
and the searches on a real database."""

import pytest

from app.errors import ValidationError
from app.registry import entries, search
from app.registry.search import MODEL_GRAMMAR, VERSION_GRAMMAR, Clause
from tests.factories import ACTOR, make_run, make_version


def test_parses_the_clause_the_client_adds_to_every_model_search():
    clauses = search.parse(
        "name LIKE 'reg-%' AND tag.`mlflow.prompt.is_prompt` != 'true'", MODEL_GRAMMAR
    )
    assert clauses == [
        Clause("name", "LIKE", "reg-%"),
        Clause("mlflow.prompt.is_prompt", "!=", "true", tag=True),
    ]


def test_parses_version_attributes_in_and_numbers():
    clauses = search.parse(
        "name='m' and run_id IN ('a', 'b') and version_number >= 2 and tags.\"k.x\" ILIKE '%Y%'",
        VERSION_GRAMMAR,
    )
    assert clauses == [
        Clause("name", "=", "m"),
        Clause("run_id", "IN", ("a", "b")),
        Clause("version_number", ">=", 2.0),
        Clause("k.x", "ILIKE", "%Y%", tag=True),
    ]


@pytest.mark.parametrize(
    ("text", "grammar", "said"),
    [
        ("current_stage = 'Production'", VERSION_GRAMMAR, "invalid attribute key 'current_stage'"),
        ("name = 'a' OR name = 'b'", MODEL_GRAMMAR, "Invalid clause(s) in filter string"),
        ("run_id = 'x'", MODEL_GRAMMAR, "invalid attribute key 'run_id'"),
        ("name > 'a'", MODEL_GRAMMAR, "'>' is not supported for 'name'"),
        ("version_number = 'x'", VERSION_GRAMMAR, "compares with a number"),
        ("name = ", MODEL_GRAMMAR, "ends in the middle"),
        ("name = 'a' AND", MODEL_GRAMMAR, "ends in the middle"),
        ("metrics.acc > 1", MODEL_GRAMMAR, "invalid entity type 'metrics'"),
        ("name = 'a", MODEL_GRAMMAR, "cannot parse"),
    ],
)
def test_refusals_name_the_problem(text, grammar, said):
    with pytest.raises(ValidationError) as refused:
        search.parse(text, grammar)
    assert refused.value.field == "filter"
    assert said in refused.value.message


@pytest.mark.parametrize(
    ("clause", "actual", "expected"),
    [
        (Clause("name", "LIKE", "reg-%"), "reg-a", True),
        (Clause("name", "LIKE", "reg-%"), "REG-a", False),
        (Clause("name", "ILIKE", "reg-_"), "REG-a", True),
        (Clause("name", "ILIKE", "reg-_"), "REG-ab", False),
        (Clause("name", "LIKE", "a.b"), "axb", False),
        (Clause("k", "!=", "true", tag=True), None, True),
        (Clause("k", "=", "true", tag=True), None, False),
        (Clause("version_number", "<", 3.0), 2, True),
        (Clause("run_id", "NOT IN", ("a",)), "b", True),
    ],
)
def test_holds(clause, actual, expected):
    assert search.holds(clause, actual) is expected


async def test_search_models_filters_orders_and_pages(db):
    for name in ("reg-b", "reg-a", "other", "reg-c"):
        await make_version(db, model=name)
    async with db.unit_of_work() as session:
        await entries.set_model_tag(
            session, name="reg-c", key="mlflow.prompt.is_prompt", value="true", actor=ACTOR
        )
    wanted = "name LIKE 'reg-%' AND tag.`mlflow.prompt.is_prompt` != 'true'"
    async with db.read() as session:
        first, after = await search.search_models(
            session, filter=wanted, order_by=["name DESC"], offset=0, limit=1
        )
        rest, end = await search.search_models(
            session, filter=wanted, order_by=["name DESC"], offset=after or 0, limit=5
        )
        everything, _ = await search.search_models(
            session, filter=None, order_by=None, offset=0, limit=10
        )
    assert [m.name for m in first] == ["reg-b"]
    assert after == 1
    assert ([m.name for m in rest], end) == (["reg-a"], None)
    assert [m.name for m in everything] == ["other", "reg-a", "reg-b", "reg-c"]


async def test_search_versions_by_name_run_and_number(db):
    run = await make_run(db)
    await make_version(db, model="m")
    await make_version(db, model="m", run_id=run.id)
    await make_version(db, model="m")
    await make_version(db, model="n", run_id=run.id)
    async with db.read() as session:
        by_name, _ = await search.search_versions(
            session, filter="name = 'm' AND version_number > 1", order_by=None, offset=0, limit=10
        )
        by_run, _ = await search.search_versions(
            session,
            filter=f"run_id IN ('{run.id}', 'nope')",
            order_by=["name DESC"],
            offset=0,
            limit=10,
        )
    assert [(n, v.version) for n, v in by_name] == [("m", 3), ("m", 2)]
    assert [(n, v.version) for n, v in by_run] == [("n", 1), ("m", 2)]
