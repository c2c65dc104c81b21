"""`benchmarks/compare.py`'s memory check: fails naming the benchmark and the ratio."""

from __future__ import annotations

import importlib.util

from harness.paths import repo_root


def _compare():
    spec = importlib.util.spec_from_file_location("bench_compare", repo_root() / "benchmarks" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(mb: float) -> dict:
    return {"benchmarks": [{"name": "test_prepare_full_size", "extra_info": {"peak_rss_mb": mb}},
                           {"name": "test_kernel", "extra_info": {}}]}


def test_memory_growth_beyond_tolerance_is_named_with_its_ratio() -> None:
    found = _compare().memory_regressions(_run(600.0), _run(700.0), tolerance=0.05)
    assert len(found) == 1 and "test_prepare_full_size" in found[0] and "1.167" in found[0]


def test_memory_within_tolerance_passes() -> None:
    assert _compare().memory_regressions(_run(600.0), _run(620.0), tolerance=0.05) == []
