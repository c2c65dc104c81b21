"""Sampler diagnostics from `arviz_stats` and the convergence gate every run applies.

The figures are the ones the harness gates releases on (DESIGN.md, check 3): max
rank-normalised split R-hat, min bulk and tail ESS, divergences and min E-BFMI. A run that
fails the gate still writes its outputs, but warns and records the failing figures.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from fusion.errors import ConvergenceWarning
from fusion.inference.model import PARAMS

__all__ = [
    "sampler_diagnostics",
    "convergence_gate",
    "weight_stability_across_seeds",
    "WeightStability",
    "RHAT_MAX",
    "ESS_PER_CHAIN_MIN",
    "DIVERGENCES_MAX",
    "EBFMI_MIN",
]

RHAT_MAX: float = 1.01
ESS_PER_CHAIN_MIN: float = 100.0
DIVERGENCES_MAX: int = 0
EBFMI_MIN: float = 0.3


def _per_variable(result: xr.DataTree | xr.Dataset, reduce) -> dict[str, float]:
    ds = result.to_dataset() if isinstance(result, xr.DataTree) else result
    return {name: float(reduce(np.asarray(da.values, dtype=np.float64))) for name, da in ds.data_vars.items()}


def _worst(values: dict[str, float], pick) -> tuple[float, str | None]:
    """`pick` (max/min) over variables; a NaN anywhere wins, since it means the figure is undefined."""
    if not values:
        return math.nan, None
    for name, v in values.items():
        if not math.isfinite(v):
            return v, name
    name = pick(values, key=values.get)
    return values[name], name


def sampler_diagnostics(trace: xr.DataTree, var_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Max R-hat, min bulk/tail ESS, divergences and min E-BFMI over the free parameters.

    `var_names` defaults to the four noise scalars present in the posterior; the per-member
    deterministics are functions of them and add nothing but cost.
    """
    post = trace["posterior"]
    names = list(var_names) if var_names is not None else [p for p in PARAMS if p in post.data_vars]
    if not names:
        raise ValueError("posterior holds none of the variables to diagnose")
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    rhat = _per_variable(azs.rhat(trace, var_names=names, method="rank"), np.max)
    ess_bulk = _per_variable(azs.ess(trace, var_names=names, method="bulk"), np.min)
    ess_tail = _per_variable(azs.ess(trace, var_names=names, method="tail"), np.min)
    stats = trace["sample_stats"] if "sample_stats" in trace.children else None
    divergences = 0
    ebfmi_min = math.nan
    if stats is not None and "diverging" in stats.data_vars:
        divergences = int(np.asarray(stats["diverging"].values, dtype=bool).sum())
    if stats is not None and "energy" in stats.data_vars:
        ebfmi_min = float(np.min(azs.bfmi(trace).to_dataset()["energy"].values))
    r_max, r_var = _worst(rhat, max)
    eb_min, eb_var = _worst(ess_bulk, min)
    et_min, et_var = _worst(ess_tail, min)
    return {
        "r_hat_max": r_max,
        "r_hat_max_var": r_var,
        "ess_bulk_min": eb_min,
        "ess_bulk_min_var": eb_var,
        "ess_tail_min": et_min,
        "ess_tail_min_var": et_var,
        "divergences": divergences,
        "e_bfmi_min": ebfmi_min,
        "chains": chains,
        "draws": draws,
        "var_names": names,
        "per_variable": {
            n: {"r_hat": rhat[n], "ess_bulk": ess_bulk[n], "ess_tail": ess_tail[n]} for n in names
        },
    }


def convergence_gate(diagnostics: dict[str, Any], *, warn: bool = True) -> dict[str, dict[str, Any]]:
    """The failing figures, each with its value, threshold and a one-line message.

    Empty means the run passes. With `warn`, each failure is also a `ConvergenceWarning`
    naming the figure and its threshold. An undefined (NaN) figure fails.
    """
    ess_min = ESS_PER_CHAIN_MIN * int(diagnostics["chains"])
    rules = [
        ("r_hat_max", RHAT_MAX, lambda v: v <= RHAT_MAX, f"max R-hat {{v:.4f}} > {RHAT_MAX}"),
        ("ess_bulk_min", ess_min, lambda v: v >= ess_min,
         f"min bulk ESS {{v:.1f}} < {ess_min:g} (100 per chain)"),
        ("ess_tail_min", ess_min, lambda v: v >= ess_min,
         f"min tail ESS {{v:.1f}} < {ess_min:g} (100 per chain)"),
        ("divergences", DIVERGENCES_MAX, lambda v: v <= DIVERGENCES_MAX, "{v:d} divergent transitions > 0"),
        ("e_bfmi_min", EBFMI_MIN, lambda v: v >= EBFMI_MIN, f"min E-BFMI {{v:.3f}} < {EBFMI_MIN}"),
    ]
    failures: dict[str, dict[str, Any]] = {}
    for key, threshold, ok, template in rules:
        value = diagnostics[key]
        finite = isinstance(value, int) or math.isfinite(value)
        if finite and ok(value):
            continue
        var = diagnostics.get(f"{key}_var")
        message = template.format(v=value) + (f" ({var})" if var else "")
        if not finite:
            message = f"{key} is undefined (NaN)"
        failures[key] = {"value": value, "threshold": threshold, "message": message}
        if warn:
            warnings.warn(f"convergence: {message}", ConvergenceWarning, stacklevel=2)
    return failures


@dataclass(frozen=True)
class WeightStability:
    """Per-member weights of several runs side by side, aligned by member label."""

    table: pd.DataFrame  # index member_id; one column per run, then mean and sd
    top_members: tuple[str, ...]  # the largest-weight member of each run
    top_agreement: float  # fraction of runs whose top member is the most common top member

    @property
    def sd(self) -> pd.Series:
        return self.table["sd"]

    @property
    def max_sd(self) -> float:
        return float(self.table["sd"].max())


def _as_series(weights: Any, i: int) -> pd.Series:
    """Weights of one run as a Series indexed by member id (accepts the shapes FUSION produces)."""
    if isinstance(weights, pd.Series):
        s = weights.copy()
    elif isinstance(weights, pd.DataFrame):
        col = next((c for c in ("posterior_mean", "weight") if c in weights.columns), None)
        if "member_id" not in weights.columns or col is None:
            raise ValueError(f"run {i}: a table needs member_id and posterior_mean (or weight) columns")
        s = pd.Series(weights[col].to_numpy(), index=weights["member_id"].astype(str).to_numpy())
    elif isinstance(weights, xr.DataArray):
        if "member" not in weights.dims:
            raise ValueError(f"run {i}: DataArray has no 'member' dimension")
        extra = [d for d in weights.dims if d != "member"]
        s = weights.mean(extra).to_series() if extra else weights.to_series()
    elif isinstance(weights, Mapping):
        s = pd.Series(dict(weights))
    else:
        raise TypeError(f"run {i}: unsupported weights type {type(weights).__name__}")
    s.index = s.index.astype(str)
    if s.index.has_duplicates:
        raise ValueError(f"run {i}: duplicate member ids {sorted(set(s.index[s.index.duplicated()]))}")
    return s.astype(np.float64)


def weight_stability_across_seeds(weights_list: Sequence[Any]) -> WeightStability:
    """Per-member σ of the weights across runs (sample σ, ddof=1), aligned by member label.

    Each item may be a Series indexed by member id, a `weights.csv`-style table
    (member_id + posterior_mean or weight), a DataArray on `member` (other dims are
    averaged, so a posterior `w` works) or a mapping. Runs must name the same members,
    in any order; rows follow the first run's order.
    """
    if len(weights_list) < 2:
        raise ValueError("need at least two runs to measure stability")
    series = [_as_series(w, i) for i, w in enumerate(weights_list)]
    members = list(series[0].index)
    for i, s in enumerate(series[1:], start=1):
        if set(s.index) != set(members):
            only_a = sorted(set(members) - set(s.index))
            only_b = sorted(set(s.index) - set(members))
            raise ValueError(f"run {i} members differ from run 0: missing {only_a}, extra {only_b}")
    table = pd.DataFrame({f"run_{i}": s.reindex(members) for i, s in enumerate(series)})
    table.index.name = "member_id"
    values = table.to_numpy()
    table["mean"] = values.mean(axis=1)
    table["sd"] = values.std(axis=1, ddof=1)
    tops = tuple(str(s.idxmax()) for s in series)
    counts = pd.Series(tops).value_counts()
    return WeightStability(table=table, top_members=tops, top_agreement=float(counts.iloc[0] / len(tops)))
