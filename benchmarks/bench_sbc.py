"""SBC throughput: simuk against FUSION's harness on the same model, data size and draws.

Both run prior SBC of the generative noise model (DESIGN.md) on 5 members × 200 points
(100 thickness, 100 velocity; the harness's design), 250 draws + 250 tuning on 2 chains:

- simuk 0.3: `simuk.SBC(model).run_simulations()`, which recompiles and runs `pm.sample`
  for every replicate, one after another;
- ours: `harness.checks.sbc.run_sbc`, FUSION's own density (C callbacks built once per worker
  process), data swapped per replicate, replicates in parallel on local processes (or in this
  process, `--workers 0`).

Fits per minute are end to end: from the call to the last rank, compilation and worker
start-up included (ours also prints its rate after start-up). Prints both, and the ratio.
The machine is shared, so run it on a quiet one; simuk's first fit includes PyTensor's C
compilation of the model, later ones hit its cache.

    python benchmarks/bench_sbc.py --standalone                      # 8 simuk fits, 200 of ours
    python benchmarks/bench_sbc.py --standalone --simuk 10 --ours 1000 --json out.json

`python benchmarks/bench_sbc.py` prints the suite's figure for this (`test_sbc_fits_per_minute` in
benchmarks/test_bench_suite.py, as benchmarks/tables.py renders it); `--standalone` runs the
script's own comparison described here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np


def simuk_model(n_thick: int = 100, n_vel: int = 100, n_members: int = 5) -> Any:
    """The generative form as a PyMC model with an observed residual matrix, as simuk needs."""
    import pymc as pm
    import pytensor.tensor as pt

    from harness.sim import PARAMS, PRIOR_SIGMA, sbc_design

    d = sbc_design(n_thick, n_vel, n_members)
    with pm.Model() as model:
        theta = {p: pm.HalfNormal(p, sigma=PRIOR_SIGMA[p]) for p in PARAMS}
        is_vel = d.is_vel
        sb2 = theta["sigma_base_thick"] ** 2 * (1 - is_vel) + theta["sigma_base_vel"] ** 2 * is_vel
        beta = theta["beta_thick"] * (1 - is_vel) + theta["beta_vel"] * is_vel
        sd = pt.sqrt(d.sigma_obs2 + sb2 * (1 + beta * d.speed) + d.extra_var)
        pm.Normal("r", mu=0.0, sigma=sd, observed=np.zeros((d.n_members, d.n_points)))
    return model


def bench_simuk(n: int, draws: int, tune: int, chains: int, seed: int) -> dict[str, Any]:
    import simuk

    model = simuk_model()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pymc").setLevel(logging.ERROR)
        sbc = simuk.SBC(
            model,
            num_simulations=n,
            seed=seed,
            progress_bar=False,
            sample_kwargs={"draws": draws, "tune": tune, "chains": chains},
        )
        sbc.run_simulations()
    wall = time.perf_counter() - start
    done = int(sbc._simulations_complete)  # simuk logs and stops on an error; count what finished
    if done != n:
        raise RuntimeError(f"simuk finished {done} of {n} simulations")
    return {
        "tool": "simuk",
        "version": _version("simuk"),
        "fits": done,
        "wall_s": wall,
        "fits_per_min": 60 * done / wall,
    }


def bench_ours(n: int, draws: int, tune: int, chains: int, workers: int | None, seed: int) -> dict[str, Any]:
    from harness.checks.sbc import SBCSpec, run_sbc

    spec = SBCSpec(n_replicates=n, draws=draws, tune=tune, chains=chains, seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench-sbc-") as tmp:
        start = time.perf_counter()
        out = run_sbc(spec, tmp, workers=workers, progress=lambda s: None, plots=False)
        wall = time.perf_counter() - start
    f = out.figures
    return {
        "tool": "fusion harness.checks.sbc",
        "fits": f["fitted_replicates"],
        "wall_s": wall,
        "fits_per_min": 60 * f["fitted_replicates"] / wall,
        "backend": f["backend"],
        "startup_s": f["startup_s"],
        "steady_fits_per_min": f["steady_fits_per_min"],
        "compilations": f["compilations"],
        "usable_fits": f["usable_fits"],
        "passed": out.passed,
    }


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simuk", type=int, default=8, help="simuk replicates (each takes seconds)")
    ap.add_argument("--ours", type=int, default=200, help="our replicates")
    ap.add_argument("--draws", type=int, default=250)
    ap.add_argument("--tune", type=int, default=250)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="local processes for ours (0: this process)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    print(
        f"machine: {os.cpu_count()} cores, {platform.platform()}; model: 5 members x 200 points; "
        f"{args.draws} draws + {args.tune} tune, {args.chains} chains",
        flush=True,
    )
    ours = bench_ours(args.ours, args.draws, args.tune, args.chains, args.workers, args.seed)
    print(
        f"ours : {ours['fits']:5d} fits in {ours['wall_s']:7.1f} s = {ours['fits_per_min']:8.1f} fits/min "
        f"({ours['backend']}, {ours['compilations']} compilations; start-up {ours['startup_s']:.1f} s, "
        f"then {ours['steady_fits_per_min']:.0f} fits/min; {ours['usable_fits']} fits passed their own gate)",
        flush=True,
    )
    simuk_res = bench_simuk(args.simuk, args.draws, args.tune, args.chains, args.seed)
    print(
        f"simuk: {simuk_res['fits']:5d} fits in {simuk_res['wall_s']:7.1f} s = "
        f"{simuk_res['fits_per_min']:8.1f} fits/min",
        flush=True,
    )
    ratio = ours["fits_per_min"] / simuk_res["fits_per_min"]
    print(f"ratio: {ratio:.0f}x simuk's fits per minute (goal: >= 50x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ours": ours, "simuk": simuk_res, "ratio": ratio, "args": vars(args)}, fh, indent=2)
    return 0


if __name__ == "__main__":
    # the suite's figure (benchmarks/test_bench_suite.py::test_sbc_fits_per_minute) unless --standalone asks for this
    # script's own, longer comparison
    if "--standalone" not in sys.argv:
        from compare import wrapper_main

        sys.exit(wrapper_main("test_sbc_fits_per_minute", __doc__.splitlines()[0]))
    sys.argv.remove("--standalone")
    sys.exit(main())
