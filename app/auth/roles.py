"""Who may do what: the roles, the principal a request acts as, and the operation table.

Pure: no I/O. Every operation any face offers (a GraphQL root field today, MLflow REST
routes later) is named here with the least role that may call it; a face refuses to
start with an operation missing from the table, so nothing is reachable by default.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Each role includes the ones before it."""

    READER = "READER"
    WRITER = "WRITER"
    DEPLOYER = "DEPLOYER"
    ADMIN = "ADMIN"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: "Role") -> bool:
        return self.rank >= other.rank


_RANK = {role: i for i, role in enumerate(Role)}

R, W, D, A = Role.READER, Role.WRITER, Role.DEPLOYER, Role.ADMIN

OPERATION_ROLES: dict[str, Role] = {
    # reads and watches
    "viewer": R,
    "experiments": R,
    "experiment": R,
    "run": R,
    "runs": R,
    "best_run": R,
    "models": R,
    "model": R,
    "model_version": R,
    "check_promotion": R,
    "events": R,
    "lifecycle_events": R,
    "run_metrics": R,
    "search_runs": R,
    "logged_model": R,
    "logged_models": R,
    # training code and CI reporting
    "create_experiment": W,
    "start_run": W,
    "log_metrics": W,
    "log_params": W,
    "set_run_tags": W,
    "end_run": W,
    "update_run": W,
    "delete_run": W,
    "restore_run": W,
    "delete_run_tag": W,
    "log_inputs": W,
    "update_experiment": W,
    "delete_experiment": W,
    "restore_experiment": W,
    "register_model_version": W,
    "record_validation": W,
    "update_model": W,
    "update_model_version": W,
    "set_model_tag": W,
    "delete_model_tag": W,
    "set_model_version_tag": W,
    "delete_model_version_tag": W,
    # what runs in production
    "transition_model_version": D,
    "promote_best_run": D,
    "rollback_model": D,
    "set_model_alias": D,
    "delete_model_alias": D,
    "rename_model": D,
    "delete_model": D,
    "delete_model_version": D,
    # who may do all of the above, and under which rules
    "set_promotion_policy": A,
    "api_tokens": A,
    "create_api_token": A,
    "revoke_api_token": A,
}


# The artifact routes (plain HTTP, not GraphQL root fields, so kept apart from the table
# the schema is checked against).
ROUTE_ROLES: dict[str, Role] = {
    "artifacts.download": R,
    "artifacts.upload": W,
    "artifacts.delete": W,
    # MLflow 3 logged models (reads, and what training code writes), the artifact layer's
    # capability probe.
    "logged_models.read": R,
    "logged_models.write": W,
    "mlflow.server_info": R,
    # MLflow REST calls with no GraphQL twin.
    "mlflow.create_registered_model": W,
}


def required_role(operation: str) -> Role:
    """The least role that may call `operation`; KeyError for an operation never listed."""
    return OPERATION_ROLES[operation] if operation in OPERATION_ROLES else ROUTE_ROLES[operation]


@dataclass(eq=False)
class Principal:
    """Who a request acts as: a token (by name), anonymous readers, or the dev mode user.

    `revoked` is set the moment the server learns the token was revoked, so a WebSocket
    connection authenticated earlier stops acting at once."""

    name: str
    role: Role
    token_id: int | None = None
    revoked: bool = field(default=False)

    @property
    def actor(self) -> str:
        """The name events and transitions record for this principal's changes."""
        return self.name


ANONYMOUS_NAME = "anonymous"
DEV_NAME = "dev"


def anonymous() -> Principal:
    return Principal(name=ANONYMOUS_NAME, role=Role.READER)


def dev() -> Principal:
    return Principal(name=DEV_NAME, role=Role.ADMIN)
