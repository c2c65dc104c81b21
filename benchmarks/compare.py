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
Each wall ratio is shown with its 95 % interval over rounds (the ratio of the mean round times,
from each run's mean, sd and round count) and a wall regression also needs that interval above 1:
a minimum that grew within the rounds' own scatter is noise, not a regression.
Exit 2: no baseline taken on the same machine (`machines.py`: CPU model, cores, Python
implementation and major.minor; kernel, hostname and CPU flags may differ). `FUSION_BENCH_PLANT`
(benchmarks/plants.py) plants a slowdown to see it turn red.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from harness.paths import repo_root
from machines import STORAGE, baselines_for, describe, machine_key, saved_runs, this_machine

TIME_THRESHOLD = 35.0  # % on the minimum: repeats at load 1–4 on 2 shared cores move it by up to ±20 %
MEMORY_TOLERANCE = 0.05  # peak RSS is near-deterministic (a few MB of noise on ~550 MB)
LEVEL = 0.95  # of the wall ratio's interval over rounds
# pytest-benchmark warns when machine_info differs in any field (a kernel build, a CPU flag), and
# `filterwarnings = error` makes that an INTERNALERROR: which runs compare is machines.py's decision
QUIET = ["-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]


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
        interval = ratio_interval(before[name]["stats"], bench["stats"])
        beyond_noise = interval is None or interval[1] > 1
        if new / old > limit and beyond_noise and not (_busy(bench) or _busy(before[name])):
            found.append(f"{name}: min {_seconds(old)} -> {_seconds(new)} (ratio {new / old:.3f}, "
                         f"threshold {limit:.2f}; mean ratio {_interval_text(interval)})")
        key, direction = FIGURES.get(name, ("", ""))
        fig_old, fig_new = before[name]["extra_info"].get(key), bench["extra_info"].get(key)
        if fig_old and fig_new and _factor(fig_old, fig_new, direction) > limit:
            found.append(f"{name}: {key} {fig_old:.4g} -> {fig_new:.4g} ({_factor(fig_old, fig_new, direction):.3f}"
                         f" times worse, {direction} is better; threshold {limit:.2f})")
    return found


def ratio_interval(old: dict, new: dict, level: float = LEVEL) -> tuple[float, float, float] | None:
    """The ratio of mean round times (new over old) and its `level` interval over rounds, or None
    when either run has a single round (no scatter to measure).

    Each run's mean has relative standard error sd/(mean·√rounds); the log of the ratio has the
    root sum of squares of the two (the delta method), and the interval is normal on that log.
    """
    from scipy.stats import norm

    if min(old.get("rounds", 1), new.get("rounds", 1)) < 2 or not (old.get("mean") and new.get("mean")):
        return None
    rel = [s["stddev"] / (s["mean"] * math.sqrt(s["rounds"])) for s in (old, new)]
    ratio, spread = new["mean"] / old["mean"], norm.ppf(0.5 + level / 2) * math.hypot(*rel)
    return ratio, ratio * math.exp(-spread), ratio * math.exp(spread)


def _interval_text(interval: tuple[float, float, float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:.3f} [{interval[1]:.3f}, {interval[2]:.3f}]"


def _seconds(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def ratio_table(baseline: dict, current: dict, threshold_pct: float = TIME_THRESHOLD) -> str:
    """Every benchmark in both runs: wall minimum before and now and their ratio (marked when
    either run was on a busy machine: not gated), the gated figure's factor, peak RSS ratio, verdict."""
    before, limit = _by_name(baseline), 1 + threshold_pct / 100
    lines = [f"{'benchmark':<32}{'min before':>12}{'min now':>12}{'wall':>12}"
             f"{f'mean ratio, {LEVEL:.0%} over rounds':>30}{'figure':>10}{'rss':>8}  verdict  (figure: how many times worse the gated figure is)"]
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
        interval = ratio_interval(before[name]["stats"], bench["stats"])
        noise = interval is not None and interval[1] <= 1
        bad = ((new / old > limit and not busy and not noise) or (fig is not None and fig > limit)
               or (rss is not None and rss > 1 + MEMORY_TOLERANCE))
        wall = f"{new / old:.3f}{' busy' if busy else ''}"
        lines.append(f"{name:<32}{_seconds(old):>12}{_seconds(new):>12}{wall:>12}"
                     f"{_interval_text(interval):>30}"
                     f"{'-' if fig is None else f'{fig:.3f}':>10}{'-' if rss is None else f'{rss:.3f}':>8}"
                     f"  {'REGRESSION' if bad else 'ok'}")
    return "\n".join(lines)


def merged_baseline(paths: list[Path]) -> dict:
    """Each benchmark from the newest of `paths` that holds it: a baseline retaken for some
    benchmarks only (`--save-baseline -k NAME`) replaces those and keeps the others."""
    merged: dict[str, dict] = {}
    for path in paths:
        for bench in json.loads(path.read_text())["benchmarks"]:
            merged[bench["name"]] = bench | {"baseline_file": path.name}
    return {"benchmarks": list(merged.values())}


def pytest_command(k: str | None = None, storage: Path = STORAGE) -> list[str]:
    """The suite under pytest-benchmark, storing runs in `storage` (also for the bench_*.py)."""
    cmd = [sys.executable, "-m", "pytest", str(repo_root() / "benchmarks"), "-p", "no:randomly",
           "--benchmark-enable", "--benchmark-only", f"--benchmark-storage=file://{storage}", "-q", *QUIET]
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
    ap.add_argument("--storage", type=Path, default=STORAGE,
                    help=f"saved runs and baselines (default {STORAGE})")
    args = ap.parse_args(argv)
    base = pytest_command(args.k, args.storage)
    if args.save_baseline:
        return subprocess.call([*base, "--benchmark-save=baseline"])
    previous = saved_runs(args.storage)
    machine = this_machine()
    if args.check is not None:
        try:
            machine = json.loads(args.check.read_text())["machine_info"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"compare: {args.check}: not a saved pytest-benchmark run ({exc})", file=sys.stderr)
            return 2
    baselines = baselines_for(machine, previous)
    if not baselines:
        print(f"compare: no baseline taken on this machine ({describe(machine_key(machine))}) "
              f"in {args.storage}; "
              "take one with --save-baseline on an idle machine", file=sys.stderr)
        return 2
    if args.check is not None:
        code, current = 0, args.check
    else:
        # pytest-benchmark is not asked to load the baseline (`--benchmark-compare`): it would
        # compare every machine_info field; the verdict and its table are this script's
        code = subprocess.call([*base, "--benchmark-autosave"])
        new_runs = set(saved_runs(args.storage)) - set(previous)
        current = max(new_runs, key=lambda p: p.stat().st_mtime, default=None)
        if current is None:
            return code or 1
    old, new = merged_baseline(baselines), json.loads(current.read_text())
    if not set(_by_name(old)) & set(_by_name(new)):
        print(f"compare: no benchmark of {current.name} has a baseline on this machine", file=sys.stderr)
        return 2
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
