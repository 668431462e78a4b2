"""Reading MLflow's tracking request fields that experiments and runs endpoints share:
experiment ids, repeated {key, value} pairs, view types and page sizes."""

from app.mlflow.wire import Call, invalid
from app.tracking.models import DEFAULT_EXPERIMENT_ID
from app.tracking.search import ViewType


def read_experiment_id(call: Call, name: str = "experiment_id", *, required: bool = True) -> int:
    text = call.text(name, required=required)
    if text is None:
        return DEFAULT_EXPERIMENT_ID
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id") from None
    if not 0 <= value < 2**31:
        raise invalid(f"Invalid value {text!r} for parameter '{name}': an experiment id")
    return value


def read_pairs(call: Call, name: str) -> list[tuple[str, str]]:
    """A repeated {key, value} field; a missing value is the empty string."""
    out = []
    for i, item in enumerate(call.objects(name)):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            raise invalid(f"Missing value for required parameter '{name}[{i}].key'")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise invalid(f"Invalid value for parameter '{name}[{i}].value': a string")
        out.append((key, str(value)))
    return out


def read_view(call: Call, name: str) -> ViewType:
    text = call.text(name) or "ACTIVE_ONLY"
    try:
        return ViewType(text.upper())
    except ValueError:
        raise invalid(
            f"Invalid value {text!r} for parameter '{name}': ACTIVE_ONLY, DELETED_ONLY or ALL"
        ) from None


def read_max_results(call: Call, default: int, limit: int) -> int:
    value = call.integer("max_results", default=default)
    assert value is not None
    if value < 1 or value > limit:
        raise invalid(
            f"Invalid value {value} for parameter 'max_results' supplied. "
            f"It must be at least 1 and at most {limit}"
        )
    return value
