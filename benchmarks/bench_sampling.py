"""Sampling benchmark: FUSION's vectorised model against the prototype's per-member loop form.

Same data, same settings (the prototype's: draws 500, tune 1000, 4 chains, target_accept
0.95) on a synthetic 20,000-point, 27-member case, in one process. Reported per variant:
model build, compile, sampling and end-to-end wall time, min bulk ESS over the four noise
parameters and bulk ESS per second; then ratios against the loop form.

    python benchmarks/bench_sampling.py            # full size (the loop form takes minutes)
    python benchmarks/bench_sampling.py --quick    # small case, seconds
    python benchmarks/bench_sampling.py --json out.json

"End to end" is everything from the prepared arrays to a trace with per-member `w`:
building the graph, compiling it (inside `pm.sample` for PyMC; `compile_pymc_model` for
nutpie's PyMC route; loading the cached Numba kernel for FUSION's nutpie route), sampling
and, for FUSION, computing `w`/`logL_*` from the draws. Library imports happen before any
timing. "Sampling" is
the sampler's own loop: PyMC's `sampling_time` attribute (tuning plus draws, without
compilation and initialisation), and nutpie's `sample` call.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import nutpie  # noqa: F401 - imported up front: library imports are not part of any variant's time
import pymc  # noqa: F401

from fusion.config import Config
from fusion.data.prepared import THICK, VEL, Prepared, positional_stream
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS
from fusion.inference.pymc_model import build_loop_model, build_model
from fusion.inference.posterior import add_member_deterministics
from fusion.inference.sampling import sample, sample_model


def synthetic_prepared(n: int, m: int, seed: int = 0) -> Prepared:
    """Arrays shaped like the prototype's after a 20,000-point subsample: a shuffled mix of
    thickness (~36 %) and velocity points under the positional split, continuous σ_obs and
    speed (so no two points share a group and nothing is saved by merging)."""
    rng = np.random.default_rng(seed)
    true = np.where(rng.random(n) < 0.36, THICK, VEL).astype(np.int8)
    speed = np.where(true == VEL, rng.gamma(1.5, 200.0, n), 0.0)
    sigma = np.where(true == THICK, np.clip(rng.lognormal(np.log(0.6), 0.5, n), 0.1, 49.0),
                     np.clip(rng.lognormal(np.log(2.5), 0.4, n), 0.5, 9.9)).astype(np.float32)
    truth = np.where(true == THICK, rng.normal(-0.3, 1.0, n), rng.normal(2.0, 8.0, n))
    y = (truth + sigma * rng.standard_normal(n)).astype(np.float32)
    scale = np.where(true == THICK, 0.3, 3.0)
    bias = rng.uniform(0.2, 2.0, m)
    F = truth[None, :] + bias[:, None] * scale[None, :] * rng.standard_normal((m, n))
    F[m // 2] = truth + 0.05 * scale * rng.standard_normal(n)  # one member close to the truth
    n_dhdt = int(np.count_nonzero(true == THICK))
    return Prepared(
        y_obs=y, sigma_obs=sigma, F=F, speed=speed.astype(np.float64), n_dhdt=n_dhdt, n_vel=n - n_dhdt,
        member_ids=tuple(f"run{i + 1}" for i in range(m)), stream=positional_stream(n, n_dhdt),
        compat="prototype",
    )


def _config(sampler: str, draws: int, tune: int, chains: int, cores: int | None, seed: int) -> Config:
    cfg = Config.model_validate(
        {"observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}}, "ensemble": {"dir": "."}}
    )
    return cfg.with_updates(
        compat="prototype",
        inference={"draws": draws, "tune": tune, "chains": chains, "cores": cores, "seed": seed,
                   "target_accept": 0.95, "sampler": sampler},
    )


def _figures(trace, build_s: float, end_to_end_s: float) -> dict[str, Any]:
    attrs = trace["posterior"].attrs
    sampler = attrs["fusion_sampler"]
    compile_s = float(attrs["fusion_compile_s"])
    # PyMC's own sampling_time leaves out compilation, initialisation and process start-up
    sampling_s = float(attrs["sampling_time"] if sampler == "pymc" else attrs["fusion_sampling_wall_s"])
    ess = azs.ess(trace, var_names=list(PARAMS), method="bulk").to_dataset()
    ess_min = float(min(float(ess[p].values) for p in PARAMS))
    divergences = int(trace["sample_stats"]["diverging"].values.sum())
    return {
        "sampler": sampler,
        "density": attrs.get("fusion_density"),
        "build_s": build_s,
        "compile_s": compile_s if sampler == "nutpie" else None,
        "sampling_s": sampling_s,
        "end_to_end_s": end_to_end_s,
        "ess_bulk_min": ess_min,
        "ess_per_s_end_to_end": ess_min / end_to_end_s,
        "ess_per_s_sampling": ess_min / sampling_s,
        "divergences": divergences,
        "posterior_means": {p: float(trace["posterior"][p].mean()) for p in PARAMS},
    }


def run_loop(prepared: Prepared, cfg: Config, progressbar: bool) -> dict[str, Any]:
    start = time.perf_counter()
    model = build_loop_model(prepared, NoiseSettings.from_config(cfg))
    build_s = time.perf_counter() - start
    trace = sample_model(model, cfg.inference, progressbar=progressbar)
    return _figures(trace, build_s, time.perf_counter() - start)


def run_fusion(prepared: Prepared, cfg: Config, progressbar: bool) -> dict[str, Any]:
    """`fusion.sample` as `fusion run` calls it (nutpie: the fused C-callback density)."""
    start = time.perf_counter()
    trace = sample(cfg, prepared, progressbar=progressbar)
    return _figures(trace, float("nan"), time.perf_counter() - start)


def run_vectorised_graph(prepared: Prepared, cfg: Config, progressbar: bool) -> dict[str, Any]:
    """The vectorised PyMC model through nutpie's own PyMC route (Numba-compiled PyTensor graph)."""
    start = time.perf_counter()
    settings = NoiseSettings.from_config(cfg)
    model = build_model(prepared, settings)
    build_s = time.perf_counter() - start
    trace = sample_model(model, cfg.inference, progressbar=progressbar)
    trace = add_member_deterministics(trace, prepared, settings)
    return _figures(trace, build_s, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4000 points, 10 members, 200/200, 2 chains")
    parser.add_argument("--points", type=int, default=None)
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--cores", type=int, default=None, help="parallel chains (default: all usable CPUs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-loop", action="store_true", help="time only FUSION's samplers")
    parser.add_argument("--progress", action="store_true", help="show the samplers' progress bars")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    if args.quick:
        n, m, draws, tune, chains = 4000, 10, 200, 200, 2
    else:
        n, m, draws, tune, chains = 20000, 27, 500, 1000, 4
    n, m = args.points or n, args.members or m
    prepared = synthetic_prepared(n, m, seed=args.seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average before start: {load:.2f}")
    print(f"case: {n} points ({prepared.n_dhdt} 'thickness' by position), {m} members; draws {draws}, "
          f"tune {tune}, {chains} chains, target_accept 0.95, cores {args.cores or 'auto'}; "
          f"{os.cpu_count()} CPUs, {platform.platform()}", flush=True)

    results: dict[str, dict[str, Any]] = {}
    variants = [
        ("fusion_nutpie", "nutpie", run_fusion),
        ("fusion_pymc", "pymc", run_fusion),
        ("graph_nutpie", "nutpie", run_vectorised_graph),
    ]
    if not args.skip_loop:
        variants.append(("loop_pymc", "pymc", run_loop))
    for name, sampler, fn in variants:
        cfg = _config(sampler, draws, tune, chains, args.cores, args.seed)
        print(f"-- {name} ...", flush=True)
        results[name] = fn(prepared, cfg, args.progress)
        r = results[name]
        print(f"   end to end {r['end_to_end_s']:.2f} s, sampling {r['sampling_s']:.2f} s, "
              f"min bulk ESS {r['ess_bulk_min']:.0f}, divergences {r['divergences']}", flush=True)

    cols = ("end-to-end s", "sampling s", "compile s", "min ESS", "ESS/s e2e", "ESS/s samp")
    print("\n" + f"{'variant':<15}" + "".join(f"{c:>13}" for c in cols))
    for name, r in results.items():
        comp = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
        cells = (f"{r['end_to_end_s']:.2f}", f"{r['sampling_s']:.2f}", comp, f"{r['ess_bulk_min']:.0f}",
                 f"{r['ess_per_s_end_to_end']:.1f}", f"{r['ess_per_s_sampling']:.1f}")
        print(f"{name:<15}" + "".join(f"{c:>13}" for c in cells))
    ratios: dict[str, dict[str, float]] = {}
    if "loop_pymc" in results:
        base = results["loop_pymc"]
        print("\nratios against loop_pymc (higher is better)")
        print(f"{'variant':<15}{'wall e2e':>10}{'wall samp':>11}{'ESS/s e2e':>11}{'ESS/s samp':>12}")
        for name, r in results.items():
            if name == "loop_pymc":
                continue
            ratios[name] = {
                "wall_end_to_end": base["end_to_end_s"] / r["end_to_end_s"],
                "wall_sampling": base["sampling_s"] / r["sampling_s"],
                "ess_per_s_end_to_end": r["ess_per_s_end_to_end"] / base["ess_per_s_end_to_end"],
                "ess_per_s_sampling": r["ess_per_s_sampling"] / base["ess_per_s_sampling"],
            }
            q = ratios[name]
            print(f"{name:<15}{q['wall_end_to_end']:>9.1f}x{q['wall_sampling']:>10.1f}x"
                  f"{q['ess_per_s_end_to_end']:>10.1f}x{q['ess_per_s_sampling']:>11.1f}x")
    if args.json is not None:
        from fusion.io import write_json

        write_json(args.json, {
            "load_average_at_start": load,
            "case": {"points": n, "members": m, "draws": draws, "tune": tune, "chains": chains,
                     "target_accept": 0.95, "cores": args.cores, "cpus": os.cpu_count(),
                     "platform": platform.platform(), "python": sys.version.split()[0]},
            "results": results, "ratios": ratios,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
