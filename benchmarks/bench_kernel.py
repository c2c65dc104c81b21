"""Per-call time of the fused kernel's `_stream_terms` on 20,000 single points, optionally against
another checkout of FUSION (e.g. main before a kernel change), alternating runs on a shared machine.

    python benchmarks/bench_kernel.py --standalone                        # this checkout
    python benchmarks/bench_kernel.py --standalone --against /work/main   # both, alternating; prints the ratio

Each measurement runs in its own process with the checkout first on `sys.path` (its own Numba
cache), times `--calls` calls with `time.process_time()` (CPU time, less sensitive to other load)
and reports µs per call; the figure per checkout is the median over `--rounds` rounds.

`python benchmarks/bench_kernel.py` prints the suite's figure for this (`test_kernel` in
benchmarks/test_bench_suite.py, as benchmarks/tables.py renders it); `--standalone` runs the
script's own comparison described here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from harness.paths import repo_root

REPO = repo_root()

_PROBE = """
import sys, time
import numpy as np
try:
    import fusion.inference.fused_kernel as model
except ImportError:  # a checkout from before the model was split into modules
    import fusion.inference.model as model
assert model.__file__.startswith(sys.argv[1]), model.__file__
rng = np.random.default_rng(0)
n, calls = 20000, int(sys.argv[2])
a, speed, s2 = rng.uniform(0.5, 3, n), rng.uniform(0, 2, n), rng.uniform(0, 50, n)
count = np.ones(n)
model._stream_terms(0.3, 0.1, a, speed, s2, count, n, 27.0)
t = time.process_time()
for _ in range(calls):
    model._stream_terms(0.3, 0.1, a, speed, s2, count, n, 27.0)
print((time.process_time() - t) / calls * 1e6)
"""


def _us_per_call(repo: Path, calls: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(repo), str(calls)], cwd=repo, env=env,
        capture_output=True, text=True, check=True,
    )
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another FUSION checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    repos = {"this": REPO} | ({"against": args.against.resolve()} if args.against else {})
    times: dict[str, list[float]] = {name: [] for name in repos}
    for _ in range(args.rounds):
        for name, repo in repos.items():
            times[name].append(_us_per_call(repo, args.calls))
    for name, repo in repos.items():
        values = ", ".join(f"{v:.1f}" for v in times[name])
        print(f"{name:8s} {statistics.median(times[name]):6.1f} µs/call (rounds: {values})  {repo}")
    if args.against:
        ratio = statistics.median(times["against"]) / statistics.median(times["this"])
        print(f"speed-up of this checkout over --against: {ratio:.2f}×")


if __name__ == "__main__":
    # the suite's figure (benchmarks/test_bench_suite.py::test_kernel) unless --standalone asks for this
    # script's own, longer comparison
    if "--standalone" not in sys.argv:
        from compare import wrapper_main

        sys.exit(wrapper_main("test_kernel", __doc__.splitlines()[0]))
    sys.argv.remove("--standalone")
    main()
