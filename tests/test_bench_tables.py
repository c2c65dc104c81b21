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
    source = tables.block_source(readme)
    assert source is not None and source.endswith(".json"), "the generated block names no JSON file"
    table = tables.render(json.loads((repo_root() / source).read_text()), source)
    assert tables.with_block(readme, table) == readme, "stale: run ./dev python benchmarks/tables.py --write"


def test_render_has_one_row_per_benchmark_with_its_ratio() -> None:
    run = {"machine_info": {"cpu": {"brand_raw": "CPU X", "count": 2}, "python_version": "3.12.1"},
           "commit_info": {"id": "abcdef123"}, "datetime": "2026-12-03T07:00:00",
           "benchmarks": [{"name": "test_kernel", "stats": {"rounds": 15, "min": 0.004, "median": 0.005},
                           "extra_info": {"us_per_call": 20.0, "ratio_numpy_over_fused": 13.0,
                                          "load_1min_start": 4.0}}]}
    text = _tables().render(run, "x.json")
    assert "CPU X, 2 CPUs" in text and "abcdef1" in text and "load average 4.0–4.0" in text
    assert "| `test_kernel` | 15 | 4.00 ms | 5.00 ms | 20.0 µs per call | numpy_over_fused 13 |" in text
