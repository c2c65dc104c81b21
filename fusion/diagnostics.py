"""One convergence vocabulary: thresholds, `diagnose` and `gate`, for FUSION and its harness.

The figures are the ones the harness gates releases on (DESIGN.md, check 3): max
rank-normalised split R-hat, min bulk and tail ESS per chain, divergences and min E-BFMI.
`fusion run`, the harness's convergence check, statistical parity and SBC's per-fit gate all
compute them with `diagnose` (or `diagnose_draws` on bare arrays) and judge them with `gate`
under a `Thresholds`; only the threshold values differ between uses. A trace without a
`diverging` record is an error: zero divergences is a claim, not a default.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from fusion.errors import ConvergenceWarning
from fusion.inference.parameters import PARAMS

__all__ = [
    "Thresholds",
    "THRESHOLDS",
    "GATED_VARIABLES",
    "diagnose",
    "sampler_diagnostics",
    "SAMPLER_FIGURES",
    "diagnose_draws",
    "diagnose_inputs",
    "import_statistics",
    "failures",
    "gate",
    "convergence_gate",
    "borderline",
    "weight_stability_across_seeds",
    "weight_stability",
    "WeightStability",
]


@dataclass(frozen=True)
class Thresholds:
    """Where each convergence figure must lie; ESS floors are per chain (DESIGN.md, check 3).

    `borderline_retries`: how many times a check may double its draws when every failing figure
    misses by less than its `borderline_*` margin (see `borderline`); 0 turns that off.
    """

    r_hat_max: float = 1.01
    ess_bulk_min: float = 100.0
    ess_tail_min: float = 100.0
    divergences_max: int = 0
    e_bfmi_min: float = 0.3
    borderline_retries: int = 2
    borderline_r_hat: float = 0.005
    borderline_ess: float = 0.2
    borderline_e_bfmi: float = 0.05

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "thresholds") -> Thresholds:
        """Validated thresholds from a config mapping; unknown keys and bad values raise ValueError."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; valid: {sorted(known)}")
        out: dict[str, Any] = {}
        for key, value in values.items():
            integral = key in ("divergences_max", "borderline_retries")
            ok = isinstance(value, int) if integral else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok or not math.isfinite(value) or value < 0:
                kind = "a non-negative integer" if integral else "a non-negative number"
                raise ValueError(f"{source}: {key} must be {kind}, got {value!r}")
            out[key] = int(value) if integral else float(value)
        return cls(**out)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: DESIGN.md's release thresholds.
THRESHOLDS = Thresholds()
#: the free parameters and the member weights users consume
GATED_VARIABLES: tuple[str, ...] = (*PARAMS, "w")


def _worst(
    values: dict[str, np.ndarray], labels: dict[str, list[str]], pick: str
) -> tuple[float, str | None]:
    """Max or min over every element of every variable; NaN wins (an undefined figure must fail)."""
    best: tuple[float, str | None] = (math.nan, None)
    for name, arr in values.items():
        for v, label in zip(np.asarray(arr, dtype=np.float64).reshape(-1), labels[name], strict=False):
            if not math.isfinite(v):
                return float(v), label
            if best[1] is None or (v > best[0] if pick == "max" else v < best[0]):
                best = (float(v), label)
    return best


def _element_labels(name: str, arr: np.ndarray, labels: Mapping[str, list[str]] | None) -> list[str]:
    if labels is not None and name in labels:
        return list(labels[name])
    return [name] if arr.ndim == 2 else [f"{name}[{i}]" for i in range(int(np.prod(arr.shape[2:])))]


def diagnose_draws(
    draws: Mapping[str, np.ndarray],
    diverging: np.ndarray | None,
    energy: np.ndarray | None,
    labels: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Every gated figure of draws shaped (chain, draw, ...) per variable, and where it is worst.

    `diverging` (chain, draw) must be given: None raises, because a missing record would
    otherwise read as "no divergences". `energy` None leaves E-BFMI undefined (NaN, fails).
    """
    from arviz_stats.base import array_stats
    from arviz_stats.validate import validate_ci_prob

    if diverging is None:
        raise ValueError("the trace has no sample_stats.diverging: divergences are unknown")
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items()}
    if not arrays:
        raise ValueError("no variables to diagnose")
    first = next(iter(arrays.values()))
    chains, n_draws = int(first.shape[0]), int(first.shape[1])
    rhat, bulk, tail = {}, {}, {}
    constant: list[str] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, arr in arrays.items():
            flat = np.moveaxis(arr.reshape(chains, n_draws, -1), -1, 0)  # (elements, chain, draw)
            rhat[name] = np.atleast_1d(np.asarray(array_stats.rhat(flat, method="rank"), dtype=float))
            # one value in every draw of every chain (a weight pinned at 1 or 0): the chains agree
            # exactly, so R-hat's 0/0 is 1, not an undefined figure (chains stuck apart stay huge)
            same = np.all(flat == flat[:, :1, :1], axis=(1, 2))
            rhat[name][same] = 1.0
            constant += [label for label, c in zip(_element_labels(name, arr, labels), same, strict=True) if c]
            bulk[name] = np.atleast_1d(np.asarray(array_stats.ess(flat, method="bulk"), dtype=float))
            tail[name] = np.atleast_1d(
                np.asarray(array_stats.ess(flat, method="tail", prob=validate_ci_prob(None)), dtype=float)
            )  # the tail probability `azs.ess` defaults to
        if energy is None:
            ebfmi = np.array([math.nan])
        else:
            ebfmi = np.atleast_1d(np.asarray(array_stats.bfmi(np.asarray(energy, dtype=float)), dtype=float))
    if labels is None:
        labels = {n: _element_labels(n, a, None) for n, a in arrays.items()}
    r_max, r_where = _worst(rhat, dict(labels), "max")
    b_min, b_where = _worst(bulk, dict(labels), "min")
    t_min, t_where = _worst(tail, dict(labels), "min")
    e_chain = int(np.nanargmin(ebfmi)) if np.isfinite(ebfmi).any() else 0
    divergences = int(np.asarray(diverging, dtype=bool).sum())
    return {
        "r_hat_max": r_max,
        "ess_bulk_per_chain_min": b_min / chains,
        "ess_tail_per_chain_min": t_min / chains,
        "divergences": divergences,
        "e_bfmi_min": float(ebfmi[e_chain]) if np.isfinite(ebfmi).all() else math.nan,
        "r_hat_max_at": r_where,
        "ess_bulk_min": b_min,
        "ess_bulk_min_at": b_where,
        "ess_tail_min": t_min,
        "ess_tail_min_at": t_where,
        "transitions": chains * n_draws,
        "e_bfmi_min_chain": e_chain,
        "e_bfmi": [float(v) for v in ebfmi],
        "chains": chains,
        "draws": n_draws,
        "var_names": list(arrays),
        "constant": constant,  # elements with one value in every draw (R-hat taken as 1)
        "per_variable": {
            n: {
                "labels": list(labels[n]),
                "r_hat": rhat[n].tolist(),
                "ess_bulk": bulk[n].tolist(),
                "ess_tail": tail[n].tolist(),
            }
            for n in arrays
        },
    }


def _labels(posterior: Any, names: Sequence[str]) -> dict[str, list[str]]:
    """`w[run3]` rather than `w[2]`: element labels from the coordinate of each variable's non-sample dim."""
    out: dict[str, list[str]] = {}
    for name in names:
        da = posterior[name]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        if not dims:
            out[name] = [name]
            continue
        coord = da[dims[0]].values if dims[0] in da.coords else np.arange(da.sizes[dims[0]])
        out[name] = (
            [f"{name}[{v}]" for v in coord]
            if len(dims) == 1
            else [f"{name}[{i}]" for i in range(int(np.prod([da.sizes[d] for d in dims])))]
        )
    return out


def diagnose(trace: xr.DataTree, var_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Every gated figure of `trace`, with the variable or chain where it is worst.

    Parameters
    ----------
    trace : xarray.DataTree
        A trace with `posterior` (and `sample_stats` for divergences and E-BFMI).
    var_names : sequence of str, optional
        Default: FUSION's four noise parameters and `w`; for any other model, all its variables.

    Returns
    -------
    dict
        Worst R-hat, smallest bulk and tail ESS per chain, divergences, E-BFMI per chain, each
        with where it is worst.
    """
    return diagnose_draws(*diagnose_inputs(trace, var_names))


#: `sampler_diagnostics`' figures: the worst of each and where it is worst
SAMPLER_FIGURES: tuple[str, ...] = (
    "r_hat_max", "r_hat_max_at", "ess_bulk_min", "ess_bulk_min_at", "ess_tail_min", "ess_tail_min_at",
    "divergences",
)  # fmt: skip


def sampler_diagnostics(trace: xr.DataTree, var_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The sampler's headline figures, as ice-fusion reports them: `diagnose`, cut to four.

    Parameters
    ----------
    trace : xarray.DataTree
        A trace with `posterior` and `sample_stats` (`diverging`) groups.
    var_names : sequence of str, optional
        Posterior variables to judge; default: FUSION's noise parameters and `w` (for any
        other model, all its variables). A name the posterior lacks is an error.

    Returns
    -------
    dict
        `r_hat_max` (worst rank-normalised split R-hat), `ess_bulk_min` and `ess_tail_min`
        (smallest ESS over all chains), `divergences` (count), and for the first three the
        element where they are worst (`*_at`, e.g. `"w[run3]"`). `diagnose` gives the rest
        (per-chain ESS, E-BFMI, per-variable tables).

    Raises
    ------
    ValueError
        If a name in `var_names` is not in the posterior, or the trace has no `diverging` record.
    """
    if var_names is not None:
        missing = [v for v in var_names if v not in trace["posterior"].data_vars]
        if missing:
            raise ValueError(f"the posterior has no variable(s) {missing}; it holds {list(trace['posterior'].data_vars)}")
    figures = diagnose(trace, var_names)
    return {key: figures[key] for key in SAMPLER_FIGURES}


def diagnose_inputs(trace: xr.DataTree, var_names: Sequence[str] | None = None) -> tuple[
    dict[str, np.ndarray], np.ndarray | None, np.ndarray | None, dict[str, list[str]]
]:
    """`diagnose_draws`' arguments for `trace` (see `diagnose`): plain arrays and labels, small
    enough to hand to another process (`fusion.worker.RunWorker.diagnose`)."""
    post = trace["posterior"]
    if var_names is None:
        names = [v for v in GATED_VARIABLES if v in post.data_vars] or [str(v) for v in post.data_vars]
    else:
        names = [v for v in var_names if v in post.data_vars]
    if not names:
        raise ValueError(f"the posterior holds none of {list(var_names or GATED_VARIABLES)}")
    stats = trace["sample_stats"].to_dataset() if "sample_stats" in trace.children else xr.Dataset()
    draws = {n: post[n].transpose("chain", "draw", ...).values for n in names}
    return (
        draws,
        stats["diverging"].values if "diverging" in stats else None,
        stats["energy"].transpose("chain", "draw").values if "energy" in stats else None,
        _labels(post, names),
    )


def import_statistics() -> None:
    """What `diagnose_draws` imports: ArviZ's statistics load all of `arviz_stats` and SciPy's
    `stats` with it, about 0.5 s (`fusion run`'s figure worker pays it while the chains sample)."""
    import arviz_stats.base  # noqa: F401
    import arviz_stats.validate  # noqa: F401


def failures(figures: Mapping[str, Any], thresholds: Thresholds = THRESHOLDS) -> dict[str, dict[str, Any]]:
    """The failing figures keyed by threshold name: value, threshold and a one-line message
    (which figure, by how much, where). An undefined (NaN) figure fails."""
    t = thresholds
    out: dict[str, dict[str, Any]] = {}

    def bad(value: float, ok: bool) -> bool:
        return not math.isfinite(value) or not ok

    r = figures["r_hat_max"]
    if bad(r, r <= t.r_hat_max):
        out["r_hat_max"] = {
            "value": r,
            "threshold": t.r_hat_max,
            "message": f"max R-hat {r:.4f} > {t.r_hat_max} (over by {r - t.r_hat_max:.4f}) at {figures['r_hat_max_at']}",
        }
    for kind in ("bulk", "tail"):
        per_chain = figures[f"ess_{kind}_per_chain_min"]
        floor = getattr(t, f"ess_{kind}_min")
        if bad(per_chain, per_chain >= floor):
            out[f"ess_{kind}_min"] = {
                "value": per_chain,
                "threshold": floor,
                "message": f"min {kind} ESS {per_chain:.1f} per chain < {floor:g} (short by {floor - per_chain:.1f}; "
                f"{figures[f'ess_{kind}_min']:.1f} over {figures['chains']} chains) at {figures[f'ess_{kind}_min_at']}",
            }
    d = figures["divergences"]
    if d > t.divergences_max:
        out["divergences_max"] = {
            "value": d,
            "threshold": t.divergences_max,
            "message": f"{d} divergent transitions > {t.divergences_max:g} "
            f"({100 * d / max(figures['transitions'], 1):.2f}% of {figures['transitions']} draws)",
        }
    e = figures["e_bfmi_min"]
    if bad(e, e >= t.e_bfmi_min):
        out["e_bfmi_min"] = {
            "value": e,
            "threshold": t.e_bfmi_min,
            "message": f"min E-BFMI {e:.3f} < {t.e_bfmi_min} (short by {t.e_bfmi_min - e:.3f}) "
            f"in chain {figures['e_bfmi_min_chain']}",
        }
    return out


def gate(figures: Mapping[str, Any], thresholds: Thresholds | None = None) -> tuple[bool, list[str]]:
    """Pass/fail and one line per failing figure: value, threshold, by how much, where.

    Parameters
    ----------
    figures : mapping
        `diagnose`'s result.
    thresholds : Thresholds, optional
        The bounds (default: DESIGN.md's, `fusion.diagnostics.THRESHOLDS`).

    Returns
    -------
    passed : bool
        Every figure within its bound.
    messages : list of str
        One line per failing figure.
    """
    failed = failures(figures, thresholds or THRESHOLDS)
    return not failed, [f["message"] for f in failed.values()]


def convergence_gate(
    figures: Mapping[str, Any], thresholds: Thresholds | None = None, *, warn: bool = True
) -> dict[str, dict[str, Any]]:
    """`failures`, each also raised as a `ConvergenceWarning` when `warn` (what `fusion run` does)."""
    failed = failures(figures, thresholds or THRESHOLDS)
    if warn:
        for f in failed.values():
            warnings.warn(f"convergence: {f['message']}", ConvergenceWarning, stacklevel=2)
    return failed


def borderline(figures: Mapping[str, Any], thresholds: Thresholds | None = None) -> bool:
    """True when the run fails, but only by less than the sampling noise of the failing figures.

    Each miss must be within its margin: R-hat over by ≤ `borderline_r_hat` (R-hat of a converged
    4 × 1,000-draw run scatters by a few thousandths between seeds), an ESS short by ≤
    `borderline_ess` of its floor (ESS estimates carry about that much relative noise), E-BFMI
    short by ≤ `borderline_e_bfmi`. A divergence or an undefined figure is never borderline.
    """
    t = thresholds or THRESHOLDS
    failed = failures(figures, t)
    if not failed:
        return False
    for key, f in failed.items():
        value, limit = float(f["value"]), float(f["threshold"])
        if not math.isfinite(value):
            return False
        if key == "r_hat_max" and value - limit > t.borderline_r_hat:
            return False
        if key.startswith("ess_") and limit - value > t.borderline_ess * limit:
            return False
        if key == "e_bfmi_min" and limit - value > t.borderline_e_bfmi:
            return False
        if key == "divergences_max":
            return False
    return True


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

    @property
    def member_sd(self) -> xr.DataArray:
        """The σ column as a DataArray on `member` (`weight_stability_across_seeds`' result)."""
        sd = self.table["sd"]
        return xr.DataArray(
            sd.to_numpy(), dims=("member",), coords={"member": [str(m) for m in sd.index]},
            name="weight_sd", attrs={"ddof": 1, "runs": len(self.top_members)},
        )


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


def weight_stability(weights_list: Sequence[Any]) -> WeightStability:
    """Per-member weights of several runs side by side, with their σ and the runs' top members.

    Parameters
    ----------
    weights_list : sequence
        Two or more runs' weights. Each may be a Series indexed by member id, a
        `weights.csv`-style table (`member_id` + `posterior_mean` or `weight`), a
        DataArray on `member` (other dims are averaged, so a posterior `w` works) or a
        mapping. Runs must name the same members, in any order; rows follow the first run's order.

    Returns
    -------
    WeightStability
        The table (one column per run, then `mean` and `sd`: sample σ, ddof=1), each run's
        largest-weight member and how often the runs agree on it.
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


def weight_stability_across_seeds(weights_list: Sequence[Any]) -> xr.DataArray:
    """Per-member σ of the weights across runs (sample σ, ddof=1), aligned by member label.

    Parameters
    ----------
    weights_list : sequence
        Two or more runs' weights, in any of the forms `weight_stability` takes.

    Returns
    -------
    xarray.DataArray
        `weight_sd` on `member` (the first run's order); `weight_stability` gives the whole
        table and the runs' top members.
    """
    return weight_stability(weights_list).member_sd
