"""Every figure the checks draw, in one place: each function reads the results it is given and
writes one PNG through `fusion.io.write_png`.

Figures are `matplotlib.figure.Figure` objects, never pyplot state, so drawing is safe in
worker processes and threads and leaves nothing open. Matplotlib is imported inside each
function: a check that writes no plot does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.io import write_png

if TYPE_CHECKING:
    import pandas as pd

    from fusion.diagnostics import Thresholds

__all__ = [
    "plot_agreement",
    "plot_convergence",
    "plot_coverage",
    "plot_impact",
    "plot_sbc",
    "plot_stability",
    "plot_statistical_parity",
]


def plot_agreement(figures: dict[str, Any], path: Path) -> Path:
    """Laplace beside NUTS: member weights, noise parameters and the weighted projection."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_w, ax_p, ax_proj = fig.subplots(1, 3)
    members = figures["members"]
    y = np.arange(len(members))
    for off, method, colour in ((-0.15, "nuts", "tab:blue"), (0.15, "laplace", "tab:orange")):
        mean = [figures["weights"][m][f"{method}_mean"] for m in members]
        sd = [figures["weights"][m][f"{method}_sd"] for m in members]
        ax_w.errorbar(mean, y + off, xerr=sd, fmt="o", color=colour, label=method)
    ax_w.set_yticks(y, members)
    ax_w.set_xlabel("member weight (mean ± 1 sd)")
    ratio = ("every weight pinned" if figures["sd_ratio_min"] is None
             else f"sd ratio [{figures['sd_ratio_min']:.2f}, {figures['sd_ratio_max']:.2f}]")
    ax_w.set_title(f"weights: max shift {figures['max_weight_shift_sd']:.2f} sd, {ratio}", fontsize=9)
    ax_w.legend(fontsize=8)
    params = list(figures["noise_parameters"])
    yp = np.arange(len(params))
    for off, method, colour in ((-0.15, "nuts", "tab:blue"), (0.15, "laplace", "tab:orange")):
        vals = figures["noise_parameters"]
        ax_p.errorbar([vals[p][f"{method}_mean"] for p in params], yp + off,
                      xerr=[vals[p][f"{method}_sd"] for p in params], fmt="o", color=colour, label=method)
    ax_p.set_yticks(yp, params)
    ax_p.set_xscale("log")
    ax_p.set_title(f"noise parameters; PSIS k̂ {figures['pareto_k']:.2f}", fontsize=9)
    if "_wm" in figures:
        wm_n, wm_l = figures["_wm"]
        bins = np.linspace(min(wm_n.min(), wm_l.min()), max(wm_n.max(), wm_l.max()), 40)
        ax_proj.hist(wm_n, bins=bins, alpha=0.6, label="nuts", color="tab:blue")
        ax_proj.hist(wm_l, bins=bins, alpha=0.6, label="laplace", color="tab:orange")
        ax_proj.set_xlabel("Σ w·SLE (mm)")
        ax_proj.set_title(f"projection: median shift {figures['projection']['weighted_mean_shift_sd']:.2f} sd", fontsize=9)
        ax_proj.legend(fontsize=8)
    else:
        ax_proj.text(0.5, 0.5, "no projection inputs in this case", ha="center", va="center")
        ax_proj.set_axis_off()
    return write_png(path, fig)


def plot_convergence(figures: dict[str, Any], path: Path, t: Thresholds) -> Path:
    """R-hat, ESS per chain and E-BFMI of one trace against the gate's limits `t`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax_r, ax_e, ax_b = fig.subplots(1, 3)
    labels, rhat, bulk, tail = [], [], [], []
    for vals in figures["per_variable"].values():
        labels += vals["labels"]
        rhat += vals["r_hat"]
        bulk += [b / figures["chains"] for b in vals["ess_bulk"]]
        tail += [t / figures["chains"] for t in vals["ess_tail"]]
    y = np.arange(len(labels))
    ax_r.barh(y, rhat, color="tab:blue")
    ax_r.axvline(t.r_hat_max, color="tab:red", ls="--")
    finite = [r for r in rhat if np.isfinite(r)]  # none: no free quantity, or none with an R-hat
    ax_r.set_xlim(min([0.995, *(r - 0.002 for r in finite)]), max([1.02, *(r + 0.002 for r in finite)]))
    if not labels:
        for ax in (ax_r, ax_e):
            ax.text(0.5, 0.5, "no variables in the trace", ha="center", va="center", transform=ax.transAxes)
    ax_r.set_yticks(y, labels)
    ax_r.set_title("R-hat (rank)")
    ax_e.barh(y - 0.2, bulk, 0.4, label="bulk")
    ax_e.barh(y + 0.2, tail, 0.4, label="tail")
    ax_e.axvline(t.ess_bulk_min, color="tab:red", ls="--")
    ax_e.set_yticks(y, [""] * len(y))
    ax_e.set_title("ESS per chain")
    ax_e.legend()
    ax_b.bar(np.arange(len(figures["e_bfmi"])), figures["e_bfmi"], color="tab:green")
    ax_b.axhline(t.e_bfmi_min, color="tab:red", ls="--")
    ax_b.set_xlabel("chain")
    ax_b.set_title(f"E-BFMI; divergences: {figures['divergences']}")
    return write_png(path, fig)


def plot_coverage(
    folder: Path,
    results: dict[str, dict[str, Any]],
    ks: Sequence[float],
    nominal: Callable[[float | np.ndarray], np.ndarray],
) -> str:
    """Empirical against nominal coverage of held-out points at the ±kσ thresholds `ks`, per regime."""
    from matplotlib.figure import Figure

    ks = np.asarray(ks)
    nom = nominal(ks)
    fig = Figure(figsize=(13, 4.2))
    axes = fig.subplots(1, 3)
    for ax, setting, title in zip(
        axes[:2], ("generative", "physical"), ("(a) generative form", "(b) physical ensemble, mixture")
    ):
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
        for j, (name, s) in enumerate(results[setting]["regimes"].items()):
            ax.plot(
                nom,
                [s["curve"][str(k)] for k in ks],
                marker="o",
                ms=3,
                color=f"C{j}",
                label=f"{name} (err {s['calibration_error']:.3f})",
            )
        for k, ls in ((1.0, ":"), (2.0, ":")):
            ax.axvline(float(nominal(k)), color="0.7", ls=ls, lw=0.8)
        ax.set_xlabel("nominal coverage (0.5σ … 2.5σ)")
        ax.set_ylabel("empirical coverage of held-out points")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[2]
    ax.axhline(0, color="0.5", lw=0.8)
    for j, (setting, res) in enumerate(results.items()):
        for r, (name, s) in enumerate(res["regimes"].items()):
            rec = next(x for x in res["records"] if x["index"] == s["worst_replicate"])["regimes"][name]
            emp = np.asarray(rec["covered"]) / rec["n_held"]
            ax.plot(
                nom,
                emp - nom,
                color=f"C{r}",
                ls="-" if setting == "generative" else "--",
                lw=1,
                label=f"{setting[:4]}/{name} #{s['worst_replicate']}",
            )
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical − nominal (worst replicate)")
    ax.set_title("worst case per regime (solid: (a), dashed: (b))", fontsize=10)
    ax.legend(fontsize=6)
    fig.tight_layout()
    name = "coverage_calibration.png"
    write_png(folder / name, fig, dpi=90)
    return name


def plot_impact(weights: pd.DataFrame, sle: pd.DataFrame | None, path: Path) -> Path:
    """Member weights side by side under both compats, and the SLE summary if there is one."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10 if sle is not None else 6, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if sle is not None else 1, squeeze=False)[0]
    x = np.arange(len(weights))
    axes[0].bar(x - 0.2, weights["weight_prototype"], 0.4, label="compat: prototype")
    axes[0].bar(x + 0.2, weights["weight_fixed"], 0.4, label="compat: fixed")
    axes[0].set_xticks(x, weights["member_id"], rotation=45 if len(x) > 8 else 0)
    axes[0].set_ylabel("plug-in weight")
    axes[0].set_title("Member weights, same posterior")
    axes[0].legend()
    if sle is not None:
        ax = axes[1]
        for i, label in enumerate(("prototype", "fixed")):
            col = sle.set_index("quantity")[label]
            lower = col[next(q for q in col.index if q.startswith("lower"))]
            upper = col[next(q for q in col.index if q.startswith("upper"))]
            ax.errorbar(
                [col["median_mm"]],
                [i],
                xerr=[[col["median_mm"] - lower], [upper - col["median_mm"]]],
                fmt="o",
                capsize=5,
            )
        ax.set_yticks([0, 1], ["compat: prototype", "compat: fixed"])
        ax.set_xlabel("weighted SLE 2100 (mm): median and interval")
        ax.set_title("Projection")
    return write_png(path, fig)


def plot_statistical_parity(table: pd.DataFrame, path: Path, k: float) -> Path:
    """Each quantity's Δmean in units of its tolerance k·√(mcse_fusion² + mcse_prototype²)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.35 * len(table) + 1.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))
    ratio = table["delta"] / table["tolerance"]
    ax.barh(y, ratio, color=["tab:green" if p else "tab:red" for p in table["passed"]])
    ax.axvline(-1, color="k", ls="--", lw=1)
    ax.axvline(1, color="k", ls="--", lw=1)
    ax.set_yticks(y, table["quantity"])
    ax.set_xlabel(f"Δmean / ({k:g}·√(mcse_fusion² + mcse_prototype²))")
    ax.set_title("Statistical parity: FUSION vs prototype posterior means")
    return write_png(path, fig)


def plot_sbc(
    folder: Path,
    label: str,
    pit: np.ndarray,
    rejected: Sequence[bool],
    quantities: Sequence[str],
    bins: int,
    band: tuple[np.ndarray, np.ndarray, np.ndarray],
    band_level: float,
) -> list[str]:
    """Rank histograms and ECDF differences of one SBC form: normalised ranks `pit` (n, Q), which
    quantities the test rejected, and the simultaneous ECDF band (x, lower, upper) at `band_level`."""
    from arviz_stats.ecdf_utils import compute_ecdf
    from matplotlib.figure import Figure
    from scipy import stats

    from harness.sim.ranks import rank_counts

    n, q = pit.shape
    tag = label.replace("/", "_")
    written = []

    fig = Figure(figsize=(3.2 * q, 3.0))
    axes = fig.subplots(1, q, sharey=True)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
    for j, ax in enumerate(np.atleast_1d(axes)):
        ax.axhspan(lo, hi, color="0.85", label="99% band per bin")
        ax.axhline(n / bins, color="0.4", lw=1)
        ax.bar(np.arange(bins), rank_counts(pit[:, j], bins), width=0.9, color="C3" if rejected[j] else "C0")
        ax.set_title(quantities[j], fontsize=9)
        ax.set_xlabel("normalised rank bin", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("replicates")
    fig.suptitle(f"SBC rank histograms: {label} ({n} fits)", fontsize=10)
    fig.tight_layout()
    name = f"rank_hist_{tag}.png"
    write_png(folder / name, fig, dpi=90)
    written.append(name)

    x, lower, upper = band

    fig = Figure(figsize=(3.2 * q, 3.0))
    axes = fig.subplots(1, q)
    for j, ax in enumerate(np.atleast_1d(axes)):
        ecdf = compute_ecdf(pit[:, j], x)
        ax.fill_between(
            x,
            lower - x,
            upper - x,
            step="post",
            color="0.85",
            label=f"{band_level:.4g} simultaneous band",
        )
        ax.step(
            x,
            ecdf - x,
            where="post",
            color="C3" if rejected[j] else "C0",
        )
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_title(quantities[j], fontsize=9)
        ax.set_xlabel("normalised rank", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("ECDF − uniform CDF")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SBC ECDF difference: {label}", fontsize=10)
    fig.tight_layout()
    name = f"ecdf_diff_{tag}.png"
    write_png(folder / name, fig, dpi=90)
    written.append(name)
    return written


def plot_stability(folder: Path, figures: Mapping[str, Any], threshold: float) -> str:
    """E[w] per member across subsample seeds, with the mean ± σ the gate compares to `threshold`."""
    from matplotlib.figure import Figure

    table: pd.DataFrame = figures["table"]
    members = list(table.columns)
    x = np.arange(len(members))
    fig = Figure(figsize=(max(5, 0.9 * len(members) + 2), 3.8))
    ax = fig.subplots()
    step = min(0.06, 0.5 / len(table))  # the seeds side by side within a member's slot, however many
    for j, (seed, row) in enumerate(table.iterrows()):
        ax.scatter(
            x + (j - len(table) / 2) * step, row.values, s=14, color=f"C{j % 10}",
            label=f"seed {seed}" if len(table) <= 10 else None,
        )
    mean = table.mean(axis=0).values
    sd = np.array([figures["sd"][m] for m in members])
    ax.errorbar(x + 0.35, mean, yerr=sd, fmt="s", color="k", ms=4, capsize=3, label="mean ± σ")
    top = figures["modal_top_member"]
    ax.set_xticks(x, [f"{m}*" if m == top else m for m in members])
    ax.set_ylabel("posterior-mean weight E[w]")
    ax.set_title(
        f"E[w] across {len(table)} subsample seeds: max σ {figures['max_sd']:.4f} "
        + (f"[{figures['max_sd_interval'][0]:.4f}, {figures['max_sd_interval'][1]:.4f}] "
           if "max_sd_interval" in figures else "")
        + f"({figures['max_sd_member']}; gate {threshold}"
        + (f": {figures['verdict'].upper()}" if "verdict" in figures else "")
        + f")\ntop member {top} in {figures['top_agreement']:.0%} of seeds",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    name = "seed_stability.png"
    write_png(folder / name, fig, dpi=90)
    return name
