"""The lifecycle as a pure table: which stage moves are allowed. No I/O here."""

from collections import deque
from enum import StrEnum


class Stage(StrEnum):
    DEVELOPMENT = "DEVELOPMENT"
    STAGING = "STAGING"
    PRODUCTION = "PRODUCTION"
    ARCHIVED = "ARCHIVED"


ALLOWED_MOVES: dict[Stage, tuple[Stage, ...]] = {
    Stage.DEVELOPMENT: (Stage.STAGING, Stage.ARCHIVED),
    Stage.STAGING: (Stage.PRODUCTION, Stage.DEVELOPMENT, Stage.ARCHIVED),
    Stage.PRODUCTION: (Stage.ARCHIVED,),
    Stage.ARCHIVED: (Stage.STAGING,),
}


def allowed_moves(stage: Stage) -> tuple[Stage, ...]:
    return ALLOWED_MOVES[stage]


def is_allowed(from_stage: Stage, to_stage: Stage) -> bool:
    return to_stage in ALLOWED_MOVES[from_stage]


def path(from_stage: Stage, to_stage: Stage) -> list[Stage] | None:
    """The shortest list of allowed moves from one stage to another ([] if already there)."""
    previous: dict[Stage, Stage | None] = {from_stage: None}
    queue = deque([from_stage])
    while queue:
        stage = queue.popleft()
        if stage == to_stage:
            steps: list[Stage] = []
            at: Stage | None = stage
            while at is not None and at != from_stage:
                steps.append(at)
                at = previous[at]
            return steps[::-1]
        for nxt in ALLOWED_MOVES[stage]:
            if nxt not in previous:
                previous[nxt] = stage
                queue.append(nxt)
    return None
