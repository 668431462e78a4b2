from app.errors import DomainError, ErrorCode
from app.registry.stages import Stage, allowed_moves


class InvalidTransitionError(DomainError):
    code = ErrorCode.INVALID_TRANSITION

    def __init__(self, model: str, version: int, from_stage: Stage, to_stage: Stage) -> None:
        self.from_stage = from_stage
        self.to_stage = to_stage
        self.allowed = list(allowed_moves(from_stage))
        allowed = ", ".join(f"{from_stage}→{s}" for s in self.allowed)
        super().__init__(
            f"{model} version {version} cannot move {from_stage}→{to_stage}; allowed: {allowed}",
            field="stage",
        )


class NoRollbackTargetError(DomainError):
    code = ErrorCode.NO_ROLLBACK_TARGET

    def __init__(self, model: str, message: str) -> None:
        super().__init__(f"cannot roll back {model}: {message}", field="model")
