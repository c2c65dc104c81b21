"""Peak memory and wall time of `fusion prepare` at full size, against a materialising baseline.

The prototype builds every member's full rate fields and the members × points matrix before
subsampling (6.2 GB peak RSS, 14 s here on 761 × 761, 7 years, 27 members). This script
generates such a case (not committed), then runs, each in a fresh process:
  * `fusion prepare` (streams members twice: mask, then gather the chosen points), and
  * a baseline in the prototype's shape (all members' rates in memory, then mask/subsample),
and prints peak RSS, wall time, their ratios and whether the arrays are bit-identical.

usage: python benchmarks/bench_prepare.py --standalone [--ny 761 --nx 761 --members 27] [--keep DIR]

`python benchmarks/bench_prepare.py` prints the suite's figure for this (`test_prepare_full_size` in
benchmarks/test_bench_suite.py, as benchmarks/tables.py renders it); `--standalone` runs the
script's own comparison described here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_BASELINE = r"""
import sys, numpy as np
from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data import prepare as P
cfg = load_config(sys.argv[1]); data = load_data(cfg)
intervals = P.model_intervals(data.members[0].times)
blocks, y, s, speed = P._observed_blocks(cfg, data, intervals)
rates = np.empty((len(data.members),) + y.shape, np.float32)
for k, m in enumerate(data.members):
    for b, r in P._member_rates(m, intervals, blocks, cfg):
        rates[k, b] = r
is_vel = np.array([b.stream == 1 for b in blocks])
thr = np.where(is_vel, cfg.metric.vel_unc_threshold, cfg.metric.thick_unc_threshold)[:, None]
with np.errstate(invalid="ignore"):
    mask = np.isfinite(y) & np.isfinite(s) & (s < thr) & np.all(np.isfinite(rates), axis=0)
mask[is_vel] &= np.isfinite(speed)[None, :]
F_full = rates[:, mask].astype(np.float64)           # members x all valid points, as the prototype
y_full, s_full = y[mask], s[mask]
sp_full = np.where(is_vel[:, None], speed[None, :], 0.0)[mask].astype(np.float64)
n = y_full.size; size = cfg.inference.subsample.size
idx = np.random.default_rng(seed=cfg.inference.subsample.seed).choice(n, size, replace=False) if n > size else np.arange(n)
np.savez(sys.argv[2], y_obs=y_full[idx], sigma_obs=s_full[idx], F=F_full[:, idx], speed=sp_full[idx])
"""


def _measure(code: str, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    wrapper = (
        "import resource, subprocess, sys, time, json;"
        "t=time.perf_counter(); r=subprocess.run(sys.argv[1:]); w=time.perf_counter()-t;"
        "print(json.dumps({'rc': r.returncode, 'wall': w, 'rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-c", code, *args], capture_output=True, text=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["rc"] not in ok:
        sys.exit(f"failed:\n{proc.stderr}")
    return out["wall"], out["rss_kb"] / 1024**2


def full_size_arguments(description: str) -> argparse.Namespace:
    """The full-size case's dimensions (761 × 761, 2014–2020, 27 members) and an optional folder to keep."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--ny", type=int, default=761)
    ap.add_argument("--nx", type=int, default=761)
    ap.add_argument("--members", type=int, default=27)
    ap.add_argument("--years", type=int, nargs=2, default=(2014, 2020))
    ap.add_argument("--keep", type=Path, default=None, help="generate into (or reuse) this folder")
    return ap.parse_args()


def main() -> None:
    args = full_size_arguments(__doc__.splitlines()[0])

    from fusion.data.synthetic import SyntheticSpec, generate

    root = args.keep or Path(tempfile.mkdtemp(prefix="fusion-bench-"))
    config = root / "config.yaml"
    if not config.exists():
        t = time.perf_counter()
        spec = SyntheticSpec(ny=args.ny, nx=args.nx, members=args.members, years=tuple(args.years), with_projection=False)
        generate(root, spec)
        config.write_text(
            "compat: prototype\nobservations: {thickness: {dir: obs/elev}, velocity: {dir: obs/vel}}\n"
            "ensemble: {dir: ensemble}\n"
        )
        print(f"generated {args.ny}x{args.nx}, {args.members} members in {time.perf_counter() - t:.1f} s: {root}")

    ours = root / "ours.npz"
    base = root / "baseline.npz"
    cli = "import sys; from fusion.cli import main; sys.exit(main(sys.argv[1:]))"
    w_ours, rss_ours = _measure(cli, "prepare", str(config), "--out", str(ours))
    w_base, rss_base = _measure(_BASELINE, str(config), str(base))
    a, b = np.load(ours), np.load(base)
    same = all(np.ascontiguousarray(a[k]).tobytes() == np.ascontiguousarray(b[k]).tobytes() for k in ("y_obs", "sigma_obs", "F", "speed"))
    print(f"fusion prepare : {w_ours:6.1f} s  peak RSS {rss_ours:5.2f} GB")
    print(f"baseline       : {w_base:6.1f} s  peak RSS {rss_base:5.2f} GB   (prototype shape: all members' rates in memory)")
    print(f"ratios         : time {w_base / w_ours:.2f}x faster, memory {rss_base / rss_ours:.1f}x smaller; bit-identical: {same}")


if __name__ == "__main__":
    # the suite's figure (benchmarks/test_bench_suite.py::test_prepare_full_size) unless --standalone asks for this
    # script's own, longer comparison
    if "--standalone" not in sys.argv:
        from compare import wrapper_main

        sys.exit(wrapper_main("test_prepare_full_size", __doc__.splitlines()[0]))
    sys.argv.remove("--standalone")
    main()
