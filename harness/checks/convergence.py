"""The convergence gate: a sampled result is only evidence if its sampler converged.

Thresholds are DESIGN.md's (check 3): max rank-normalised split R-hat ≤ 1.01, min bulk and
tail ESS ≥ 100 per chain, no divergent transition, E-BFMI ≥ 0.3 in every chain (settable in
the harness config file). Figures and verdict come from `fusion.diagnostics` (`diagnose`,
`gate`), the one convergence vocabulary `fusion run` uses too; they are re-exported here. A
failure says which figure, where (variable or chain) and by how much. A run that misses only
by less than the sampling noise of a figure is sampled longer before it may fail (`decide`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from fusion.diagnostics import GATED_VARIABLES, THRESHOLDS, Thresholds, borderline, diagnose, gate
from harness.cases import catalog_of
from harness.cases.data import CaseData, sample_case
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.report.plots import plot_convergence

__all__ = [
    "GATED_VARIABLES",
    "THRESHOLDS",
    "Decision",
    "decide",
    "diagnose",
    "gate",
    "run_check",
    "sample_trace",
]


@dataclass
class Decision:
    """A gated trace and how it was reached: each attempt's draws and failing lines."""

    trace: xr.DataTree
    figures: dict[str, Any]
    passed: bool
    messages: list[str]
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sampled_longer(self) -> bool:
        return len(self.attempts) > 1

    def note(self) -> str | None:
        """One line for the report when the check had to sample longer, else None."""
        if not self.sampled_longer:
            return None
        first = self.attempts[0]
        return (
            f"borderline at {first['draws']} draws per chain ({'; '.join(first['messages'])}); "
            f"sampled longer: {', '.join(str(a['draws']) for a in self.attempts[1:])} draws per chain → "
            + ("passes" if self.passed else "still fails")
        )


def decide(
    sample: Callable[[int], xr.DataTree],
    draws: int,
    thresholds: Thresholds = THRESHOLDS,
    var_names: Sequence[str] | None = None,
) -> Decision:
    """Gate `sample(draws)`; while every miss is borderline (within its sampling noise), double
    the draws, at most `thresholds.borderline_retries` times. A clear failure fails at once, with
    the same lines as a single-shot gate; the attempts are kept for the report."""
    attempts: list[dict[str, Any]] = []
    while True:
        trace = sample(draws)
        figures = diagnose(trace, var_names)
        passed, messages = gate(figures, thresholds)
        attempts.append({"draws": draws, "passed": passed, "messages": messages, "r_hat_max": figures["r_hat_max"]})
        if passed or len(attempts) > thresholds.borderline_retries or not borderline(figures, thresholds):
            return Decision(trace, figures, passed, messages, attempts)
        draws *= 2


def sample_trace(cfg: Any, prepared: Any) -> xr.DataTree:
    """FUSION's sampler (shared, memoised with the parity check); tests replace it to plant a bad run."""
    return sample_case(cfg, prepared)


#: Sampler settings of the gated run. DESIGN.md's defaults (500 draws × 4 chains) leave the small
#: case's tail ESS at 80–135 per chain across seeds — too close to the floor of 100 for a stable
#: gate — so the check samples 1,000 draws per chain (tail ESS 160–230 per chain measured).
SETTINGS: dict[str, Any] = {"draws": 1000, "tune": 1000, "chains": 4, "target_accept": 0.95, "seed": 42}


def _case_config(case: Any) -> Any:
    """`compat: fixed` (what users run) at the gate's sampler settings."""
    from fusion.config import load_config

    return load_config(case.config).with_updates(compat="fixed", inference=SETTINGS)


def convergence_gates(figures: dict[str, Any], limits: Thresholds) -> list[dict[str, Any]]:
    """The gated figures of a trace's diagnostics against `limits` (ESS floors per chain)."""
    return gates_of(
        gate_record("r_hat_max", "≤", limits.r_hat_max, figures.get("r_hat_max")),
        gate_record("ess_bulk_per_chain_min", "≥", limits.ess_bulk_min, figures.get("ess_bulk_per_chain_min"), "per chain"),
        gate_record("ess_tail_per_chain_min", "≥", limits.ess_tail_min, figures.get("ess_tail_per_chain_min"), "per chain"),
        gate_record("divergences", "≤", limits.divergences_max, figures.get("divergences")),
        gate_record("e_bfmi_min", "≥", limits.e_bfmi_min, figures.get("e_bfmi_min"), "every chain"),
    )


def run_check(ctx: CheckContext) -> CheckResult:
    """Sample a case with FUSION at production settings and gate the trace."""
    from fusion.config import config_hash
    from fusion.io import atomic_path

    catalog = catalog_of(ctx)
    name = ctx.case
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    case = catalog.get(name, ctx.artifact_dir)
    cfg = _case_config(case)
    data = CaseData(case, base_config=cfg)
    prepared = data.prepared_fixed
    ctx.progress(
        f"convergence[{name}]: sampling {cfg.inference.chains}×({cfg.inference.tune}+{cfg.inference.draws})"
    )
    t0 = time.perf_counter()
    limits = ctx.gates.convergence
    decision = decide(
        lambda draws: sample_trace(cfg.with_updates(inference={"draws": draws}), prepared),
        cfg.inference.draws,
        limits,
    )
    sampling_s = time.perf_counter() - t0
    trace, figures, passed, messages = decision.trace, decision.figures, decision.passed, decision.messages
    if decision.note():
        ctx.progress(f"convergence[{name}]: {decision.note()}")
    with atomic_path(ctx.artifact_dir / "trace.nc", suffix=".nc") as tmp:
        trace.to_netcdf(tmp)
    plot_convergence(figures, ctx.artifact_dir / "convergence.png", limits)
    inf = cfg.inference
    return CheckResult(
        name="convergence",
        case=name,
        status="pass" if passed else "fail",
        figures={**figures, "sampling_s": sampling_s, "attempts": decision.attempts},
        thresholds={
            "r_hat_max": f"≤ {limits.r_hat_max}",
            "ess_bulk": f"≥ {limits.ess_bulk_min:g} per chain",
            "ess_tail": f"≥ {limits.ess_tail_min:g} per chain",
            "divergences": f"≤ {limits.divergences_max}",
            "e_bfmi": f"≥ {limits.e_bfmi_min} every chain",
            "borderline": f"a miss within R-hat +{limits.borderline_r_hat}, ESS −{limits.borderline_ess:.0%}, "
            f"E-BFMI −{limits.borderline_e_bfmi} doubles the draws (≤ {limits.borderline_retries} times) before failing",
        },
        gates=convergence_gates(figures, limits),
        messages=messages + ([decision.note()] if decision.note() else []),
        plots=["convergence.png"],
        config_hash=config_hash(cfg),
        provenance={
            "config": str(case.config),
            "compat": "fixed",
            "sampler": inf.sampler,
            "seed": inf.seed,
            "draws": decision.attempts[-1]["draws"],
            "tune": inf.tune,
            "chains": inf.chains,
            "target_accept": inf.target_accept,
            "case": str(case.root),
            "inputs_sha256": case.inputs_sha256(),
            "data_warnings": data.warnings,
        },
    )
