"""Simulation-based calibration of the noise model (DESIGN.md, harness check 4).

Talts et al. (2018) / Modrák et al. (2023): draw θ from the prior, simulate data from the
generative form, fit, and rank θ among thinned posterior draws. If model, data simulator and
sampler agree, every rank is uniform on 0..L. Every fit samples FUSION's own density through
`fusion run`'s sampler path (`harness.sim`), so a defect in that density shows up here by
construction. The log-likelihood of the simulated data is a derived test quantity: a model that
ignores part of the data can keep every parameter's ranks uniform (its posterior there is the
prior) while the log-likelihood's ranks pile up.

Uniformity is judged two ways per quantity, with a family-wise α split (Bonferroni) over
quantities and tests: Pearson's χ² on binned ranks, and whether the ECDF of the (jittered)
normalised ranks stays inside ArviZ's simultaneous band (Säilynoja et al. 2022). Each fit's
convergence figures are recorded; fits that fail them are left out of the ranks, counted and
reported, and too many of them fail the check.

Every replicate is its own artifact folder stamped `_SUCCESS`, keyed by a hash of the spec,
so a killed run resumes without refitting finished replicates. The tempered (prototype) form
is run on the same datasets and its miscalibration reported, not gated.

The χ² gate decides on an estimate with its Monte-Carlo interval (`harness.verdict`), not on the
p-value: a p-value near α does not settle with more replicates (it is uniform when the model is
calibrated, and tends to 0 for any departure however small), so the gated figure is what the χ²
statistic estimates, how far the binned ranks are from uniform, Cohen's w = √(B·Σ(π_b − 1/B)²)
over B bins (0 for uniform ranks; about the posterior's bias in posterior sd units, 0.3 for one
20 % too narrow), with its non-central χ² interval (`harness.verdict.rank_divergence`), the
largest over the quantities (`harness.verdict.largest`). The gate is w ≤ `max_rank_w`. Its
replicates are the generative form's SBC replicates: undecided adds a batch as large as the
suite's first (200 quick, 1,000 full), replicate i always from the same seed, up to
`max_replicates`, with Pocock-type alpha spending over the looks; fitted replicates are read back.
The ECDF band (a point test at its Bonferroni share of `alpha`) and the failed-fit share are
gated on the replicates of the last look.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusion.diagnostics import Thresholds
from fusion.diagnostics import gate as fusion_gate
from fusion.inference.noise import NoiseSettings
from fusion.io import write_csv, write_json
from harness.checks import CheckContext, CheckResult, gate_record, gates_of, status_of
from harness.gates import SBCRanks
from harness.gates import SBC_FIT
from harness.report.plots import plot_sbc
from harness.sim.ranks import ecdf_band, jittered_pit, rank_counts, shape_of, thin_indices, uniformity
from harness.verdict import Decision, Interval, Plan, largest, rank_divergence, sequential
from harness.sim import (
    prior_variance,
    SAMPLER,
    CORRECT,
    DROPPED_LOGNORM_TERM,
    DROPPED_THICK_TERM,
    PARAMS,
    WRONG_PRIOR_SCALE,
    ModelVariant,
    compile_count,
    convergence,
    draw_prior,
    fit,
    loglik_draws,
    replicate_rng,
    run_replicates,
    sbc_design,
    simulate_residuals,
    spec_hash,
    worker_info,
)

__all__ = [
    "QUANTITIES",
    "SBCGate",
    "SBCOutcome",
    "SBCSpec",
    "rank_w_interval",
    "run_check",
    "run_sbc",
    "sbc_decision",
    "suite_spec",
    "thin_indices",
    "uniformity",
]

QUANTITIES: tuple[str, ...] = (*PARAMS, "loglik")
VARIANTS: dict[str, ModelVariant] = {
    v.name: v for v in (CORRECT, WRONG_PRIOR_SCALE, DROPPED_THICK_TERM, DROPPED_LOGNORM_TERM)
}
Form = Literal["generative", "tempered"]


@dataclass(frozen=True)
class SBCSpec:
    """Everything that determines a replicate's result; its hash keys the replicate artifacts.

    Defaults: 5 members × 200 points (100 thickness, 100 velocity), 2 chains of 500 + 500 draws
    with nutpie's standard diagonal mass-matrix adaptation. At 250 + 250 (the form simuk was
    measured on; the benchmark uses it) about one fit in ten has too few effective draws for
    its own gate; at 500 + 500 about one in forty does, mostly from a single divergence.
    """

    form: Form = "generative"
    variant: ModelVariant = CORRECT
    n_replicates: int = 200
    draws: int = 500
    tune: int = 500
    chains: int = 2
    n_thick: int = 100
    n_vel: int = 100
    n_members: int = 5
    design_seed: int = 20260430
    seed: int = 2026
    target_accept: float = 0.8
    adaptation: str = "diag"

    @property
    def hash(self) -> str:
        return spec_hash(self)

    @property
    def label(self) -> str:
        return self.form if self.variant == CORRECT else f"{self.form}/{self.variant.name}"


@dataclass(frozen=True)
class SBCGate:
    """How fits and ranks are judged (changing it never refits: the figures are stored raw).

    Per-fit figures come from 2 short chains (500 draws each), where an R-hat of 1.01 is within
    noise, so the per-fit thresholds (`harness.gates.SBC_FIT`, settable in the harness config
    file) are looser than the production gate's (DESIGN.md check 3); same names, same `gate`.
    """

    alpha: float = SBCRanks().alpha  # family-wise false-alarm rate, over quantities × tests (Bonferroni)
    max_rank_w: float = SBCRanks().max_rank_w  # the χ² gate: largest rank non-uniformity (Cohen's w)
    bins: int = 20
    n_simulations: int = 10_000  # for the ECDF simultaneous band
    fit: Thresholds = SBC_FIT  # per fit; its bulk ESS floor also bounds the thinned draws
    max_failed_fraction: float = SBCRanks().max_failed_fraction

    def per_test(self, n_quantities: int) -> float:
        """Bonferroni: the family-wise α shared over quantities × two tests (χ² and ECDF band)."""
        return self.alpha / (2 * n_quantities)


@dataclass
class SBCOutcome:
    """One SBC run: per-quantity tests, failing fits, speed and where its plots went."""

    spec: SBCSpec
    passed: bool
    figures: dict[str, Any]
    ranks: np.ndarray  # (n_ok, Q) ranks of the fits that passed their own gate
    n_thinned: np.ndarray  # (n_ok,) thinned draws each rank was taken among (ranks 0..L_i)
    pit: np.ndarray  # (n_ok, Q) jittered normalised ranks
    records: list[dict[str, Any]]
    messages: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# One replicate
# --------------------------------------------------------------------------------------------


def _replicate(spec: SBCSpec, index: int, cores: int) -> dict[str, Any]:
    rng = replicate_rng(spec.seed, index)
    design = sbc_design(spec.n_thick, spec.n_vel, spec.n_members, spec.design_seed)
    theta = draw_prior(rng)  # the simulator always uses the true prior
    resid = simulate_residuals(theta, design, rng)
    s2 = np.square(resid).sum(axis=0)
    n_obs = np.full(design.n_points, float(design.n_members))
    result = fit(
        design.prepared(resid),
        NoiseSettings(velocity_inflation=design.inflation, tempered=spec.form == "tempered"),
        variant=spec.variant,
        draws=spec.draws,
        tune=spec.tune,
        chains=spec.chains,
        cores=cores,
        seed=int(rng.integers(2**31)),
        target_accept=spec.target_accept,
        adaptation=spec.adaptation,
    )
    ll = loglik_draws(result.draws, design, s2, n_obs)  # (chains, draws)
    quantities = np.concatenate([np.moveaxis(result.draws, -1, 0), ll[None]], axis=0)  # (Q, C, D)
    truth = np.r_[theta, loglik_draws(theta, design, s2, n_obs)]
    conv = convergence(quantities, result, QUANTITIES)
    flat = quantities.reshape(len(QUANTITIES), -1)
    keep = thin_indices(spec.chains, result.draws.shape[1], conv["ess_bulk_min"])
    ranks = [int(r) for r in (flat[:, keep] < truth[:, None]).sum(axis=1)]
    return {
        "index": index,
        "truth": dict(zip(QUANTITIES, map(float, truth))),
        "ranks": dict(zip(QUANTITIES, ranks)),
        "n_thinned": int(keep.size),
        "post_mean": dict(zip(QUANTITIES, map(float, flat.mean(axis=1)))),
        "post_sd": dict(zip(QUANTITIES, map(float, flat.std(axis=1, ddof=1)))),
        "convergence": conv,
        "fit_seconds": result.seconds,
    }


def sbc_chunk(spec: SBCSpec, indices: list[int], cores: int) -> dict[str, Any]:
    """Worker entry point: fit a chunk of replicates with this process's density callbacks."""
    results = [_replicate(spec, i, cores) for i in indices]
    return {"results": results, **worker_info()}


def fit_problems(record: dict[str, Any], gate: SBCGate) -> list[str]:
    """Why a fit may not be used ([] when it may): each failing convergence figure, by name."""
    return fusion_gate(record["convergence"], gate.fit)[1]


# --------------------------------------------------------------------------------------------
# A run: resume, fit what is missing in parallel, test, plot
# --------------------------------------------------------------------------------------------


def run_sbc(
    spec: SBCSpec,
    folder: str | Path,
    *,
    gate: SBCGate | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_size: int = 8,
    progress: Callable[[str], None] = print,
    plots: bool = True,
) -> SBCOutcome:
    """Run (or resume) one SBC: fit the missing replicates, then test, tabulate and plot all."""
    gate = gate or SBCGate()
    records, stats, reused = run_replicates(
        sbc_chunk,
        spec,
        spec.n_replicates,
        folder,
        label=f"sbc[{spec.label}]",
        scheduler=scheduler,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
    )
    return summarize(spec, records, Path(folder), gate=gate, map_stats=stats, reused=reused, plots=plots)


def _per_fit(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst (and median) of each fit's own convergence figures."""
    conv = [r["convergence"] for r in records]

    def worst(fn: Callable[..., Any], key: str) -> float:
        return float(fn([c[key] for c in conv])) if conv else math.nan

    return {
        "r_hat_max_worst": worst(np.nanmax, "r_hat_max"),
        "ess_bulk_min_worst": worst(np.nanmin, "ess_bulk_min"),
        "ess_bulk_min_median": worst(np.nanmedian, "ess_bulk_min"),
        "ess_tail_min_worst": worst(np.nanmin, "ess_tail_min"),
        "divergences_total": int(sum(c["divergences"] for c in conv)),
        "fits_with_divergences": int(sum(c["divergences"] > 0 for c in conv)),
        "e_bfmi_min_worst": worst(np.nanmin, "e_bfmi_min"),
        "mean_leapfrog_steps": worst(np.mean, "mean_steps"),
    }


def _speed(map_stats: Any) -> dict[str, Any]:
    """How fast the replicates were fitted (only when this run fitted any)."""
    if map_stats is None or not map_stats.fitted:
        return {}
    return {
        "fitted_replicates": map_stats.fitted,
        "wall_s": map_stats.seconds,
        "fits_per_min": 60.0 * map_stats.fitted / max(map_stats.seconds, 1e-9),
        "startup_s": map_stats.first_chunk_s,
        "steady_fits_per_min": map_stats.steady_per_min,
        "compilations": map_stats.total_compilations,
        "worker_processes": len(map_stats.compilations),
        "backend": map_stats.backend,
    }


def _messages(spec: SBCSpec, figures: dict[str, Any], gate: SBCGate, n_failed: int, n_records: int) -> list[str]:
    """What failed, by how much: each non-uniform quantity with its shape, and too many failed fits."""
    messages = []
    tests = figures["tests"]
    for q in figures["rejected"]:
        t = tests[q]
        if "chi2_p" not in t:
            messages.append(f"sbc[{spec.label}] {q}: not tested ({t['why']})")
            continue
        messages.append(
            f"sbc[{spec.label}] {q}: non-uniform ranks (χ² p={t['chi2_p']:.2g}, ECDF outside band: "
            f"{t['ecdf_outside_band']}; {figures['shape'][q]})"
        )
    if figures["failed_fraction"] > gate.max_failed_fraction:
        messages.append(
            f"sbc[{spec.label}]: {n_failed}/{n_records} fits failed their convergence figures "
            f"(> {gate.max_failed_fraction:.0%})"
        )
    return messages


def _ranks_of(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r["ranks"][q] for q in QUANTITIES] for r in records], dtype=int).reshape(-1, len(QUANTITIES))


def summarize(
    spec: SBCSpec,
    records: list[dict[str, Any]],
    folder: Path,
    *,
    gate: SBCGate,
    map_stats: Any = None,
    reused: int = 0,
    plots: bool = True,
) -> SBCOutcome:
    """Gate each fit, test the ranks of the usable ones, write tables and plots."""
    problems = {r["index"]: fit_problems(r, gate) for r in records}
    ok = [r for r in records if not problems[r["index"]]]
    failed = [r for r in records if problems[r["index"]]]
    ranks = _ranks_of(ok)
    n_thinned = np.array([r["n_thinned"] for r in ok], dtype=int)
    pit = jittered_pit(ranks, n_thinned, seed=spec.seed)
    tests = uniformity(pit, QUANTITIES, gate)
    # leaving failed fits out can bias SBC if failures depend on θ: the same tests with them in
    every_pit = jittered_pit(_ranks_of(records), np.array([r["n_thinned"] for r in records], dtype=int), seed=spec.seed)
    with_failed = uniformity(every_pit, QUANTITIES, gate) if failed else tests
    failed_fraction = len(failed) / max(len(records), 1)
    rejected = [q for q, t in tests.items() if t["reject"]]
    passed = not rejected and failed_fraction <= gate.max_failed_fraction
    contraction = {
        p: float(1 - np.mean([r["post_sd"][p] ** 2 for r in records]) / prior_variance(p)) if records else math.nan
        for p in PARAMS
    }
    figures: dict[str, Any] = {
        "form": spec.form,
        "variant": spec.variant.name,
        "spec_hash": spec.hash,
        "replicates": len(records),
        "usable_fits": len(ok),
        "failed_fits": len(failed),
        "failed_fraction": failed_fraction,
        "failed_examples": {str(r["index"]): problems[r["index"]] for r in failed[:10]},
        "tests": tests,
        "rejected_with_failed_fits": [q for q, t in with_failed.items() if t["reject"]],
        "shape": {q: shape_of(t) for q, t in tests.items()},
        "rejected": rejected,
        "false_alarm_rate": gate.alpha,
        "posterior_contraction": contraction,
        "per_fit": _per_fit(records),
        "draws": spec.draws,
        "tune": spec.tune,
        "chains": spec.chains,
        "thinned_draws_median": float(np.median(n_thinned)) if len(ok) else math.nan,
        "data": f"{spec.n_members} members x {spec.n_thick + spec.n_vel} points",
        "reused_replicates": reused,
        **_speed(map_stats),
    }
    messages = _messages(spec, figures, gate, len(failed), len(records))
    outcome = SBCOutcome(spec, passed, figures, ranks, n_thinned, pit, records, messages)
    _write_tables(folder, outcome, problems)
    if plots and len(ok):
        n, q = outcome.ranks.shape
        level = 1.0 - gate.per_test(q)
        band = ecdf_band(n, level, gate.n_simulations)
        rejected_flags = [bool(tests[name]["reject"]) for name in QUANTITIES]
        outcome.plots = plot_sbc(folder, spec.label, outcome.pit, rejected_flags, QUANTITIES, gate.bins, band, level)
    return outcome


def _write_tables(folder: Path, outcome: SBCOutcome, problems: dict[int, list[str]]) -> None:
    import pandas as pd

    rows = []
    for r in outcome.records:
        c = r["convergence"]
        rows.append(
            {
                "index": r["index"],
                **{f"true_{q}": r["truth"][q] for q in QUANTITIES},
                **{f"rank_{q}": r["ranks"][q] for q in QUANTITIES},
                **{k: c[k] for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "e_bfmi_min")},
                "n_thinned": r["n_thinned"],
                "usable": not problems[r["index"]],
                "problems": "; ".join(problems[r["index"]]),
                "fit_seconds": r["fit_seconds"],
            }
        )
    write_csv(folder / "fits.csv", pd.DataFrame(rows))
    write_json(
        folder / "summary.json",
        {"passed": outcome.passed, "figures": outcome.figures, "messages": outcome.messages},
    )


# --------------------------------------------------------------------------------------------
# The harness check
# --------------------------------------------------------------------------------------------


def suite_spec(suite: str, form: Form = "generative", variant: ModelVariant = CORRECT) -> SBCSpec:
    """Quick: 200 replicates; full: 1,000 (issue 5). Same model size and draws in both."""
    return SBCSpec(form=form, variant=variant, n_replicates=200 if suite == "quick" else 1000)


def _tempered_report(gen: SBCOutcome, tmp: SBCOutcome) -> dict[str, Any]:
    """How the tempered posterior departs from the calibrated one, per quantity, in numbers."""
    by_index = {r["index"]: r for r in gen.records}
    out = {}
    for q in QUANTITIES:
        ratios = [
            r["post_sd"][q] / by_index[r["index"]]["post_sd"][q]
            for r in tmp.records
            if r["index"] in by_index
        ]
        t = tmp.figures["tests"][q]
        out[q] = {
            "shape": tmp.figures["shape"][q],
            "central_half": t.get("central_half"),
            "outer_tenth": t.get("outer_tenth"),
            "chi2_p": t.get("chi2_p"),
            "posterior_sd_ratio_median": float(np.median(ratios)) if ratios else math.nan,
        }
    return out


def rank_w_interval(pit: np.ndarray, bins: int, level: float) -> Interval:
    """The largest rank non-uniformity (Cohen's w from each quantity's binned χ²) over the columns
    of `pit` (n, Q), with its interval at `level` (`harness.verdict.largest`)."""
    from scipy.stats import chisquare

    pit = np.asarray(pit, dtype=float)
    stats = [float(chisquare(rank_counts(pit[:, j], bins)).statistic) for j in range(pit.shape[1])]
    return largest(lambda lv: [rank_divergence(x, bins, pit.shape[0], lv) for x in stats], level, "quantities")


def sbc_decision(
    spec: SBCSpec,
    folder: Path,
    plan: Plan,
    bound: float,
    *,
    gate: SBCGate,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] = print,
) -> tuple[Decision, SBCOutcome]:
    """The largest rank non-uniformity w decided in batches of replicates (`plan`; stored ones reused),
    and the SBC outcome of the last look."""
    last: list[SBCOutcome] = []

    def measure(n: int, level: float) -> Interval:
        last[:] = [run_sbc(replace(spec, n_replicates=n), folder, gate=gate, scheduler=scheduler, workers=workers,
                           progress=progress)]  # fmt: skip
        usable = last[0].pit.reshape(-1, len(QUANTITIES))
        if len(usable) < 2 * gate.bins:  # too few usable fits to bin: nothing to decide on
            return Interval(math.inf, math.inf, math.inf, level, len(usable), "too few usable fits")
        return rank_w_interval(usable, gate.bins, level)

    decision = sequential(plan, measure, "≤", bound, lambda m: progress(f"sbc[{spec.label}] rank w: {m}"))
    return decision, last[0]


def sbc_gates(gen: dict[str, Any], gate: SBCGate, decision: Decision | None = None) -> list[dict[str, Any]]:
    """The generative form's gates: the largest rank non-uniformity w (with its interval and verdict
    when `decision` is given), ECDF bands, failed fits."""
    bands = gen.get("ecdf_inside_band")
    name = "largest rank non-uniformity w (χ²)"
    return gates_of(
        decision.record(name) if decision is not None else gate_record(name, "≤", gate.max_rank_w, gen.get("rank_w")),
        gate_record("ECDF outside the simultaneous band", "≤", 0, sum(not v for v in bands.values()), "quantities")
        if isinstance(bands, dict) and bands
        else None,
        gate_record("failed fits (fraction)", "≤", gate.max_failed_fraction, gen.get("failed_fraction")),
    )


def _gate_messages(outcome: SBCOutcome, decision: Decision, gate: SBCGate) -> list[str]:
    """What the gates found, one line each: w beyond or holding its bound, each quantity outside its ECDF
    band, too many failed fits."""
    f, iv, label = outcome.figures, decision.interval, outcome.spec.label
    lines = []
    if decision.verdict != "pass":
        lines.append(
            f"sbc[{label}]: largest rank non-uniformity w {iv.estimate:.3f} over {iv.n} usable fits, {iv.level:.1%} "
            f"interval [{iv.lower:.3f}, {iv.upper:.3f}] " + ("> " if decision.verdict == "fail" else "holds the bound ")
            + f"{gate.max_rank_w:g}"
            + (f"; about {decision.needed} replicates would decide (cap {decision.cap})" if decision.needed else "")
        )  # fmt: skip
    for q, t in f["tests"].items():
        if t.get("ecdf_outside_band") or "chi2" not in t:
            lines.append(f"sbc[{label}] {q}: " + (f"ranks outside the ECDF band ({f['shape'][q]}, χ² p={t['chi2_p']:.2g})"
                                                  if "chi2" in t else f"not tested ({t['why']})"))  # fmt: skip
    if f["failed_fraction"] > gate.max_failed_fraction:
        lines.append(f"sbc[{label}]: {f['failed_fits']}/{f['replicates']} fits failed their convergence figures "
                     f"(> {gate.max_failed_fraction:.0%})")  # fmt: skip
    return lines


def run_check(ctx: CheckContext) -> CheckResult:
    """SBC of the generative form (gated) and of the tempered form (reported)."""
    ranks = ctx.gates.sbc_ranks
    gate = SBCGate(fit=ctx.gates.sbc, alpha=ranks.alpha, max_failed_fraction=ranks.max_failed_fraction,
                   max_rank_w=ranks.max_rank_w)  # fmt: skip
    out = Path(ctx.artifact_dir)
    n_before = compile_count()
    first = suite_spec(ctx.suite)
    plan = Plan(first=first.n_replicates, batch=first.n_replicates, cap=max(ranks.max_replicates, first.n_replicates),
                alpha=ranks.mc_alpha)  # fmt: skip
    decision, gen = sbc_decision(first, out / "generative", plan, gate.max_rank_w, gate=gate, scheduler=ctx.scheduler,
                                 progress=ctx.progress)  # fmt: skip
    tmp = run_sbc(suite_spec(ctx.suite, "tempered"), out / "tempered", gate=gate, scheduler=ctx.scheduler,
                  progress=ctx.progress)  # fmt: skip
    tempered = _tempered_report(gen, tmp)
    beta_thick = gen.figures["posterior_contraction"]["beta_thick"]
    findings = [
        (
            "beta_thick is not identified (it multiplies speed 0 on thickness points): posterior "
            f"contraction {beta_thick:.3f} (0 = posterior equals prior). Calibrated, but the data say "
            "nothing about it."
        ),
    ]
    ll = tempered["loglik"]
    verdict = "miscalibrated" if tmp.figures["rejected"] else "not detectably miscalibrated"
    wider = ", ".join(f"{tempered[p]['posterior_sd_ratio_median']:.1f}x ({p})" for p in PARAMS)
    findings.append(
        f"tempered (prototype) form is {verdict}: rejected {tmp.figures['rejected'] or 'nothing'}; "
        f"log-likelihood {ll['shape']}. Its posterior is close to the prior (sd {wider} the "
        "calibrated posterior's, median over replicates), and a prior-like posterior keeps "
        f"parameter ranks near uniform; the log-likelihood test quantity is what exposes it."
    )
    iv = decision.interval
    figures = {
        "generative": {**_compact(gen.figures), "rank_w": iv.estimate, "rank_w_interval": [iv.lower, iv.upper],
                       "level": iv.level, "verdict": decision.verdict, "looks": [list(look) for look in decision.looks]},
        "tempered": {
            **{k: tmp.figures[k] for k in ("replicates", "usable_fits", "failed_fits", "rejected")},
            "shape": tmp.figures["shape"],
            "central_half": {q: tmp.figures["tests"][q].get("central_half") for q in QUANTITIES},
            "posterior_sd_ratio_median": {q: t["posterior_sd_ratio_median"] for q, t in tempered.items()},
            "chi2_p": {q: tmp.figures["tests"][q].get("chi2_p") for q in QUANTITIES},
        },
    }
    thresholds = {
        "alpha_family": gate.alpha,
        "alpha_per_test": gate.per_test(len(QUANTITIES)),
        "rank_bins": gate.bins,
        "false_alarm_rate": gate.alpha,  # P(a correct model fails SBC), family-wise over quantities and tests
        "per_fit": gate.fit.as_dict(),  # ESS floors per chain
        "max_failed_fraction": gate.max_failed_fraction,
        "max_rank_w": gate.max_rank_w,
        "max_replicates": plan.cap,
        "mc_alpha": plan.alpha,
    }
    write_json(
        out / "findings.json",
        {
            "findings": findings,
            "tempered": tempered,
            "generative_full": gen.figures,
            "tempered_full": tmp.figures,
        },
    )
    plots = [f"generative/{p}" for p in gen.plots] + [f"tempered/{p}" for p in tmp.plots]
    gates = sbc_gates(figures["generative"], gate, decision)
    return CheckResult(
        name="sbc",
        case=ctx.case,
        status=status_of(gates),
        figures=figures,
        thresholds=thresholds,
        gates=gates,
        messages=_gate_messages(gen, decision, gate) + [f"(reported, not gated) {m}" for m in findings],
        plots=plots,
        provenance={
            "seed": gen.spec.seed,
            "sampler": SAMPLER,
            "spec_hash": gen.spec.hash,
            "compilations_in_runner_process": compile_count() - n_before,
        },
    )


def _compact(f: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader scans in the report (the full per-quantity tests stay in summary.json)."""
    keys = (
        "replicates",
        "usable_fits",
        "failed_fits",
        "failed_fraction",
        "rejected",
        "fits_per_min",
        "wall_s",
        "startup_s",
        "steady_fits_per_min",
        "compilations",
        "worker_processes",
        "backend",
        "reused_replicates",
        "thinned_draws_median",
        "data",
    )
    return {
        **{k: f[k] for k in keys if k in f},
        "chi2_p": {q: t.get("chi2_p") for q, t in f["tests"].items()},
        "ecdf_inside_band": {q: not t.get("ecdf_outside_band", True) for q, t in f["tests"].items()},
        "rejected_with_failed_fits": f["rejected_with_failed_fits"],
        "posterior_contraction": f["posterior_contraction"],
        "per_fit": f["per_fit"],
        "failed_examples": f["failed_examples"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.checks.sbc --out DIR`: one SBC run outside the runner (benchmarks, resume tests)."""
    ap = argparse.ArgumentParser(prog="python -m harness.checks.sbc", description=main.__doc__)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--form", choices=("generative", "tempered"), default="generative")
    ap.add_argument("--workers", type=int, default=None, help="local processes (0: in this process)")
    ap.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    ap.add_argument("--chunk-size", type=int, default=8)
    ap.add_argument("--adaptation", default="diag", help="nutpie mass-matrix adaptation")
    ap.add_argument(
        "--variant", default="correct", choices=sorted(VARIANTS), help="planted bugs for power checks"
    )
    ap.add_argument("--draws", type=int, default=SBCSpec.draws)
    ap.add_argument("--tune", type=int, default=SBCSpec.tune)
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    spec = SBCSpec(
        form=args.form,
        n_replicates=args.replicates,
        adaptation=args.adaptation,
        draws=args.draws,
        tune=args.tune,
        variant=VARIANTS[args.variant],
    )
    outcome = run_sbc(
        spec,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        chunk_size=args.chunk_size,
        progress=lambda s: print(s, flush=True),
        plots=not args.no_plots,
    )
    f = outcome.figures
    print(
        json.dumps(
            {
                k: f.get(k)
                for k in (
                    "replicates",
                    "fitted_replicates",
                    "reused_replicates",
                    "usable_fits",
                    "failed_fits",
                    "wall_s",
                    "fits_per_min",
                    "compilations",
                    "rejected",
                )
            }
        )
    )
    print("PASS" if outcome.passed else "FAIL", flush=True)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
