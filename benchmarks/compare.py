"""Run the benchmark suite, save it, and compare it with the committed baseline.

    ./dev python benchmarks/compare.py --save-baseline   # take a baseline on this machine
    ./dev python benchmarks/compare.py                   # run, save, compare; exit 1 on a regression
    ./dev python benchmarks/compare.py -k kernel         # only the benchmarks matching -k

    ./dev python benchmarks/compare.py --check RUN.json  # judge a saved run, run nothing

Red (exit 1) when, against the baselines taken on this CPU (newest per benchmark):
  * a benchmark's gated figure (FIGURES: CPU seconds, or a ratio of two timings of the same
    run; other jobs barely move them) is more than the threshold worse;
  * its minimum wall time over rounds grew by more than the threshold, unless either run was
    taken on a busy machine (load average at or above the CPU count: then it is shown, not
    gated, since other jobs alone move it by up to 4x on 2 shared cores);
  * its `peak_rss_mb` grew by more than MEMORY_TOLERANCE.
Exit 2: no baseline for this CPU. `FUSION_BENCH_PLANT` (benchmarks/plants.py) plants a
slowdown to see it turn red.
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


# the figure each benchmark is gated on besides its wall time: one that other jobs on the machine
# barely move (CPU seconds of the work, or a ratio of two timings taken in the same run), and
# whether a regression makes it larger ("lower" is better) or smaller ("higher" is better)
FIGURES: dict[str, tuple[str, str]] = {
    "test_kernel": ("ratio_numpy_over_fused_cpu", "higher"),
    "test_fusion_run_defaults[warm]": ("cpu_min_s", "lower"),
    "test_fusion_run_defaults[cold]": ("cpu_min_s", "lower"),
    # SBC fits in worker processes that outlive the round: no CPU figure of this process sees
    # them, so it is gated on its wall time only (off a busy machine)
    "test_export_facts": ("cpu_min_s", "lower"),
}


def _busy(bench: dict) -> bool:
    """Other jobs had the CPUs: load average at the benchmark's start at or above the CPU count."""
    info = bench["extra_info"]
    return info.get("load_1min_start", 0.0) >= (info.get("nproc") or 1)


def _factor(old: float, new: float, direction: str) -> float:
    """How many times worse `new` is than `old` (above 1: a regression)."""
    return new / old if direction == "lower" else old / new


def time_regressions(baseline: dict, current: dict, threshold_pct: float = TIME_THRESHOLD) -> list[str]:
    """One line per benchmark whose gated figure, or minimum wall time over rounds when neither
    run was taken on a busy machine, got worse by more than `threshold_pct` percent."""
    before, limit = _by_name(baseline), 1 + threshold_pct / 100
    found = []
    for name, bench in _by_name(current).items():
        if name not in before:
            continue
        old, new = before[name]["stats"]["min"], bench["stats"]["min"]
        if new / old > limit and not (_busy(bench) or _busy(before[name])):
            found.append(f"{name}: min {_seconds(old)} -> {_seconds(new)} (ratio {new / old:.3f}, "
                         f"threshold {limit:.2f})")
        key, direction = FIGURES.get(name, ("", ""))
        fig_old, fig_new = before[name]["extra_info"].get(key), bench["extra_info"].get(key)
        if fig_old and fig_new and _factor(fig_old, fig_new, direction) > limit:
            found.append(f"{name}: {key} {fig_old:.4g} -> {fig_new:.4g} ({_factor(fig_old, fig_new, direction):.3f}"
                         f" times worse, {direction} is better; threshold {limit:.2f})")
    return found


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def ratio_table(baseline: dict, current: dict, threshold_pct: float = TIME_THRESHOLD) -> str:
    """Every benchmark in both runs: wall minimum before and now and their ratio (marked when
    either run was on a busy machine: not gated), the gated figure's factor, peak RSS ratio, verdict."""
    before, limit = _by_name(baseline), 1 + threshold_pct / 100
    lines = [f"{'benchmark':<32}{'min before':>12}{'min now':>12}{'wall':>12}{'figure':>10}{'rss':>8}  verdict  "
             "(figure: how many times worse the gated figure is)"]
    for name, bench in _by_name(current).items():
        if name not in before:
            lines.append(f"{name:<32}{'-':>12}{_seconds(bench['stats']['min']):>12}  new, not compared")
            continue
        old, new = before[name]["stats"]["min"], bench["stats"]["min"]
        busy = _busy(bench) or _busy(before[name])
        key, direction = FIGURES.get(name, ("", ""))
        fig_old, fig_new = before[name]["extra_info"].get(key), bench["extra_info"].get(key)
        fig = _factor(fig_old, fig_new, direction) if fig_old and fig_new else None
        rss_old, rss_new = before[name]["extra_info"].get("peak_rss_mb"), bench["extra_info"].get("peak_rss_mb")
        rss = rss_new / rss_old if rss_old and rss_new else None
        bad = ((new / old > limit and not busy) or (fig is not None and fig > limit)
               or (rss is not None and rss > 1 + MEMORY_TOLERANCE))
        wall = f"{new / old:.3f}{' busy' if busy else ''}"
        lines.append(f"{name:<32}{_seconds(old):>12}{_seconds(new):>12}{wall:>12}"
                     f"{'-' if fig is None else f'{fig:.3f}':>10}{'-' if rss is None else f'{rss:.3f}':>8}"
                     f"  {'REGRESSION' if bad else 'ok'}")
    return "\n".join(lines)


def _runs() -> list[Path]:
    return sorted(STORAGE.rglob("*.json"))


def this_cpu() -> str:
    """The CPU name pytest-benchmark records in `machine_info.cpu.brand_raw`."""
    import cpuinfo

    return cpuinfo.get_cpu_info().get("brand_raw", "unknown")


def baselines_for(cpu: str, runs: list[Path] | None = None) -> list[Path]:
    """The saved baselines taken on a machine with this CPU (times from another CPU compare
    nothing), oldest first."""
    return [path for path in (runs if runs is not None else _runs())
            if "_baseline" in path.name and json.loads(path.read_text())["machine_info"]["cpu"].get("brand_raw") == cpu]


def baseline_for(cpu: str, runs: list[Path] | None = None) -> Path | None:
    """The newest baseline taken on this CPU, or None."""
    found = baselines_for(cpu, runs)
    return found[-1] if found else None


def merged_baseline(paths: list[Path]) -> dict:
    """Each benchmark from the newest of `paths` that holds it: a baseline retaken for some
    benchmarks only (`--save-baseline -k NAME`) replaces those and keeps the others."""
    merged: dict[str, dict] = {}
    for path in paths:
        for bench in json.loads(path.read_text())["benchmarks"]:
            merged[bench["name"]] = bench | {"baseline_file": path.name}
    return {"benchmarks": list(merged.values())}


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
    from tables import merged, render

    argparse.ArgumentParser(description=description).parse_args()
    print(render(merged([("this run", run_suite(k))]), [f"this run, -k {k}"]), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-baseline", action="store_true", help="save as the new baseline, no comparison")
    ap.add_argument("-k", default=None, help="only benchmarks matching this expression")
    ap.add_argument("--check", type=Path, default=None, metavar="RUN.json",
                    help="compare this saved run with this machine's baseline, without running anything")
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
    if args.check is not None:
        code, current = 0, args.check
    else:
        # pytest-benchmark shows its comparison table; the verdict is this script's, which knows
        # a busy machine (`--benchmark-compare-fail` would fail every run taken under load)
        code = subprocess.call([*base, "--benchmark-autosave", f"--benchmark-compare={baseline.name.split('_')[0]}"])
        current = max(set(_runs()) - set(previous), key=lambda p: p.stat().st_mtime, default=None)
        if current is None:
            return code or 1
    old, new = merged_baseline(baselines_for(cpu, previous)), json.loads(current.read_text())
    names = ", ".join(sorted({b["baseline_file"] for b in old["benchmarks"]}))
    print(f"\ncompared {current.name} with {names} (newest per benchmark): +{args.time_threshold:g} %, "
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
