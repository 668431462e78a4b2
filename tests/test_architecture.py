"""Domain services never import a face's framework (docs/ARCHITECTURE.md, "One core, several faces")."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
FACE_ONLY = ("strawberry", "starlette", "uvicorn", "mlflow", "httpx", "websockets")
FACES = {"graphql", "mlflow", "http", "ui", "main.py", "cli", "client", "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


CORE_FILES = sorted(p for p in APP.rglob("*.py") if p.relative_to(APP).parts[0] not in FACES)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(APP)))
def test_core_module_imports_no_face_framework(path):
    bad = {m for m in imported_modules(path) if m.split(".")[0] in FACE_ONLY}
    assert not bad, f"{path.relative_to(APP)} imports {bad}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(APP)))
def test_core_module_imports_no_face_module(path):
    bad = {
        m
        for m in imported_modules(path)
        if m.startswith(("app.graphql", "app.main", "app.cli", "app.client"))
    }
    assert not bad, f"{path.relative_to(APP)} imports {bad}"


def test_services_never_commit():
    # The registry's operations are split by reason to change, not kept in one service.py.
    for path in [*APP.rglob("service.py"), *(APP / "registry").glob("*.py")]:
        assert ".commit(" not in path.read_text(), f"{path} commits; the unit of work does"


CLIENT_FILES = sorted((APP / "client").rglob("*.py"))


@pytest.mark.parametrize("path", CLIENT_FILES, ids=lambda p: str(p.relative_to(APP)))
def test_the_client_imports_no_server_code(path):
    """A client of the public API: it must work where only httpx and websockets are."""
    server = ("strawberry", "starlette", "uvicorn", "sqlalchemy", "sqlmodel")
    bad = {
        m
        for m in imported_modules(path)
        if m.split(".")[0] in server or (m.startswith("app.") and not m.startswith("app.client"))
    }
    assert not bad, f"{path.relative_to(APP)} imports {bad}"
