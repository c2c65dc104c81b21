"""Parity's statistical part: where the prototype sampled, FUSION's posterior means against its own.

|Δmean| ≤ k·√(mcse_fusion² + mcse_prototype²) per noise parameter and per member `w` (the MCSE
z-test, which `drift` reuses), a bound that scales with the Monte Carlo error of both runs
instead of a relative tolerance on rounded numbers; and the prototype's convergence figures,
shown beside FUSION's and never gated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import norm

from fusion.diagnostics import Thresholds, diagnose_draws, diagnose_inputs
from fusion.inference.parameters import PARAMS
from harness.cases import Case
from harness.checks.convergence import gate
from harness.checks.parity.bits import Component
from harness.gates import ParityGate

__all__ = [
    "STAT_K",
    "UNKNOWN_NO_STATS",
    "ZTest",
    "false_alarm_rate",
    "key_figures",
    "mcse_z_test",
    "posterior_moments",
    "prototype_convergence",
    "prototype_settings",
    "statistical_parity",
]

STAT_K: float = ParityGate().stat_k  # |Δmean| ≤ STAT_K · √(mcse_a² + mcse_b²); `parity: stat_k` in the harness config


def prototype_settings(case: Case, sampled: xr.DataTree) -> dict[str, Any]:
    """The prototype's sampler settings (reference `timing.json`), else the draws and chains of its posterior.

    Any settings give a valid test (the bound scales with both MCSEs); matching them keeps it as sharp
    as the prototype's run allows.
    """
    timing_path = case.file("timing.json")
    if timing_path is None:
        post = sampled["posterior"]
        return {"draws": int(post.sizes["draw"]), "chains": int(post.sizes["chain"])}
    timing = json.loads(timing_path.read_text())
    return {
        "draws": int(timing["draws"]),
        "tune": int(timing["tune"]),
        "chains": int(timing["chains"]),
        "target_accept": float(timing["target_accept"]),
        "seed": int(timing["random_seed"]),
    }


def posterior_moments(trace: xr.DataTree, member_ids: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Mean and MCSE of the mean of each noise parameter and each member's `w` (as `w[<member>]`), by label."""
    import arviz_stats as azs

    post = trace["posterior"].to_dataset()
    names = [v for v in (*PARAMS, "w") if v in post.data_vars]
    mcse = azs.mcse(trace, var_names=names, method="mean")
    mcse_ds = mcse.to_dataset() if isinstance(mcse, xr.DataTree) else mcse
    out: dict[str, tuple[float, float]] = {}
    for name in PARAMS:
        if name in post:
            out[name] = (float(post[name].mean()), float(mcse_ds[name]))
    if "w" in post:
        w, w_mcse = post["w"], mcse_ds["w"]
        member_dim = next(d for d in w.dims if d not in ("chain", "draw"))
        labels = [str(v) for v in w[member_dim].values] if "member" == member_dim else list(member_ids)
        for i, label in enumerate(labels):
            out[f"w[{label}]"] = (float(w.isel({member_dim: i}).mean()), float(w_mcse.isel({member_dim: i})))
    return out


@dataclass(frozen=True)
class ZTest:
    """One quantity of the MCSE z-test: |Δmean| ≤ k·√(mcse_a² + mcse_b²), where a is the run judged, b its reference."""

    quantity: str
    mean_a: float
    mcse_a: float
    mean_b: float
    mcse_b: float
    k: float

    @property
    def delta(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def z(self) -> float:
        """|Δ| in units of √(mcse_a² + mcse_b²): about N(0, 1) in size when both sample one posterior."""
        scale = float(np.hypot(self.mcse_a, self.mcse_b))
        return abs(self.delta) / scale if scale > 0 else (0.0 if self.delta == 0 else float("inf"))

    @property
    def tolerance(self) -> float:
        return self.k * float(np.hypot(self.mcse_a, self.mcse_b))

    @property
    def passed(self) -> bool:
        return bool(abs(self.delta) <= self.tolerance)


def mcse_z_test(
    ours: dict[str, tuple[float, float]], theirs: dict[str, tuple[float, float]], k: float = STAT_K
) -> tuple[list[ZTest], list[str]]:
    """The test statistical parity (and `drift`) use, per quantity of `theirs`: (tests, quantities `ours` lacks)."""
    tests = [ZTest(name, *ours[name], *ref, k) for name, ref in theirs.items() if name in ours]
    return tests, [name for name in theirs if name not in ours]


def false_alarm_rate(k: float, quantities: int) -> tuple[float, float]:
    """(per quantity, any of `quantities`) chance that a correct run fails the z-test at `k`."""
    per_quantity = float(2.0 * norm.sf(k))  # |Δ|/√(mcse²+mcse²) ~ N(0, 1) when both sample one posterior
    return per_quantity, float(1.0 - (1.0 - per_quantity) ** quantities)


def statistical_parity(
    trace: xr.DataTree,
    prototype: xr.DataTree,
    summary: pd.DataFrame | None,
    member_ids: tuple[str, ...],
    k: float = STAT_K,
) -> tuple[Component, pd.DataFrame]:
    """Posterior means against the prototype's: |Δ| ≤ k·√(mcse_fusion² + mcse_prototype²) per quantity.

    The prototype's means and MCSEs come from its posterior with the same estimator as FUSION's
    side (arviz_stats); a `posterior_summary.csv` of the prototype, when the case has one, gives
    the noise parameters' figures instead. `member_ids` label the prototype's positional `w`.
    """
    ours = posterior_moments(trace, member_ids)
    theirs = posterior_moments(prototype, member_ids)
    for _, row in (summary if summary is not None else pd.DataFrame()).iterrows():
        theirs[str(row["var"])] = (float(row["mean"]), float(row["mcse_mean"]))
    tests, missing = mcse_z_test(ours, theirs, k)
    messages = [f"{name}: missing from FUSION's posterior" for name in missing]
    rows = []
    for t in tests:
        rows.append(
            {
                "quantity": t.quantity,
                "fusion_mean": t.mean_a,
                "fusion_mcse": t.mcse_a,
                "prototype_mean": t.mean_b,
                "prototype_mcse": t.mcse_b,
                "delta": t.delta,
                "tolerance": t.tolerance,
                "ratio": abs(t.delta) / t.tolerance if t.tolerance > 0 else float("inf"),
                "passed": t.passed,
            }
        )
        if not t.passed:
            messages.append(
                f"{t.quantity}: |Δmean| {abs(t.delta):.4g} > {k:g}·√(mcse²+mcse²) = {t.tolerance:.4g} "
                f"(FUSION {t.mean_a:.6g} ± {t.mcse_a:.2g}, prototype {t.mean_b:.6g} ± {t.mcse_b:.2g}; "
                f"{abs(t.delta) / t.tolerance:.2f}× the bound)"
            )
    table = pd.DataFrame(rows)
    per_quantity, any_quantity = false_alarm_rate(k, len(rows))
    figures = {
        "quantities": len(rows),
        "max_ratio": float(table["ratio"].max()) if len(table) else None,
        "false_alarm_rate_per_quantity": per_quantity,
        "false_alarm_rate": any_quantity,  # any quantity, same posterior
    }
    return Component("statistical", not messages, messages, figures), table


def key_figures(d: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "r_hat_max",
        "r_hat_max_at",
        "ess_bulk_per_chain_min",
        "ess_tail_per_chain_min",
        "divergences",
        "e_bfmi_min",
    )
    return {k: d[k] for k in keys}


#: what the prototype's divergences and E-BFMI are when its trace kept no sampler statistics
UNKNOWN_NO_STATS = "unknown (no sample_stats)"


def prototype_convergence(sampled: xr.DataTree, thresholds: Thresholds) -> tuple[dict[str, Any], str]:
    """The prototype's convergence figures and its gate verdict, shown beside FUSION's (never gated).

    R-hat and ESS need only the posterior; divergences and E-BFMI need the sampler's statistics.
    A trace without `sample_stats.diverging` (written by hand, or by an older capture) still gets
    the first two, and the other two read `UNKNOWN_NO_STATS`: not zero, and not an error.
    """
    draws, diverging, energy, labels = diagnose_inputs(sampled)
    if diverging is not None:
        figures = diagnose_draws(draws, diverging, energy, labels)
        return key_figures(figures), gate(figures, thresholds)[1] or "passes"
    chains_draws = next(iter(draws.values())).shape[:2]
    # a placeholder record, so diagnose_draws computes R-hat and ESS; its divergence count is discarded
    figures = key_figures(diagnose_draws(draws, np.zeros(chains_draws, dtype=bool), None, labels))
    figures.update(divergences=UNKNOWN_NO_STATS, e_bfmi_min=UNKNOWN_NO_STATS)
    return figures, UNKNOWN_NO_STATS
