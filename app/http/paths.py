"""The `artifact_path` URL convertor: Starlette's `path`, line breaks included. A path
with a control character then reaches its route and is refused by name (400), instead of
matching no route and getting a plain-text 404. Registered on import, for every face that
routes user-chosen paths (artifact routes, the MLflow face)."""

from starlette.convertors import PathConvertor, register_url_convertor

ANY_PATH = "artifact_path"


class _AnyPath(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor(ANY_PATH, _AnyPath())
