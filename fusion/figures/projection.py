"""`projection.png`: the members' SLE weighted against unweighted, and the posterior of Σ w·SLE."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fusion.pipeline import Result

__all__ = ["plot_projection"]


def plot_projection(
    result: Result | xr.Dataset, path: str | Path | None = None, *, summary: dict[str, Any] | None = None
) -> Figure:
    """Weighted against unweighted SLE (member weights, medians, intervals) and the posterior of Σ w·SLE.

    Uses the object-oriented Matplotlib API (no pyplot state), so it is safe without a display.

    Parameters
    ----------
    result : Result or xarray.Dataset
        A run's `Result` (its projection and summary are drawn), or `project`'s Dataset.
    path : str or Path, optional
        Where to write the PNG (atomically); nothing is written when omitted.
    summary : dict, optional
        `projection_summary`'s figures; default: the result's summary, else computed here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        A `Result` made without a projection.
    """
    from matplotlib.figure import Figure

    if isinstance(result, xr.Dataset):
        projection = result
    elif result.projection is None:
        raise ValueError("the result has no projection; run with with_projection=True to plot it")
    else:
        projection, summary = result.projection, summary or result.summary
    if not summary:  # the run passes its own; `fusion.projection` (netCDF4, the config's pydantic) loads only here
        from fusion.projection import projection_summary

        summary = projection_summary(projection)
    sle = projection["sle_mm"].values
    w = projection["weight"].values / projection["weight"].values.sum()
    order = np.argsort(sle, kind="stable")
    fig = Figure(figsize=(10, 4.2))
    fig.subplots_adjust(left=0.065, right=0.985, bottom=0.12, top=0.92, wspace=0.18)
    ax_cdf, ax_mean = fig.subplots(1, 2, width_ratios=[3, 2])
    colours = {"weighted": "tab:blue", "unweighted": "tab:grey"}
    q = f"{summary['lower_q']:.0%}–{summary['upper_q']:.0%}"
    equal = np.full_like(sle, 1.0 / sle.size)
    for row, (key, weights) in enumerate((("weighted", w), ("unweighted", equal))):
        block = summary if key == "weighted" else summary["unweighted"]
        c = colours[key]
        cum = np.concatenate([[0.0], np.cumsum(weights[order])])
        xs = np.concatenate([[sle[order][0]], sle[order]])
        label = f"{key}: median {block['median']:.1f} mm, {q} [{block['lower']:.1f}, {block['upper']:.1f}]"
        ax_cdf.step(xs, cum, where="post", color=c, lw=2 if key == "weighted" else 1.2, label=label)
        y = -0.07 * (row + 1)  # interval bars under the CDF, one row per distribution
        ax_cdf.hlines(y, block["lower"], block["upper"], color=c, lw=3)
        ax_cdf.plot([block["median"]], [y], "o", color=c, ms=6)
    ax_cdf.vlines(sle[order], 0, w[order], color=colours["weighted"], lw=3, alpha=0.5, label="member weight")
    ax_cdf.axhline(0, color="k", lw=0.5)
    ax_cdf.set_xlabel("sea-level contribution (mm SLE)")
    ax_cdf.set_ylabel("cumulative weight / member weight")
    year = f" in {summary['target_year']:g}" if "target_year" in summary else ""
    ax_cdf.set_title(f"Members' SLE{year}: weighted vs unweighted (bars: median and {q})", fontsize=10)
    ax_cdf.legend(loc="upper left", fontsize=8)
    ax_cdf.set_ylim(-0.2, 1.25)
    draws = projection["weighted_mean"].values.ravel()
    # one filled outline, not a Rectangle per bin (the same bars: they touch and have no edges)
    bins = min(50, max(10, draws.size // 20))
    ax_mean.hist(draws, bins=bins, color=colours["weighted"], alpha=0.7, histtype="stepfilled")
    wm = summary["weighted_mean"]
    ax_mean.axvline(wm["median"], color="k", ls="--", lw=1, label=f"median {wm['median']:.2f} mm")
    ax_mean.axvline(wm["lower"], color="k", ls=":", lw=1, label=f"{q} [{wm['lower']:.1f}, {wm['upper']:.1f}]")
    ax_mean.axvline(wm["upper"], color="k", ls=":", lw=1)
    unweighted_mean = summary["unweighted"]["mean"]
    ax_mean.axvline(unweighted_mean, color=colours["unweighted"], lw=1.5, label="unweighted mean")
    ax_mean.set_xlabel("Σ w·SLE over posterior draws (mm)")
    ax_mean.set_title("Posterior of the weighted mean")
    ax_mean.legend(fontsize=8)
    if path is not None:
        from fusion.io import write_png

        write_png(path, fig, dpi=120)
    return fig
