"""benchmarks/README.md's suite tables are what `benchmarks/tables.py` renders from the JSON they name."""

from __future__ import annotations

import importlib.util
import json

from harness.paths import repo_root


def _tables():
    folder = repo_root() / "benchmarks"
    spec = importlib.util.spec_from_file_location("bench_tables", folder / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_block_is_generated_from_the_json_it_names() -> None:
    tables = _tables()
    readme = tables.README.read_text()
    sources = tables.block_sources(readme)
    assert sources and all(s.endswith(".json") for s in sources), "the generated block names no JSON file"
    table = tables.render_files([repo_root() / s for s in sources])
    assert tables.with_block(readme, table) == readme, "stale: run ./dev python benchmarks/tables.py --write"


def test_render_has_one_row_per_benchmark_with_its_ratio() -> None:
    def run(us: float, when: str) -> dict:
        return {"machine_info": {"cpu": {"brand_raw": "CPU X", "count": 2}, "python_version": "3.12.1"},
                "commit_info": {"id": "abcdef123"}, "datetime": when,
                "benchmarks": [{"name": "test_kernel", "stats": {"rounds": 15, "min": 0.004, "median": 0.005},
                                "extra_info": {"cpu_us_per_call": us, "ratio_numpy_over_fused_cpu": 13.0,
                                               "load_1min_start": 4.0}}]}

    tables = _tables()
    text = tables.render(tables.merged([("a/0001_baseline.json", run(30.0, "2026-12-02T07:00:00")),
                                        ("a/0002_baseline.json", run(20.0, "2026-12-03T07:00:00"))]),
                         ["a/0001_baseline.json", "a/0002_baseline.json"])
    assert "CPU X, 2 CPUs" in text and tables.block_sources(tables.BEGIN + "\n" + text) == [
        "a/0001_baseline.json", "a/0002_baseline.json"]
    assert ("| `test_kernel` | 0002, 2026-12-03 07:00, abcdef1 | 4.0 | 15 | 4.00 ms | 5.00 ms | "
            "20.0 µs CPU per call | numpy_over_fused_cpu 13 |") in text


def test_runs_from_two_machines_are_each_labelled_and_parametrized_rows_get_their_figures() -> None:
    def run(cpu: str, when: str, name: str, info: dict) -> dict:
        return {"machine_info": {"cpu": {"brand_raw": cpu, "count": 2}, "python_version": "3.12.1"},
                "commit_info": {"id": "abcdef123"}, "datetime": when,
                "benchmarks": [{"name": name, "stats": {"rounds": 1, "min": 20.0, "median": 20.0}, "extra_info": info}]}

    tables = _tables()
    sources = ["a/0001_baseline.json", "a/0002_baseline.json"]
    text = tables.render(tables.merged([
        (sources[0], run("CPU X", "2026-12-02T07:00:00", "test_kernel", {"cpu_us_per_call": 20.0})),
        (sources[1], run("CPU Y", "2026-12-03T07:00:00", "test_prepare_scale[2km-cluster]",
                         {"peak_rss_mb": 300.0, "worker_peak_rss_mb": 410.0, "ratio_peak_over_in_memory": 0.07})),
    ]), sources)
    assert "`a/0001_baseline.json` (CPU X, 2 CPUs, Python 3.12.1), `a/0002_baseline.json` (CPU Y," in text
    assert tables.block_sources(tables.BEGIN + "\n" + text) == sources
    assert "| 300 peak RSS MB, 410 MB per worker (max) | peak_over_in_memory 0.07 |" in text
