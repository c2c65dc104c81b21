"""Run the benchmark suite, save it, and compare it with the committed baseline.

    ./dev python benchmarks/compare.py --save-baseline   # take a baseline on this machine
    ./dev python benchmarks/compare.py                   # run, save, compare; exit 1 on a regression

Time: pytest-benchmark's `--benchmark-compare-fail=min:TIME%` (minimum over rounds).
Memory: `peak_rss_mb` in `extra_info`, which pytest-benchmark does not compare, is checked here
by `memory_regressions` (fails when it grows by more than MEMORY_TOLERANCE).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from harness.paths import repo_root

STORAGE = repo_root() / "benchmarks" / "baselines"
TIME_THRESHOLD = "min:35%"  # the machine is shared: ±20 % between repeats at load 1–4
MEMORY_TOLERANCE = 0.05  # peak RSS is near-deterministic (a few MB of noise on ~600 MB)


def memory_regressions(baseline: dict, current: dict, tolerance: float = MEMORY_TOLERANCE) -> list[str]:
    """One line per benchmark whose `extra_info.peak_rss_mb` grew by more than `tolerance`."""
    before = {b["name"]: b["extra_info"] for b in baseline["benchmarks"]}
    found = []
    for bench in current["benchmarks"]:
        old, new = before.get(bench["name"], {}).get("peak_rss_mb"), bench["extra_info"].get("peak_rss_mb")
        if old and new and new / old > 1 + tolerance:
            found.append(f"{bench['name']}: peak_rss_mb {old:.1f} -> {new:.1f} (ratio {new / old:.3f}, "
                         f"tolerance {1 + tolerance:.2f})")
    return found


def _runs() -> list[Path]:
    return sorted(STORAGE.rglob("*.json"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save-baseline", action="store_true", help="save as the new baseline, no comparison")
    ap.add_argument("-k", default=None, help="only benchmarks matching this expression")
    args = ap.parse_args(argv)
    base = [sys.executable, "-m", "pytest", str(repo_root() / "benchmarks"), "-p", "no:randomly",
            "--benchmark-enable", "--benchmark-only", f"--benchmark-storage=file://{STORAGE}", "-q"]
    if args.k:
        base += ["-k", args.k]
    if args.save_baseline:
        return subprocess.call([*base, "--benchmark-save=baseline"])
    previous = _runs()
    if not previous:
        sys.exit("no baseline: run with --save-baseline first")
    baseline = next((p for p in previous if "baseline" in p.name), previous[-1])
    code = subprocess.call([*base, "--benchmark-autosave", f"--benchmark-compare={baseline.name.split('_')[0]}",
                            f"--benchmark-compare-fail={TIME_THRESHOLD}"])
    current = max(set(_runs()) - set(previous), key=lambda p: p.stat().st_mtime, default=None)
    if current is None:
        return code or 1
    problems = memory_regressions(json.loads(baseline.read_text()), json.loads(current.read_text()))
    for line in problems:
        print(f"MEMORY REGRESSION {line}")
    print(f"compared {current.name} with {baseline.name}: time {TIME_THRESHOLD}, memory +{MEMORY_TOLERANCE:.0%}")
    return 1 if problems or code else 0


if __name__ == "__main__":
    sys.exit(main())
