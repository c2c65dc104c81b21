"""Coverage and recovery (DESIGN.md, harness check 5), in two settings and three regimes.

(a) Data drawn from the model's own generative form: θ from the prior, residuals
    r_mi ~ N(0, σ_tot,i(θ)). A fraction of the points is held out; the posterior predictive
    of each held-out residual must cover it at the nominal rate (1σ: 0.6827, 2σ: 0.9545).
    This validates code and sampler, so it is gated (dense_clean calibration error ≤ 0.05).
(b) Data generated physically (`fusion.data.synthetic`): an ensemble whose hidden true member
    made the observations. The production (tempered) model weights the members; the true
    member must rank first in ≥ 95% of dense_clean replicates (gated). Parameter recovery and
    the coverage of the weighted-mixture predictive are findings about the science, reported
    in numbers, not gated: the tempered weights are expected to over-cover.

Regimes thin the points (`keep`) and add noise (`extra_noise`, m/yr). In (a) the added noise
is part of the stated σ_obs (the data still come from the model); in (b) it is not stated,
so the true model-error scale σ_base becomes the added noise (β = 0) and recovery measures
whether the model finds it.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.noise import NoiseSettings
from fusion.io import write_json
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.gates import CoverageGate
from harness.report.plots import plot_coverage
from harness.sim import (
    prior_sd,
    prior_variance,
    SAMPLER,
    PARAMS,
    Design,
    Fit,
    convergence,
    design_from_prepared,
    draw_prior,
    fit,
    replicate_rng,
    run_replicates,
    sbc_design,
    sigma_tot2,
    worker_info,
)
from harness.verdict import Decision, Interval, Plan, bootstrap, sequential, worst

__all__ = [
    "REGIMES",
    "THRESHOLDS",
    "CoverageSpec",
    "Regime",
    "calibration_decision",
    "calibration_interval",
    "coverage_curve",
    "predictive_pit",
    "run_check",
    "run_coverage",
]

NOMINAL_1, NOMINAL_2 = 0.6827, 0.9545
#: Coverage thresholds in σ units; nominal coverage of each is 2Φ(k) − 1.
THRESHOLDS: tuple[float, ...] = tuple(float(k) for k in np.round(np.arange(0.5, 2.51, 0.1), 2))
Setting = Literal["generative", "physical"]


@dataclass(frozen=True)
class Regime:
    """An observation regime: the fraction of points kept and added noise (m/yr)."""

    name: str
    keep: float
    extra_noise: float


REGIMES: tuple[Regime, ...] = (
    Regime("dense_clean", 1.0, 0.0),
    Regime("sparse_clean", 0.2, 0.0),
    Regime("sparse_noisy", 0.2, 2.0),
)


@dataclass(frozen=True)
class CoverageSpec:
    """What one replicate computes (hash keys its artifacts); every regime is one fit per replicate."""

    setting: Setting = "generative"
    n_replicates: int = 40
    regimes: tuple[Regime, ...] = REGIMES
    holdout: float = 0.2
    draws: int = 500
    tune: int = 500
    chains: int = 2
    predictive_draws: int = 200
    # (a): the generative design
    n_thick: int = 200
    n_vel: int = 200
    n_members: int = 5
    design_seed: int = 20260501
    # (b): the physical ensemble
    grid: tuple[int, int] = (30, 40)
    physical_members: int = 5
    physical_points: int = 3000
    seed: int = 5150


def nominal(k: float | np.ndarray) -> np.ndarray:
    """Probability a Gaussian puts within ±kσ: 2Φ(k) − 1."""
    from scipy.special import erf

    return erf(np.asarray(k, dtype=float) / math.sqrt(2.0))


def predictive_pit(
    values: np.ndarray, centers: np.ndarray, var: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """PIT of held-out values under the posterior predictive, averaged over D posterior draws.

    `values` (H,) or (M, H), `centers` (M, H) the Gaussian means, `var` (D, H) the predictive
    variance per draw. With `weights` (D, M) the predictive is the members' mixture and the PIT
    is per point (H,); without, each (member, point) value is its own observation, (M, H).
    """
    from scipy.special import ndtr

    z = (np.asarray(values) - centers)[None] / np.sqrt(var)[:, None, :]  # (D, M, H)
    cdf = ndtr(z)
    if weights is None:
        return cdf.mean(axis=0)
    return np.einsum("dm,dmh->h", weights, cdf) / weights.shape[0]


def coverage_curve(pit: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """Counts covered by the central interval of nominal mass 2Φ(k) − 1, for each k."""
    dist = np.abs(2.0 * np.ravel(pit) - 1.0)
    return np.array([int(np.sum(dist <= p)) for p in nominal(np.asarray(thresholds))])


def _thin(draws: np.ndarray, n: int) -> np.ndarray:
    flat = draws.reshape(-1, draws.shape[-1])
    return flat[np.round(np.linspace(0, flat.shape[0] - 1, min(n, flat.shape[0]))).astype(int)]


def _split(rng: np.random.Generator, n: int, regime: Regime, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out points for a regime (both non-empty)."""
    kept = rng.permutation(n)[: max(2, round(regime.keep * n))]
    n_held = max(1, round(holdout * kept.size))
    return np.sort(kept[n_held:]), np.sort(kept[:n_held])


def _recovery(draws: np.ndarray, truth: np.ndarray) -> dict[str, dict[str, float]]:
    flat = draws.reshape(-1, draws.shape[-1])
    mean, sd = flat.mean(axis=0), flat.std(axis=0, ddof=1)
    return {
        p: {
            "truth": float(truth[j]),
            "mean": float(mean[j]),
            "sd": float(sd[j]),
            "abs_error": float(abs(mean[j] - truth[j])),
            "z": float((mean[j] - truth[j]) / sd[j]) if sd[j] > 0 else math.nan,
        }
        for j, p in enumerate(PARAMS)
    }


# --------------------------------------------------------------------------------------------
# (a) the generative form
# --------------------------------------------------------------------------------------------


def _fit(spec: CoverageSpec, prepared: Prepared, settings: NoiseSettings, rng: np.random.Generator, cores: int) -> Fit:
    """One fit at the spec's draws, seeded from the replicate's generator."""
    return fit(
        prepared, settings, draws=spec.draws, tune=spec.tune, chains=spec.chains, cores=cores,
        seed=int(rng.integers(2**31)),
    )


def _generative_replicate(spec: CoverageSpec, index: int, cores: int) -> dict[str, Any]:
    base = sbc_design(spec.n_thick, spec.n_vel, spec.n_members, spec.design_seed)
    rng = replicate_rng(spec.seed, index, 1)
    theta = draw_prior(rng)
    z = rng.standard_normal((base.n_members, base.n_points))
    out: dict[str, Any] = {"index": index, "theta": dict(zip(PARAMS, map(float, theta))), "regimes": {}}
    for regime in spec.regimes:
        stated = np.sqrt(base.sigma_obs2 + regime.extra_noise**2).astype(np.float32)  # noise stated in σ_obs
        design = Design(stated, base.speed, base.stream, base.n_members, base.inflation)
        resid = z * np.sqrt(sigma_tot2(theta, design))
        train, held = _split(replicate_rng(spec.seed, index, 2), base.n_points, regime, spec.holdout)
        result = _fit(  # held-out points are left out of the fitted data
            spec, design.prepared(resid, train), NoiseSettings(velocity_inflation=design.inflation, tempered=False),
            rng, cores,
        )
        th = _thin(result.draws, spec.predictive_draws)
        var = sigma_tot2(th, design)[:, held]
        pit = predictive_pit(resid[:, held], np.zeros((base.n_members, held.size)), var)
        out["regimes"][regime.name] = {
            "n_train": int(train.size),
            "n_held": int(held.size) * base.n_members,
            "covered": coverage_curve(pit).tolist(),
            "recovery": _recovery(result.draws, theta),
            "convergence": _conv(result),
        }
    return out


def _conv(result: Any) -> dict[str, Any]:
    c = convergence(np.moveaxis(result.draws, -1, 0), result)
    return {k: c[k] for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "e_bfmi_min")}


# --------------------------------------------------------------------------------------------
# (b) the physical ensemble
# --------------------------------------------------------------------------------------------

_PHYSICAL_CONFIG = """\
compat: fixed
observations:
  thickness: {dir: obs/elev}
  velocity: {dir: obs/vel}
ensemble: {dir: ensemble}
"""


def physical_dataset(seed: int, truth_member: int, members: int, grid: tuple[int, int]) -> Prepared:
    """Write a synthetic ensemble (clean of awkward cases) and run FUSION's own load and prepare."""
    from fusion import load_config, load_data, prepare
    from fusion.data.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(
        ny=grid[0],
        nx=grid[1],
        members=members,
        seed=seed,
        truth_member=truth_member,
        fill_member=None,
        member_nans=False,
        with_projection=False,
    )
    with tempfile.TemporaryDirectory(prefix="fusion-cov-") as tmp:
        generate(tmp, spec)
        cfg_path = Path(tmp) / "config.yaml"
        cfg_path.write_text(_PHYSICAL_CONFIG)
        cfg = load_config(cfg_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degraded-input warnings are the loaders' business, not ours
            return prepare(cfg, load_data(cfg))


def _subset(p: Prepared, idx: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> Prepared:
    stream = p.stream[idx]
    return Prepared(
        y_obs=y[idx].astype(np.float32),
        sigma_obs=sigma[idx].astype(np.float32),
        F=p.F[:, idx],
        speed=p.speed[idx],
        n_dhdt=int((stream == THICK).sum()),
        n_vel=int((stream == VEL).sum()),
        member_ids=p.member_ids,
        stream=stream,
        compat=p.compat,
    )


def _physical_replicate(spec: CoverageSpec, index: int, cores: int) -> dict[str, Any]:
    from fusion.inference.posterior import member_logliks

    rng = replicate_rng(spec.seed, index, 3)
    truth_member = int(rng.integers(spec.physical_members))
    full = physical_dataset(int(rng.integers(2**30)), truth_member, spec.physical_members, spec.grid)
    pick = rng.permutation(full.n_points)[: min(spec.physical_points, full.n_points)]
    base = _subset(full, pick, full.y_obs.astype(np.float64), full.sigma_obs.astype(np.float64))
    noise = rng.standard_normal(base.n_points)
    out: dict[str, Any] = {"index": index, "truth_member": base.member_ids[truth_member], "regimes": {}}
    for regime in spec.regimes:
        y = base.y_obs.astype(np.float64) + regime.extra_noise * noise  # unstated: σ_obs unchanged
        train, held = _split(replicate_rng(spec.seed, index, 4), base.n_points, regime, spec.holdout)
        tr = _subset(base, train, y, base.sigma_obs)
        result = _fit(spec, tr, NoiseSettings(), rng, cores)  # the production (tempered) model
        th = _thin(result.draws, spec.predictive_draws)
        w = member_logliks(tr, dict(zip(PARAMS, th.T)))["w"]  # (D, M)
        mean_w = w.mean(axis=0)
        order = np.argsort(-mean_w, kind="stable")
        ho = _subset(base, held, y, base.sigma_obs)
        var = sigma_tot2(th, design_from_prepared(ho))
        pit = predictive_pit(ho.y_obs.astype(np.float64), ho.F, var, weights=w)
        truth = np.array([regime.extra_noise, regime.extra_noise, 0.0, 0.0])
        out["regimes"][regime.name] = {
            "n_train": int(train.size),
            "n_held": int(held.size),
            "covered": coverage_curve(pit).tolist(),
            "truth_rank": int(np.flatnonzero(order == truth_member)[0]) + 1,
            "truth_weight": float(mean_w[truth_member]),
            "top_weight": float(mean_w[order[0]]),
            "weights": dict(zip(base.member_ids, map(float, mean_w))),
            "recovery": _recovery(result.draws, truth),
            "convergence": _conv(result),
        }
    return out


def coverage_chunk(spec: CoverageSpec, indices: list[int], cores: int) -> dict[str, Any]:
    """Worker entry point: one dataset per replicate, one fit per regime."""
    task = _generative_replicate if spec.setting == "generative" else _physical_replicate
    return {"results": [task(spec, i, cores) for i in indices], **worker_info()}


# --------------------------------------------------------------------------------------------
# Aggregation, gate and plots
# --------------------------------------------------------------------------------------------


def summarize_regime(records: list[dict[str, Any]], regime: str, setting: Setting) -> dict[str, Any]:
    """Pooled coverage curve, calibration error, recovery and (b) the true member's rank."""
    rows = [r["regimes"][regime] for r in records]
    covered = np.sum([r["covered"] for r in rows], axis=0)
    total = sum(r["n_held"] for r in rows)
    curve = covered / max(total, 1)
    per_rep = np.array([np.asarray(r["covered"]) / r["n_held"] for r in rows])
    i1, i2 = THRESHOLDS.index(1.0), THRESHOLDS.index(2.0)
    errors = np.abs(per_rep[:, i1] - NOMINAL_1) + np.abs(per_rep[:, i2] - NOMINAL_2)
    recovery = {
        p: {
            "mean_abs_error": float(np.mean([r["recovery"][p]["abs_error"] for r in rows])),
            "mean_abs_error_over_prior_sd": float(
                np.mean([r["recovery"][p]["abs_error"] for r in rows])
                / prior_sd(p)
            ),
            "contraction": float(
                1
                - np.mean([r["recovery"][p]["sd"] ** 2 for r in rows])
                / prior_variance(p)
            ),
        }
        for p in PARAMS
    }
    # β_thick multiplies speed 0 (never identified); in (b) the true β are 0 and only σ_base is meaningful
    identified = [p for p in PARAMS if p != "beta_thick"] if setting == "generative" else list(PARAMS[:2])
    out: dict[str, Any] = {
        "replicates": len(rows),
        "held_out_values": int(total),
        "coverage_1sigma": float(curve[i1]),
        "coverage_2sigma": float(curve[i2]),
        "calibration_error": float(abs(curve[i1] - NOMINAL_1) + abs(curve[i2] - NOMINAL_2)),
        "curve": dict(zip(map(str, THRESHOLDS), map(float, curve))),
        "worst_replicate": int(records[int(np.argmax(errors))]["index"]),
        "worst_replicate_calibration_error": float(errors.max()),
        "recovery": recovery,
        "recovery_error_identified": float(
            np.mean([recovery[p]["mean_abs_error_over_prior_sd"] for p in identified])
        ),
        "fits_with_divergences": int(sum(r["convergence"]["divergences"] > 0 for r in rows)),
        "r_hat_max_worst": float(np.nanmax([r["convergence"]["r_hat_max"] for r in rows])),
    }
    if setting == "physical":
        ranks = np.array([r["truth_rank"] for r in rows])
        out.update(
            truth_first_fraction=float(np.mean(ranks == 1)),
            truth_rank_counts={str(k): int(np.sum(ranks == k)) for k in sorted(set(ranks.tolist()))},
            truth_weight_mean=float(np.mean([r["truth_weight"] for r in rows])),
        )
    return out


def run_coverage(
    spec: CoverageSpec,
    folder: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) one setting; per-regime summaries plus speed figures."""
    chunk = 4 if spec.setting == "generative" else 2
    records, stats, reused = run_replicates(
        coverage_chunk,
        spec,
        spec.n_replicates,
        folder,
        label=f"coverage[{spec.setting}]",
        scheduler=scheduler,
        workers=workers,
        chunk_size=chunk,
        progress=progress,
    )
    summary = {r.name: summarize_regime(records, r.name, spec.setting) for r in spec.regimes}
    return {
        "setting": spec.setting,
        "regimes": summary,
        "records": records,
        "reused_replicates": reused,
        "wall_s": stats.seconds,
        "fits": stats.fitted * len(spec.regimes),
    }


def suite_specs(suite: str) -> tuple[CoverageSpec, CoverageSpec]:
    """Quick: 40 (a) and 20 (b) replicates per regime; full: 200 and 100."""
    quick = suite == "quick"
    return (
        CoverageSpec(setting="generative", n_replicates=40 if quick else 200),
        CoverageSpec(setting="physical", n_replicates=20 if quick else 100),
    )


def calibration_interval(
    covered_1sigma: np.ndarray, covered_2sigma: np.ndarray, held: np.ndarray, level: float, seed: int = 0
) -> Interval:
    """The pooled calibration error |c₁ − 0.6827| + |c₂ − 0.9545| of replicates' held-out counts, with
    a bootstrap interval over replicates (the points of one replicate share its posterior, so the
    replicate, not the point, is the unit resampled)."""

    def error(c1: np.ndarray, c2: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
        total = np.maximum(np.sum(n, axis=axis), 1.0)
        return np.abs(np.sum(c1, axis=axis) / total - NOMINAL_1) + np.abs(np.sum(c2, axis=axis) / total - NOMINAL_2)

    counts = (np.asarray(covered_1sigma), np.asarray(covered_2sigma), np.asarray(held))
    return bootstrap(counts, error, level, seed, vectorized=True)


def _calibration_counts(records: list[dict[str, Any]], regime: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [r["regimes"][regime] for r in records]
    i1, i2 = THRESHOLDS.index(1.0), THRESHOLDS.index(2.0)
    return (np.array([r["covered"][i1] for r in rows]), np.array([r["covered"][i2] for r in rows]),
            np.array([r["n_held"] for r in rows]))


def calibration_decision(
    spec: CoverageSpec,
    folder: Path,
    plan: Plan,
    bound: float,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[Decision, dict[str, Any]]:
    """(a)'s dense_clean calibration error decided in batches of replicates (`plan`; stored ones reused),
    and the `run_coverage` result of the last look."""
    last: dict[str, Any] = {}

    def measure(n: int, level: float) -> Interval:
        last.update(run_coverage(replace(spec, n_replicates=n), folder, scheduler=scheduler, workers=workers,
                                 progress=progress))
        return calibration_interval(*_calibration_counts(last["records"], "dense_clean"), level, seed=spec.seed)

    decision = sequential(plan, measure, "≤", bound, lambda m: progress(f"coverage ({spec.setting}): {m}"))
    return decision, last


def coverage_gates(
    figures: dict[str, Any], gate: CoverageGate, calibration: Decision | None = None
) -> list[dict[str, Any]]:
    """(a) dense_clean calibration error (with its interval and verdict when `calibration` is given),
    (b) dense_clean share of replicates ranking the true member first."""
    a = figures.get("generative", {}).get("dense_clean", {})
    b = figures.get("physical", {}).get("dense_clean", {})
    name = "generative.dense_clean.calibration_error"
    return gates_of(
        calibration.record(name) if calibration is not None
        else gate_record(name, "≤", gate.max_calibration_error, a.get("calibration_error")),
        gate_record("physical.dense_clean.truth_first", "≥", gate.min_truth_first, b.get("truth_first_fraction")),
    )


def run_check(ctx: CheckContext) -> CheckResult:
    """Coverage (a) gated on dense_clean calibration error; (b) gated on the true member ranking first."""
    gate: CoverageGate = ctx.gates.coverage
    out = Path(ctx.artifact_dir)
    spec_a, spec_b = suite_specs(ctx.suite)
    # (a) in batches of the suite's count while its verdict is undecided, up to the cap (harness.verdict)
    plan = Plan(first=spec_a.n_replicates, batch=spec_a.n_replicates,
                cap=max(gate.max_replicates, spec_a.n_replicates), alpha=gate.mc_alpha)
    calibration, generative = calibration_decision(spec_a, out / "generative", plan, gate.max_calibration_error,
                                                   scheduler=ctx.scheduler, progress=ctx.progress)
    res = {"generative": generative,
           "physical": run_coverage(spec_b, out / "physical", scheduler=ctx.scheduler, progress=ctx.progress)}
    a, b = res["generative"]["regimes"], res["physical"]["regimes"]
    dc = a["dense_clean"]
    err = dc["calibration_error"]
    first = b["dense_clean"]["truth_first_fraction"]
    messages, findings = [], []
    if calibration.verdict != "pass":
        iv = calibration.interval
        messages.append(
            f"coverage (a) dense_clean: calibration error {err:.3f} [{iv.lower:.3f}, {iv.upper:.3f}] "
            + ("> " if calibration.verdict == "fail" else "holds the bound ")
            + f"{gate.max_calibration_error} after {iv.n} replicates "
            f"(1σ {dc['coverage_1sigma']:.3f} vs {NOMINAL_1}, 2σ {dc['coverage_2sigma']:.3f} vs {NOMINAL_2})"
            + (f"; about {calibration.needed} replicates would decide" if calibration.needed else "")
        )
    if not first >= gate.min_truth_first:
        messages.append(
            f"recovery (b) dense_clean: true member first in {first:.0%} of replicates "
            f"(< {gate.min_truth_first:.0%})"
        )
    for name, s in a.items():
        findings.append(
            f"(a) {name}: coverage 1σ {s['coverage_1sigma']:.3f}, 2σ {s['coverage_2sigma']:.3f} "
            f"(error {s['calibration_error']:.3f}); "
            f"recovery error {s['recovery_error_identified']:.2f} prior sd"
        )
    for name, s in b.items():
        rec = s["recovery"]
        over = s["coverage_1sigma"] - NOMINAL_1
        findings.append(
            f"(b) {name}: true member first in {s['truth_first_fraction']:.0%} "
            f"(mean weight {s['truth_weight_mean']:.2f}); "
            f"mixture predictive coverage 1σ {s['coverage_1sigma']:.3f}, 2σ {s['coverage_2sigma']:.3f} "
            f"({'over' if over > 0 else 'under'}-covers by {abs(over):.3f} at 1σ); σ_base recovery error "
            f"{rec['sigma_base_thick']['mean_abs_error']:.2f} (thick), "
            f"{rec['sigma_base_vel']['mean_abs_error']:.2f} (vel) m/yr"
        )
    order = [a[r.name]["recovery_error_identified"] for r in spec_a.regimes]
    findings.append(
        "(a) recovery error (identified parameters, prior-sd units) by regime: "
        + ", ".join(f"{r.name} {e:.2f}" for r, e in zip(spec_a.regimes, order))
        + ("; grows as information falls" if order == sorted(order) else "; NOT monotone in information")
    )
    plot = plot_coverage(out, res, THRESHOLDS, nominal)
    full = {setting: {k: v for k, v in r.items() if k != "records"} for setting, r in res.items()}
    write_json(out / "summary.json", {"figures": full, "findings": findings, "messages": messages})
    keep = (
        "coverage_1sigma",
        "coverage_2sigma",
        "calibration_error",
        "worst_replicate_calibration_error",
        "recovery_error_identified",
        "truth_first_fraction",
        "truth_weight_mean",
        "replicates",
    )
    figures = {
        setting: {
            **{name: {k: v for k, v in reg.items() if k in keep} for name, reg in r["regimes"].items()},
            "fits": r["fits"],
            "wall_s": r["wall_s"],
            "reused_replicates": r["reused_replicates"],
        }
        for setting, r in res.items()
    }
    return CheckResult(
        name="coverage",
        case=ctx.case,
        status=worst([calibration.verdict, "pass" if first >= gate.min_truth_first else "fail"]),
        figures=figures,
        thresholds={
            "generative_dense_clean_max_calibration_error": gate.max_calibration_error,
            "generative_max_replicates": plan.cap,
            "mc_alpha": gate.mc_alpha,
            "physical_dense_clean_min_truth_first": gate.min_truth_first,
            "nominal_1sigma": NOMINAL_1,
            "nominal_2sigma": NOMINAL_2,
        },
        gates=coverage_gates(figures, gate, calibration),
        messages=messages + [f"(reported, not gated) {f}" for f in findings],
        plots=[plot],
        provenance={
            "seed_a": spec_a.seed,
            "seed_b": spec_b.seed,
            "sampler": SAMPLER,
        },
    )
