"""The lifecycle table as the issue states it, and the shortest walks through it."""

import itertools

import pytest

from app.registry.stages import ALLOWED_MOVES, Stage, allowed_moves, is_allowed, path

DEV, STAGING, PROD, ARCHIVED = Stage.DEVELOPMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED

# Exactly: DEVELOPMENT→STAGING, STAGING→PRODUCTION, STAGING→DEVELOPMENT, any→ARCHIVED,
# ARCHIVED→STAGING. Nothing else, and no stage moves to itself.
SPEC_MOVES = {
    (DEV, STAGING),
    (STAGING, PROD),
    (STAGING, DEV),
    (DEV, ARCHIVED),
    (STAGING, ARCHIVED),
    (PROD, ARCHIVED),
    (ARCHIVED, STAGING),
}
ALL_PAIRS = list(itertools.product(Stage, Stage))


def test_stages_are_the_four_of_the_lifecycle():
    assert [s.value for s in Stage] == ["DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED"]


def test_table_has_a_row_for_every_stage():
    assert set(ALLOWED_MOVES) == set(Stage)


@pytest.mark.parametrize(("from_stage", "to_stage"), ALL_PAIRS)
def test_is_allowed_matches_the_spec_exactly(from_stage, to_stage):
    assert is_allowed(from_stage, to_stage) is ((from_stage, to_stage) in SPEC_MOVES)


@pytest.mark.parametrize("from_stage", list(Stage))
def test_allowed_moves_lists_each_reachable_stage_once(from_stage):
    moves = allowed_moves(from_stage)

    assert len(moves) == len(set(moves))
    assert set(moves) == {to for fr, to in SPEC_MOVES if fr == from_stage}


@pytest.mark.parametrize("stage", list(Stage))
def test_no_stage_moves_to_itself(stage):
    assert not is_allowed(stage, stage)


@pytest.mark.parametrize("stage", list(Stage))
def test_path_to_the_same_stage_is_empty(stage):
    assert path(stage, stage) == []


@pytest.mark.parametrize(
    ("from_stage", "to_stage", "expected"),
    [
        (DEV, STAGING, [STAGING]),
        (DEV, PROD, [STAGING, PROD]),
        (DEV, ARCHIVED, [ARCHIVED]),
        (STAGING, PROD, [PROD]),
        (STAGING, DEV, [DEV]),
        (ARCHIVED, STAGING, [STAGING]),
        (ARCHIVED, PROD, [STAGING, PROD]),
        (ARCHIVED, DEV, [STAGING, DEV]),
        (PROD, ARCHIVED, [ARCHIVED]),
        (PROD, STAGING, [ARCHIVED, STAGING]),
        (PROD, DEV, [ARCHIVED, STAGING, DEV]),
    ],
)
def test_path_is_the_shortest_walk(from_stage, to_stage, expected):
    assert path(from_stage, to_stage) == expected


@pytest.mark.parametrize(("from_stage", "to_stage"), ALL_PAIRS)
def test_every_step_of_a_path_is_an_allowed_move(from_stage, to_stage):
    steps = path(from_stage, to_stage)

    assert steps is not None  # every stage is reachable from every other
    at = from_stage
    for step in steps:
        assert is_allowed(at, step), (at, step)
        at = step
    assert at == to_stage


def test_path_does_not_mutate_the_table():
    before = {k: tuple(v) for k, v in ALLOWED_MOVES.items()}

    for from_stage, to_stage in ALL_PAIRS:
        path(from_stage, to_stage)

    assert before == ALLOWED_MOVES
