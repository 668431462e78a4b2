"""The run search grammar, parsed without a database."""

import pytest

from app.errors import ValidationError
from app.tracking.filters import (
    FILTER_LIMIT,
    Clause,
    Entity,
    OrderItem,
    like_to_glob,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_filter,
    parse_order_by,
    text_matches,
)


def test_every_prefix_spelling_and_operator_parses() -> None:
    clauses = parse_filter(
        "metrics.acc > 0.5 and metric.loss <= -1e3 AND params.lr = '0.01' and "
        "param.opt != \"adam\" and parameter.x LIKE 'a%' and tags.`my tag` ILIKE 'X%' and "
        "tag.mlflow.runName IS NOT NULL and tags.gone IS NULL and "
        "attributes.status IN ('FINISHED', 'FAILED') and attr.run_name NOT IN ('a') and "
        "run.created >= 1000 and datasets.context = 'training' and dataset.digest = 'abc'"
    )

    assert clauses == (
        Clause(Entity.METRIC, "acc", ">", 0.5),
        Clause(Entity.METRIC, "loss", "<=", -1000.0),
        Clause(Entity.PARAM, "lr", "=", "0.01"),
        Clause(Entity.PARAM, "opt", "!=", "adam"),
        Clause(Entity.PARAM, "x", "LIKE", "a%"),
        Clause(Entity.TAG, "my tag", "ILIKE", "X%"),
        Clause(Entity.TAG, "mlflow.runName", "IS NOT NULL", None),
        Clause(Entity.TAG, "gone", "IS NULL", None),
        Clause(Entity.ATTRIBUTE, "status", "IN", ("FINISHED", "FAILED")),
        Clause(Entity.ATTRIBUTE, "run_name", "NOT IN", ("a",)),
        Clause(Entity.ATTRIBUTE, "start_time", ">=", 1000.0),
        Clause(Entity.DATASET, "context", "=", "training"),
        Clause(Entity.DATASET, "digest", "=", "abc"),
    )


def test_quotes_inside_values_are_doubled() -> None:
    assert parse_filter("params.q = 'it''s'") == (Clause(Entity.PARAM, "q", "=", "it's"),)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_an_empty_filter_has_no_clauses(text: str | None) -> None:
    assert parse_filter(text) == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("metrics.acc > 1 or params.a = 'b'", "Invalid clause(s) in filter string: 'OR'"),
        ("metrics.acc > 'x'", "expected a number"),
        ("acc > 1", "prefixes"),
        ("params.a > '1'", "params.a takes"),
        ("metrics.acc", "ends too early"),
        ("attributes.artifact_uri = 'x'", "attributes are"),
        ("metrics.a = 1 metrics.b = 2", "expected AND"),
        ("tags.a IS NOT 'x'", "IS NULL or IS NOT NULL"),
        ("datasets.size = 'x'", "datasets fields"),
        ("attributes.status IN 'x'", "parenthesised list"),
        ("metrics.a > 1e999", "out of range"),
        ("params.a = 'x' ; drop table run", "cannot read"),
        ("(metrics.a > 1)", "expected an identifier"),
    ],
)
def test_a_filter_it_cannot_read_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_filter(text)

    assert refused.value.field == "filter"
    assert says in refused.value.message


def test_an_over_long_filter_is_refused_with_the_limit() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_filter("params.a = '" + "x" * FILTER_LIMIT + "'")

    assert refused.value.limit == FILTER_LIMIT


def test_orderings_parse_with_their_directions() -> None:
    items = parse_order_by(
        ["metrics.acc DESC", "params.lr", "start_time", "attributes.run_name asc", "tags.`a b`"]
    )

    assert items == (
        OrderItem(Entity.METRIC, "acc", False),
        OrderItem(Entity.PARAM, "lr", True),
        OrderItem(Entity.ATTRIBUTE, "start_time", True),
        OrderItem(Entity.ATTRIBUTE, "run_name", True),
        OrderItem(Entity.TAG, "a b", True),
    )


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("datasets.name", "cannot be ordered by datasets"),
        ("attributes.nope", "attributes to order by"),
        ("metrics.acc DOWN", "expected nothing after"),
        ("", "is empty"),
    ],
)
def test_an_ordering_it_cannot_read_names_its_item(item: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_order_by(["metrics.ok", item])

    assert refused.value.field == "orderBy[1]"
    assert says in refused.value.message


@pytest.mark.parametrize(
    ("like", "glob"),
    [("a%", "a*"), ("_b", "?b"), ("x*y", "x[*]y"), ("q?", "q[?]"), ("[z", "[[]z")],
)
def test_like_patterns_become_case_sensitive_globs(like: str, glob: str) -> None:
    assert like_to_glob(like) == glob


def test_experiment_filters_take_bare_attributes_and_tags() -> None:
    assert parse_experiment_filter(
        "name LIKE 'exp-%' and attributes.creation_time > 5 and tags.team = 'x' "
        "and experiment_id = '3' and tags.gone IS NULL"
    ) == (
        Clause(Entity.ATTRIBUTE, "name", "LIKE", "exp-%"),
        Clause(Entity.ATTRIBUTE, "creation_time", ">", 5.0),
        Clause(Entity.TAG, "team", "=", "x"),
        Clause(Entity.ATTRIBUTE, "experiment_id", "=", 3.0),
        Clause(Entity.TAG, "gone", "IS NULL", None),
    )
    assert parse_experiment_order_by(["name", "last_update_time DESC"]) == (
        OrderItem(Entity.ATTRIBUTE, "name", True),
        OrderItem(Entity.ATTRIBUTE, "last_update_time", False),
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("metrics.acc > 1", "experiments are searched by"),
        ("name = 'a' or name = 'b'", "Invalid clause(s)"),
        ("experiment_id = 'x'", "expected an experiment id"),
    ],
)
def test_an_experiment_filter_it_cannot_read_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_experiment_filter(text)

    assert says in refused.value.message


@pytest.mark.parametrize(
    ("value", "op", "expected", "matches"),
    [
        ("Red", "LIKE", "R%", True),
        ("red", "LIKE", "R%", False),
        ("red", "ILIKE", "R%", True),
        ("a.b", "LIKE", "a_b", True),
        ("a+b", "LIKE", "a+b", True),
        (None, "IS NULL", None, True),
        (None, "=", "x", False),
        ("x", "NOT IN", ("y",), True),
    ],
)
def test_text_matches_as_the_database_does(value, op, expected, matches) -> None:
    assert text_matches(value, op, expected) is matches
