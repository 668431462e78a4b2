"""Load: 8 concurrent writers and 50 concurrent readers for 30 s against one real server,
driven by the generator of scripts/load.py (imported, not copied). Asserts counts only,
never times: no error of any kind, no "database is locked" and no traceback in the
server's output, every acknowledged point stored (and nothing unacknowledged)."""

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.e2e.conftest import ROOT, auth_headers

SCRIPTS = ROOT / "scripts"


def _import_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running: dataclasses resolve annotations through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# load.py does `from _harness import ...`, as a script run from scripts/ would; importing
# the harness under that name first saves putting scripts/ on sys.path for every test.
_import_script("_harness", SCRIPTS / "_harness.py")
load = _import_script("modelgraph_load_script", SCRIPTS / "load.py")

SECONDS, WRITERS, READERS = 30, 8, 50


def test_writers_and_readers_under_load_get_no_error_and_lose_no_point(start_server, database_url):
    # given one real server (no access-log line per request), its output kept in a file
    server = start_server(MODELGRAPH_LOG_LEVEL="warning")

    # when writers stream logMetrics batches while readers run the dashboard's queries
    report = asyncio.run(
        load.run_load(
            server.base,
            auth_headers(),
            database_url,
            seconds=SECONDS,
            writers=WRITERS,
            readers=READERS,
        )
    )
    alive = server.alive()
    output = server.stop()
    load.add_server_log_checks(report, output)

    # then nothing failed, nothing was locked out, and every acknowledged point is stored
    assert alive, output
    assert f"listening on http://127.0.0.1:{server.port}/graphql" in output
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["server_log"]["database_is_locked"] == 0, output[-5000:]
    assert report["server_log"]["tracebacks"] == 0, output[-5000:]
    stored = report["stored_vs_acknowledged"]
    assert stored["acknowledged"] > 0
    assert (stored["missing"], stored["extra"]) == (0, 0), stored
    assert stored["stored"] == stored["acknowledged"], stored
    assert stored["match"], stored
    assert report["consistency"]["every_acknowledged_version_stored"], report["consistency"]
    assert [name for name, held in report["checks"].items() if not held] == [], report["checks"]
    # Every writer and every reader kind got through, not only some of them.
    done = report["requests"]["by_operation"]
    assert all(done[op]["ok"] > 0 for op in ("logMetrics.points", "logMetrics.series")), done
    assert all(
        done[op]["ok"] > 0
        for op in ("bestRun", "runs", "metricHistory", "metricSeries", "models", "events")
    ), done
