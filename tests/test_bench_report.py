"""The report side of scripts/bench_vs_mlflow.py, in process and without servers: ratios
and aims of the table's rows, number formatting, the markdown (which keeps the profiles
block written between its markers), and the plot file. Behaviour only, no timing."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _import_script(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running: dataclasses resolve annotations through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The script imports its siblings as a script run from scripts/ would.
_import_script("_harness", SCRIPTS / "_harness.py")
_import_script("bench", SCRIPTS / "bench.py")
vs = _import_script("bench_vs_mlflow", SCRIPTS / "bench_vs_mlflow.py")


def run_result(**results: Any) -> dict[str, Any]:
    return {
        "mode": "full",
        "started_at": "2026-12-03T00:00:00+00:00",
        "commit": "abc123",
        "command": "scripts/bench --vs-mlflow",
        "machine": {"cpu_model": "CPU", "cores": 2, "ram_gib": 8.0, "python": "3.11"},
        "versions": {"mlflow": "3.17.2", "starlette": "1"},
        "errors": [],
        "notes": ["a note"],
        "results": results,
    }


FULL_RESULTS: dict[str, Any] = {
    "ingest": {
        "mlflow_log_batch": {"points_per_s": 8_500, "server_cpu_ms_per_request": 100.0},
        "graphql_points": {"points_per_s": 170_000, "server_cpu_ms_per_request": 5.0},
        "graphql_series": {"points_per_s": 300_000},
        "mlflow_face_log_batch": {"points_per_s": 100_000},
    },
    "best_run": {
        "runs_small": {"runs": 5000, "mlflow": {"p50_ms": 532.0}, "modelgraph": {"p50_ms": 4.0}},
        "runs_big": {"runs": 100_000, "modelgraph": {"p50_ms": 6.0}},
    },
    "history": {
        "points": 10_000,
        "mlflow_get_history": {"p50_ms": 500.0},
        "metricHistory": {"p50_ms": 100.0},
        "metricSeries": {"p50_ms": 30.0},
        "metricSeriesPacked": {"p50_ms": 20.0},
    },
    "register": {"mlflow": {"p50_ms": 13.0}, "modelgraph": {"p50_ms": 3.0}},
    "transition": {"mlflow": {"p50_ms": 12.0}, "modelgraph": {"p50_ms": 6.0}},
    "simple_read": {
        "modelgraph": {"1": {"requests_per_s": 3000.0}, "4": {"requests_per_s": 3500.0}},
        "mlflow": {"1": {"requests_per_s": 150.0}, "4": {"requests_per_s": 140.0}},
    },
    "load_mix": {
        "requests_per_s": 300.0,
        "server_cpu_ms_per_request": 3.0,
        "errors": 0,
        "ok": True,
    },
    "watchers": {
        "watchers": 1000,
        "from_request_sent": {"p50_ms": 40.0, "p99_ms": 120.0},
        "ok": True,
    },
}


def rows_by_key(result: dict[str, Any]) -> dict[str, Any]:
    return {row.key: row for row in vs.build_rows(result)}


def test_ratios_say_how_many_times_better_modelgraph_is_for_rates_and_for_times():
    rows = rows_by_key(run_result(**FULL_RESULTS))

    # a rate: modelgraph / MLflow; a time: MLflow / modelgraph
    assert rows["ingest_points"].ratio == 20.0
    assert rows["best_run_runs_small"].ratio == 133.0
    assert rows["read_1"].ratio == 20.0


def test_aims_are_judged_by_their_kind_bound_and_extra_condition():
    rows = rows_by_key(run_result(**FULL_RESULTS))

    assert rows["ingest_points"].met is True  # exactly 20x: the bound counts
    assert rows["ingest_face"].met is False  # 11.8x
    assert rows["ingest_series"].met is True  # 300k >= 250k
    assert rows["best_run_runs_small"].met is True  # 4 ms <= 5
    assert rows["best_run_runs_big"].met is False  # 6 ms > 5
    assert rows["history_objects"].met is True  # 100 ms <= 100: the bound counts
    assert rows["transition"].met is False
    assert rows["read_1"].met is True
    assert rows["read_4"].met is None  # no aim given for 4 clients
    assert rows["load_mix"].met is True  # 300 >= 3 x 68.6, no errors
    assert rows["watchers"].met is False  # p99 120 ms > 100


def test_the_load_mix_misses_its_aim_with_any_error_however_fast():
    results = {**FULL_RESULTS, "load_mix": {**FULL_RESULTS["load_mix"], "errors": 1}}

    assert rows_by_key(run_result(**results))["load_mix"].met is False


def test_missing_sections_leave_empty_cells_not_failures():
    rows = rows_by_key(run_result(ingest=FULL_RESULTS["ingest"]))

    assert rows["best_run_runs_small"].modelgraph is None
    assert rows["best_run_runs_small"].met is None
    assert rows["register"].ratio is None
    assert "load_mix" not in rows
    assert "watchers" not in rows
    table = vs.text_table(list(rows.values()))
    assert "—" in table


def test_numbers_are_compact_and_ratios_carry_a_times_sign():
    assert vs.human(20_600) == "21k"
    assert vs.human(8_500) == "8.5k"
    assert vs.human(315.4) == "315"
    assert vs.human(5.2, "ms") == "5.20 ms"
    assert vs.human(58.04, "ms") == "58.0 ms"
    assert vs.human(None) == "—"
    assert vs.ratio_text(103.4) == f"103{vs.TIMES}"
    assert vs.ratio_text(8.94) == f"8.9{vs.TIMES}"
    assert vs.ratio_text(0.5) == f"0.50{vs.TIMES}"
    assert vs.ratio_text(None) == "—"


def test_text_and_markdown_tables_have_one_line_per_row_and_the_header():
    rows = vs.build_rows(run_result(**FULL_RESULTS))

    text = vs.text_table(rows).splitlines()
    assert text[0].split()[:3] == ["figure", "MLflow", "modelgraph"]
    assert len(text) == 2 + len(rows)
    md = vs.markdown_table(vs.HEADER, vs.table_rows(rows)).splitlines()
    assert len(md) == 2 + len(rows)
    assert all(line.startswith("| ") and line.endswith(" |") for line in md if line[1] != "-")
    assert any("p50 40.0 ms, p99 120 ms" in line and "no events" in line for line in md)


def test_the_profiles_block_is_kept_when_the_markdown_is_written_again():
    result = run_result(**FULL_RESULTS)
    rows = vs.build_rows(result)
    first = vs.render_markdown(result, rows, None)
    assert "## Profiles" in first
    assert f"{vs.PROFILES_START}\n{vs.PROFILES_END}" in first

    # when the lead writes conclusions between the markers and the file is made again
    written = first.replace(
        f"{vs.PROFILES_START}\n{vs.PROFILES_END}",
        f"{vs.PROFILES_START}\nThe read path spends 60% in the ORM.\n{vs.PROFILES_END}",
    )
    again = vs.render_markdown(run_result(**{**FULL_RESULTS, "register": {}}), rows, written)

    assert "The read path spends 60% in the ORM." in again
    assert again.count(vs.PROFILES_START) == 1
    assert again.count(vs.PROFILES_END) == 1


def test_a_file_without_markers_gets_an_empty_profiles_block():
    assert vs.profiles_block("# old text, no markers") == f"{vs.PROFILES_START}\n{vs.PROFILES_END}"
    assert vs.profiles_block(f"x {vs.PROFILES_START} only the start") == (
        f"{vs.PROFILES_START}\n{vs.PROFILES_END}"
    )


def test_the_markdown_says_when_a_run_is_a_smoke_run_and_counts_aims_met():
    result = {**run_result(**FULL_RESULTS), "mode": "quick"}
    text = vs.render_markdown(result, vs.build_rows(result), None)

    assert "Smoke run" in text
    assert "Aims met: 8 of 12." in text
    assert "abc123" in text


def test_the_plot_is_a_png(tmp_path):
    result = run_result(**FULL_RESULTS)
    path = tmp_path / "plot.png"

    vs.plot(vs.build_rows(result), result, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
