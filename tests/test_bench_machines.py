"""`benchmarks/compare.py` on a new VM: which runs are "the same machine", and its exit statuses.

A fresh VM of the baseline's CPU differs in kernel release, hostname and a CPU flag; that must
compare (exit 0 unchanged, 1 with a planted slowdown), and a baseline from another CPU must not
(exit 2). Before issue 36 pytest-benchmark's machine_info warning crashed the run (exit 3).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from harness.paths import repo_root
from tests.test_imports import _assert_acyclic, import_graph

BENCHMARKS = repo_root() / "benchmarks"


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as the scripts run: their folder first on the path
    spec = importlib.util.spec_from_file_location("bench_compare", BENCHMARKS / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _machine(release: str, flags: list[str], node: str) -> dict:
    return {"node": node, "release": release, "system": "Linux", "python_implementation": "CPython",
            "python_version": "3.12.1", "cpu": {"brand_raw": "AMD EPYC", "count": 2, "flags": flags}}


def _run(machine: dict, slowdown: float = 1.0) -> dict:
    """A saved run in pytest-benchmark's schema: test_kernel, 15 rounds, its gated CPU ratio."""
    stats = {"min": 0.0030 * slowdown, "mean": 0.0032 * slowdown, "stddev": 0.0001 * slowdown, "rounds": 15,
             "median": 0.0031 * slowdown}
    return {"machine_info": machine, "datetime": "2026-12-07T14:00:00", "commit_info": {"id": "abc"},
            "benchmarks": [{"name": "test_kernel", "stats": stats,
                            "extra_info": {"nproc": 2, "load_1min_start": 0.2,
                                           "ratio_numpy_over_fused_cpu": 8.1 / slowdown}}]}


def _storage(tmp_path: Path, machine: dict) -> Path:
    folder = tmp_path / "baselines" / "Linux-CPython-3.12-64bit"
    folder.mkdir(parents=True)
    (folder / "0001_baseline.json").write_text(json.dumps(_run(machine)))
    return tmp_path / "baselines"


BASE = _machine("6.18.44-fc-v1147", ["avx2", "sse2", "vaes"], "vm")
NEW_VM = _machine("6.18.44-fc-v1300", ["avx2", "sse2"], "vm-2")  # kernel build, one flag, hostname differ


def test_a_vm_differing_in_kernel_flags_and_hostname_is_the_same_machine(compare, tmp_path, capsys) -> None:
    storage = _storage(tmp_path, BASE)
    clean, slow = tmp_path / "clean.json", tmp_path / "slow.json"
    clean.write_text(json.dumps(_run(NEW_VM)))
    slow.write_text(json.dumps(_run(NEW_VM, slowdown=4.0)))
    assert compare.main(["--check", str(clean), "--storage", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "GREEN" in out and "1.000 [" in out  # the wall ratio with its interval over rounds
    assert compare.main(["--check", str(slow), "--storage", str(storage)]) == 1
    assert "TIME REGRESSION test_kernel" in capsys.readouterr().out


@pytest.mark.parametrize("change", ["brand_raw", "count", "python_version"])
def test_another_cpu_core_count_or_python_minor_has_no_baseline(compare, tmp_path, capsys, change) -> None:
    other = copy.deepcopy(NEW_VM)
    if change == "python_version":
        other["python_version"] = "3.13.0"
    else:
        other["cpu"][change] = {"brand_raw": "Intel(R) Xeon(R) Processor", "count": 4}[change]
    run = tmp_path / "run.json"
    run.write_text(json.dumps(_run(other)))
    assert compare.main(["--check", str(run), "--storage", str(_storage(tmp_path, BASE))]) == 2
    assert "no baseline taken on this machine" in capsys.readouterr().err


def test_a_patch_release_of_python_is_the_same_machine(compare) -> None:
    import machines

    patched = copy.deepcopy(BASE) | {"python_version": "3.12.7"}
    assert machines.machine_key(patched) == machines.machine_key(NEW_VM) == ("AMD EPYC", 2, "CPython", "3.12")


def test_a_ratio_within_the_rounds_scatter_is_not_a_regression(compare) -> None:
    noisy = {"min": 0.003, "mean": 0.004, "stddev": 0.004, "rounds": 3}
    slower_min = noisy | {"min": 0.0045}
    ratio, low, high = compare.ratio_interval(noisy, slower_min)
    assert ratio == 1.0 and low < 1 < high
    assert compare.time_regressions({"benchmarks": [{"name": "b", "stats": noisy, "extra_info": {}}]},
                                    {"benchmarks": [{"name": "b", "stats": slower_min, "extra_info": {}}]}) == []
    assert compare.ratio_interval(noisy | {"rounds": 1}, noisy) is None  # one round: no scatter to measure


def test_no_import_cycle_among_the_benchmark_scripts() -> None:
    graph = import_graph(BENCHMARKS, (".",), deferred=True)  # deferred imports count: they run too
    assert "machines" in graph["tables"] and "tables" in graph["compare"]  # the scan sees the bare imports
    _assert_acyclic(graph, "import cycle in benchmarks/")


@pytest.mark.full
def test_the_real_suite_runs_against_a_baseline_from_another_vm(tmp_path) -> None:
    """pytest-benchmark for real: a baseline taken here, its machine_info changed as a new VM's
    would be (kernel release, a CPU flag, hostname); exit 0, and 1 with the kernel plant."""
    storage = tmp_path / "storage"
    script = [sys.executable, str(BENCHMARKS / "compare.py"), "-k", "test_kernel", "--storage", str(storage)]
    assert subprocess.call([*script, "--save-baseline"], cwd=repo_root()) == 0
    (saved,) = storage.rglob("*_baseline.json")
    run = json.loads(saved.read_text())
    info = run["machine_info"]
    info["release"], info["node"] = info["release"] + "-other-build", "another-vm"
    info["cpu"]["flags"] = info["cpu"].get("flags", [])[1:]
    saved.write_text(json.dumps(run))
    assert subprocess.call(script, cwd=repo_root()) == 0
    env = os.environ | {"FUSION_BENCH_PLANT": "kernel-sleep"}
    assert subprocess.call(script, cwd=repo_root(), env=env) == 1
