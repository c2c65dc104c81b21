"""`benchmarks/compare.py`'s memory check: fails naming the benchmark and the ratio."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from harness.paths import repo_root


@pytest.fixture(autouse=True)
def _benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare.py imports its sibling `machines` as the scripts run it: from the benchmarks folder."""
    monkeypatch.syspath_prepend(str(repo_root() / "benchmarks"))


def _compare() -> ModuleType:
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


def _timed(name: str, best: float) -> dict:
    return {"benchmarks": [{"name": name, "stats": {"min": best}, "extra_info": {}}]}


def test_a_minimum_beyond_the_threshold_is_named_with_its_ratio() -> None:
    compare = _compare()
    found = compare.time_regressions(_timed("test_kernel", 0.004), _timed("test_kernel", 0.0142), threshold_pct=35)
    assert len(found) == 1 and "test_kernel" in found[0] and "ratio 3.550" in found[0]
    assert compare.time_regressions(_timed("test_kernel", 0.004), _timed("test_kernel", 0.0053), threshold_pct=35) == []
    assert "REGRESSION" in compare.ratio_table(_timed("test_kernel", 0.004), _timed("test_kernel", 0.0142), 35)


def test_the_baseline_is_the_one_taken_on_this_cpu(tmp_path) -> None:
    import json

    import machines

    def info(cpu: str) -> dict:
        return {"cpu": {"brand_raw": cpu, "count": 2}, "python_implementation": "CPython", "python_version": "3.12.1"}

    runs = []
    for i, cpu in enumerate(["Intel Xeon", "AMD EPYC", "Intel Xeon"]):
        path = tmp_path / f"000{i + 1}_baseline.json"
        path.write_text(json.dumps({"machine_info": info(cpu)}))
        runs.append(path)
    assert machines.baseline_for(info("AMD EPYC"), runs) == runs[1]
    assert machines.baseline_for(info("Intel Xeon"), runs) == runs[2]
    assert machines.baseline_for(info("Apple M3"), runs) is None
