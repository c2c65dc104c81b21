"""Run the benchmark suite, save it, and compare it with the committed baseline.

    ./dev python benchmarks/compare.py --save-baseline   # take a baseline on this machine
    ./dev python benchmarks/compare.py                   # run, save, compare; exit 1 on a regression
    ./dev python benchmarks/compare.py -k kernel         # only the benchmarks matching -k

Time: the minimum over rounds (the least disturbed round; other jobs only ever add time), red
when it grows by more than the threshold: pytest-benchmark's `--benchmark-compare-fail=min:P%`
and, with the same rule, this script's table of ratios. Memory: `peak_rss_mb` in `extra_info`,
which pytest-benchmark does not compare, red when it grows by more than MEMORY_TOLERANCE.
`FUSION_BENCH_PLANT` (benchmarks/plants.py) plants a slowdown to see the comparison turn red.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from harness.paths import repo_root

STORAGE = repo_root() / "benchmarks" / "baselines"
TIME_THRESHOLD = 35.0  # % on the minimum: repeats at load 1–4 on 2 shared cores move it by up to ±20 %
MEMORY_TOLERANCE = 0.05  # peak RSS is near-deterministic (a few MB of noise on ~550 MB)


def _by_name(run: dict) -> dict[str, dict]:
    return {b["name"]: b for b in run["benchmarks"]}


def memory_regressions(baseline: dict, current: dict, tolerance: float = MEMORY_TOLERANCE) -> list[str]:
    """One line per benchmark whose `extra_info.peak_rss_mb` grew by more than `tolerance`."""
    before = {name: b["extra_info"] for name, b in _by_name(baseline).items()}
    found = []
    for bench in current["benchmarks"]:
        old, new = before.get(bench["name"], {}).get("peak_rss_mb"), bench["extra_info"].get("peak_rss_mb")
        if old and new and new / old > 1 + tolerance:
            found.append(f"{bench['name']}: peak_rss_mb {old:.1f} -> {new:.1f} (ratio {new / old:.3f}, "
                         f"tolerance {1 + tolerance:.2f})")
    return found


def time_regressions(baseline: dict, current: dict, threshold_pct: float = TIME_THRESHOLD) -> list[str]:
    """One line per benchmark whose minimum over rounds grew by more than `threshold_pct` percent."""
    before = _by_name(baseline)
    found = []
    for name, bench in _by_name(current).items():
        if name not in before:
            continue
        old, new = before[name]["stats"]["min"], bench["stats"]["min"]
        if new / old > 1 + threshold_pct / 100:
            found.append(f"{name}: min {_seconds(old)} -> {_seconds(new)} (ratio {new / old:.3f}, "
                         f"threshold {1 + threshold_pct / 100:.2f})")
    return found


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def ratio_table(baseline: dict, current: dict, threshold_pct: float = TIME_THRESHOLD) -> str:
    """Every benchmark in both runs: minimum before and now, their ratio, peak RSS ratio, verdict."""
    before = _by_name(baseline)
    lines = [f"{'benchmark':<34}{'min before':>13}{'min now':>13}{'ratio':>8}{'rss ratio':>11}  verdict"]
    for name, bench in _by_name(current).items():
        if name not in before:
            lines.append(f"{name:<34}{'-':>13}{_seconds(bench['stats']['min']):>13}{'-':>8}{'-':>11}  new")
            continue
        old, new = before[name]["stats"]["min"], bench["stats"]["min"]
        rss_old, rss_new = before[name]["extra_info"].get("peak_rss_mb"), bench["extra_info"].get("peak_rss_mb")
        rss = rss_new / rss_old if rss_old and rss_new else None
        bad = new / old > 1 + threshold_pct / 100 or (rss is not None and rss > 1 + MEMORY_TOLERANCE)
        lines.append(f"{name:<34}{_seconds(old):>13}{_seconds(new):>13}{new / old:>8.3f}"
                     f"{'-' if rss is None else f'{rss:.3f}':>11}  {'REGRESSION' if bad else 'ok'}")
    return "\n".join(lines)


def _runs() -> list[Path]:
    return sorted(STORAGE.rglob("*.json"))


def this_cpu() -> str:
    """The CPU name pytest-benchmark records in `machine_info.cpu.brand_raw`."""
    import cpuinfo

    return cpuinfo.get_cpu_info().get("brand_raw", "unknown")


def baseline_for(cpu: str, runs: list[Path] | None = None) -> Path | None:
    """The newest saved baseline taken on a machine with this CPU (a baseline per machine: times
    from another CPU compare nothing), or None."""
    for path in reversed(runs if runs is not None else _runs()):
        if "_baseline" in path.name and json.loads(path.read_text())["machine_info"]["cpu"].get("brand_raw") == cpu:
            return path
    return None


def pytest_command(k: str | None = None) -> list[str]:
    """The suite under pytest-benchmark, storing runs in benchmarks/baselines/ (also for the bench_*.py)."""
    cmd = [sys.executable, "-m", "pytest", str(repo_root() / "benchmarks"), "-p", "no:randomly",
           "--benchmark-enable", "--benchmark-only", f"--benchmark-storage=file://{STORAGE}", "-q"]
    return cmd + (["-k", k] if k else [])


def run_suite(k: str) -> dict:
    """Run the suite's benchmarks matching `k` once (not saved) and return pytest-benchmark's JSON:
    what the `bench_*.py` scripts print from, so their figures are the suite's."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fusion-bench-") as tmp:
        out = Path(tmp) / "run.json"
        code = subprocess.call([*pytest_command(k), f"--benchmark-json={out}"])
        if code != 0 or not out.is_file():
            sys.exit(f"benchmark suite failed (pytest exit {code})")
        return json.loads(out.read_text())


def wrapper_main(k: str, description: str) -> int:
    """`python benchmarks/bench_X.py`: the suite's benchmarks matching `k`, printed as README's table."""
    from tables import render

    argparse.ArgumentParser(description=description).parse_args()
    print(render(run_suite(k), f"this run (-k {k})"), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-baseline", action="store_true", help="save as the new baseline, no comparison")
    ap.add_argument("-k", default=None, help="only benchmarks matching this expression")
    ap.add_argument("--time-threshold", type=float, default=TIME_THRESHOLD,
                    help=f"percent growth of a minimum time that is a regression (default {TIME_THRESHOLD:g})")
    args = ap.parse_args(argv)
    base = pytest_command(args.k)
    if args.save_baseline:
        return subprocess.call([*base, "--benchmark-save=baseline"])
    previous = _runs()
    cpu = this_cpu()
    baseline = baseline_for(cpu, previous)
    if baseline is None:
        print(f"compare: no baseline taken on this machine ({cpu}) in {STORAGE}; "
              "take one with --save-baseline on an idle machine", file=sys.stderr)
        return 2
    code = subprocess.call([*base, "--benchmark-autosave", f"--benchmark-compare={baseline.name.split('_')[0]}",
                            f"--benchmark-compare-fail=min:{args.time_threshold:g}%"])
    current = max(set(_runs()) - set(previous), key=lambda p: p.stat().st_mtime, default=None)
    if current is None:
        return code or 1
    old, new = json.loads(baseline.read_text()), json.loads(current.read_text())
    print(f"\ncompared {current.name} with {baseline.name}: time min +{args.time_threshold:g} %, "
          f"memory +{MEMORY_TOLERANCE:.0%}")
    print(ratio_table(old, new, args.time_threshold))
    problems = [f"TIME REGRESSION {line}" for line in time_regressions(old, new, args.time_threshold)]
    problems += [f"MEMORY REGRESSION {line}" for line in memory_regressions(old, new)]
    for line in problems:
        print(line)
    print("RED" if problems or code else "GREEN")
    return 1 if problems or code else 0


if __name__ == "__main__":
    sys.exit(main())
