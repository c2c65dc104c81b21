"""Seed stability of the member weights (DESIGN.md, harness check 6).

Prepare subsamples the points with `inference.subsample.seed`; a user who reruns with another
seed must get the same answer to within a stated tolerance, or the weights say more about the
seed than about the ensemble. For K seeds (default 5) we prepare the case (by default the bundled example) with a
subsample smaller than its point count, compute each member's posterior-mean weight E[w_m]
(the config's likelihood form, as `fusion run` samples it, fitted through `fusion run`'s density and nutpie path), align
the weights by member label (never by position), and report per-member σ across seeds and how
often the seeds agree on the top member. The gate is the largest per-member σ.

That σ is itself a Monte-Carlo estimate (from 5 seeds, uncertain by about ±35 %), so the gate
reads it with an interval (`harness.verdict`): each member's σ gets its χ² interval, at the
look's level divided over the members (Bonferroni: the intervals hold together), and the largest
σ's interval runs from the largest lower to the largest upper end. Undecided adds the next
batch of seeds (as many as the first batch, consecutive after its last seed: a fixed, seeded
path) up to `max_seeds`, under Pocock-type alpha spending over the looks; seeds already fitted
are read back from their folders.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion.data.prepared import Prepared
from fusion.inference.noise import NoiseSettings
from fusion.io import write_csv, write_json
from harness.cases import catalog_of
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.report.plots import plot_stability
from harness.sim import PARAMS, SAMPLER, fit, run_tasks, spec_hash, worker_info
from harness.result_store import load_result, save_result
from harness.verdict import Decision, Interval, Plan, sd_chi2, sequential

__all__ = [
    "StabilitySettings",
    "max_sd_interval",
    "posterior_weights",
    "run_check",
    "run_stability",
    "seed_list",
    "seed_stability",
    "stability_chunk",
]


@dataclass(frozen=True)
class StabilitySettings:
    """Seeds (the first batch), subsample size, sampler settings and the gate (max per-member σ of
    E[w]), with its cap on seeds and its chance `alpha` per side of a verdict wrong by noise."""

    seeds: tuple[int, ...] = (42, 43, 44, 45, 46)
    subsample_size: int = 2000
    max_sd: float = 0.02
    draws: int = 500
    tune: int = 500
    chains: int = 2
    sampler_seed: int = 42
    max_seeds: int = 40
    alpha: float = 0.05

    def plan(self) -> Plan:
        """Looks at the first batch, then every further batch of as many seeds, up to `max_seeds`."""
        first = len(self.seeds)
        return Plan(first=first, batch=first, cap=max(self.max_seeds, first), alpha=self.alpha)


def seed_list(settings: StabilitySettings) -> list[int]:
    """Every seed a run may use, in order: the first batch, then consecutive seeds after its last."""
    extra = max(settings.max_seeds - len(settings.seeds), 0)
    return [*settings.seeds, *range(max(settings.seeds) + 1, max(settings.seeds) + 1 + extra)]


def max_sd_interval(table: pd.DataFrame, level: float) -> Interval:
    """The largest per-member σ across seeds (rows) and its interval at `level`, simultaneous over
    members: each member's χ² interval at 1 − (1 − level)/members (Bonferroni)."""
    members = table.shape[1]
    each = [sd_chi2(table[m].to_numpy(), 1 - (1 - level) / members) for m in table.columns]
    return Interval(max(i.estimate for i in each), max(i.lower for i in each), max(i.upper for i in each),
                    level, len(table), f"χ² per member, Bonferroni over {members}")


def seed_stability(weights: Mapping[int, Mapping[str, float]]) -> dict[str, Any]:
    """σ across seeds of each member's weight, aligned by label; top-member agreement.

    A member missing under some seed is an error, not a zero: alignment must be by label and
    complete, or the σ would compare different members.
    """
    # rows in seed order, whatever order the seeds finished in (parallel workers): σ and mean are
    # sums over seeds, and another order changes their last bits from run to run
    table = pd.DataFrame({seed: pd.Series(w, dtype=float) for seed, w in weights.items()}).T.sort_index()
    if table.isna().any().any():
        missing = {
            m: [int(s) for s in table.index[table[m].isna()]] for m in table.columns if table[m].isna().any()
        }
        raise ValueError(f"member labels differ between seeds: missing {missing}")
    sd = table.std(axis=0, ddof=1) if len(table) > 1 else table.iloc[0] * 0.0
    top = table.idxmax(axis=1)
    modal, count = Counter(top).most_common(1)[0]
    return {
        "seeds": [int(s) for s in table.index],
        "members": [str(m) for m in table.columns],
        "mean": {str(m): float(v) for m, v in table.mean(axis=0).items()},
        "sd": {str(m): float(v) for m, v in sd.items()},
        "max_sd": float(sd.max()),
        "max_sd_member": str(sd.idxmax()),
        "top_member_by_seed": {str(int(s)): str(m) for s, m in top.items()},
        "modal_top_member": str(modal),
        "top_agreement": count / len(table),
        "table": table,
    }


def posterior_weights(
    prepared: Any, draws: np.ndarray, settings: NoiseSettings | None = None
) -> dict[str, float]:
    """E_post[w_m] from draws (D, 4) of the model `settings` describe: one matrix product over draws
    (`fusion.inference.posterior.member_logliks`), labelled by member id."""
    from fusion.inference.posterior import member_logliks

    w = member_logliks(prepared, dict(zip(PARAMS, np.asarray(draws).T)), settings)["w"].mean(axis=0)
    return dict(zip(prepared.member_ids, map(float, w)))


@dataclass(frozen=True)
class _Job:
    """The fits a worker runs: per subsample seed, the noise settings and the points of the config's
    likelihood form, derived here as `fusion run` derives them (`fusion.pipeline.likelihood_inputs`)."""

    settings: StabilitySettings
    fits: tuple[tuple[NoiseSettings, Prepared], ...]
    adaptation: str = "diag"  # nutpie's mass matrix, as `fusion run` adapts it under the config's compat


def stability_chunk(job: _Job, indices: list[int], cores: int) -> dict[str, Any]:
    """Worker entry point: fit the config's likelihood form on each seed's points."""
    st = job.settings
    results = []
    for k in indices:
        noise, points = job.fits[k]
        res = fit(
            points,
            noise,
            draws=st.draws,
            tune=st.tune,
            chains=st.chains,
            cores=cores,
            seed=st.sampler_seed,
            adaptation=job.adaptation,
        )
        results.append({"index": k, "draws": res.flat, "divergences": int(res.diverging.sum())})
    return {"results": results, **worker_info()}


def run_stability(
    config_path: str | Path,
    folder: str | Path,
    settings: StabilitySettings | None = None,
    progress: Callable[[str], None] = print,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Weights per seed (resumable, one artifact per seed) for as many batches of seeds as the
    verdict needs, then the stability figures and, under `decision`, the verdict."""
    from fusion import load_config, load_data, prepare
    from fusion.config import config_hash
    from fusion.pipeline import likelihood_inputs

    settings = settings or StabilitySettings()
    folder = Path(folder)
    cfg = load_config(config_path)
    # neither the gate nor the seed list changes a seed's weights; the config (its likelihood form among it) does
    key = spec_hash(replace(settings, max_sd=0.0, seeds=(0,), max_seeds=0, alpha=0.05)) + config_hash(cfg)[:16]
    seeds = seed_list(settings)
    weights: dict[int, dict[str, float]] = {}
    loaded: list[Any] = []  # the case's data, read once, when a seed needs fitting

    def fit_seeds(upto: int) -> None:
        todo = []
        for seed in seeds[:upto]:
            if seed in weights:
                continue
            rec = load_result(folder / "seeds" / f"seed{seed}", key)
            if rec is not None:
                weights[seed] = rec["weights"]
            else:
                todo.append(seed)
        if not todo:
            return
        if not loaded:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the example carries a deliberate missing-ERRY warning
                loaded.append(load_data(cfg))
        prepared = {
            seed: prepare(
                cfg.with_updates(inference={"subsample": {"size": settings.subsample_size, "seed": int(seed)}}),
                loaded[0],
            )
            for seed in todo
        }
        fits = {seed: likelihood_inputs(cfg, prepared[seed]) for seed in todo}
        job = _Job(settings, tuple(fits[s] for s in todo), cfg.inference.adaptation(cfg.compat))

        def on_chunk(results: list[dict[str, Any]]) -> None:
            for r in results:
                seed = todo[r["index"]]
                noise, points = fits[seed]
                weights[seed] = posterior_weights(points, r["draws"], noise)
                save_result(
                    folder / "seeds" / f"seed{seed}",
                    {
                        "seed": int(seed),
                        "n_points": prepared[seed].n_points,
                        "divergences": r["divergences"],
                        "weights": weights[seed],
                    },
                    key,
                )
                progress(f"stability: seed {seed} done ({len(weights)}/{upto})")

        run_tasks(
            stability_chunk, job, list(range(len(todo))), on_chunk, scheduler=scheduler, workers=workers, chunk_size=1
        )

    def measure(n: int, level: float) -> Interval:
        fit_seeds(n)
        return max_sd_interval(seed_stability({s: weights[s] for s in seeds[:n]})["table"], level)

    decision = sequential(settings.plan(), measure, "≤", settings.max_sd, lambda m: progress(f"stability: {m}"))
    return {**seed_stability({s: weights[s] for s in seeds[: decision.interval.n]}), "decision": decision}


def stability_gates(
    figures: dict[str, Any], max_sd: float, decision: Decision | None = None
) -> list[dict[str, Any]]:
    """The largest per-member σ of E[w] across seeds (in weight units), with its interval and
    verdict when `decision` is given."""
    if decision is not None:
        return [decision.record("max_sd", "weight")]
    return gates_of(gate_record("max_sd", "≤", max_sd, figures.get("max_sd"), "weight"))


def run_check(ctx: CheckContext, settings: StabilitySettings | None = None) -> CheckResult:
    """Seed stability on one case (default the bundled example); gate: max per-member σ of E[w] ≤
    `settings.max_sd`, decided on its interval (adding seeds up to `max_seeds`)."""
    gate = ctx.gates.stability
    settings = settings or StabilitySettings(max_sd=gate.max_sd, max_seeds=gate.max_seeds, alpha=gate.mc_alpha)
    out = Path(ctx.artifact_dir)
    catalog = catalog_of(ctx)
    case = catalog.get(ctx.case, out)
    figures = run_stability(case.config, out, settings, progress=ctx.progress, scheduler=ctx.scheduler)
    table = figures.pop("table")
    decision: Decision = figures.pop("decision")
    iv = decision.interval
    figures |= {"max_sd_interval": [iv.lower, iv.upper], "level": iv.level, "verdict": decision.verdict,
                "looks": [list(look) for look in decision.looks]}
    write_csv(out / "weights_by_seed.csv", table.rename_axis("seed").reset_index())
    plot = plot_stability(out, {**figures, "table": table}, settings.max_sd)
    messages = []
    if decision.verdict != "pass":
        messages.append(
            f"stability: member {figures['max_sd_member']} weight σ {figures['max_sd']:.4f} across {iv.n} seeds, "
            f"{iv.level:.1%} interval [{iv.lower:.4f}, {iv.upper:.4f}] "
            + ("> " if decision.verdict == "fail" else "holds the bound ")
            + f"{settings.max_sd}"
            + (f"; about {decision.needed} seeds would decide (cap {decision.cap})" if decision.needed else "")
        )
    if figures["top_agreement"] < 1.0:
        messages.append(
            "(reported) seeds disagree on the top member: "
            f"{figures['modal_top_member']} in {figures['top_agreement']:.0%}"
        )
    write_json(out / "summary.json", {"figures": figures, "settings": asdict(settings), "messages": messages})
    return CheckResult(
        name="stability",
        case=case.name,
        status=decision.verdict,
        figures=figures,
        thresholds={
            "max_sd": settings.max_sd,
            "subsample_size": settings.subsample_size,
            "n_seeds": iv.n,
            "max_seeds": settings.max_seeds,
            "mc_alpha": settings.alpha,
        },
        gates=stability_gates(figures, settings.max_sd, decision),
        messages=messages,
        plots=[plot],
        provenance={
            "seeds": figures["seeds"],
            "sampler": SAMPLER,
            "case": case.name,
            "config": str(case.config),
        },
    )
