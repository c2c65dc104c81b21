"""`variogram.png` and `sensitivity.png`: the residual correlation behind `likelihood.form`, and
what each form does to the member weights and the projection (DESIGN.md, "Likelihood forms").

Both are drawn from `summary.json`'s `likelihood` and `sensitivity` alone, as `perfect_model.png`
(`fusion.figures.calibration`) is from its `calibration`: `SUMMARY_FIGURES` names what each
reads, so `fusion.worker`'s second process draws each as soon as its entries are known.
Object-oriented Matplotlib (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fusion.figures.calibration import plot_perfect_model

__all__ = [
    "SUMMARY_FIGURES", "SummaryFigure", "plot_variogram", "plot_sensitivity", "summary_png",
    "draw_likelihood_figures",
]  # fmt: skip

# fixed margins, not `tight_layout`: what it chose on the benchmark case, without the extra
# layout pass over every text (measured: 60–80 ms of each figure's 150–220 ms); the labels that set
# them are fixed strings, tick labels of a few digits and member ids `run<N>` (DESIGN.md)
_VARIOGRAM_MARGINS = {"left": 0.075, "right": 0.983, "bottom": 0.165, "top": 0.82, "wspace": 0.18}
_SENSITIVITY_MARGINS = {"left": 0.067, "right": 0.985, "bottom": 0.15, "top": 0.885, "wspace": 0.285}


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def plot_variogram(summary: dict[str, Any]):
    """Per stream: the empirical semivariogram of standardized residuals and the fitted model."""
    from matplotlib.figure import Figure

    from fusion.data.correlation import _gstools_model
    from fusion.figures.parts import few_ticks

    streams = (summary.get("likelihood") or {}).get("streams", {})
    fig = Figure(figsize=(9, 3.6))
    fig.subplots_adjust(**_VARIOGRAM_MARGINS)
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("thick", "vel"), strict=True):
        entry = streams.get(name, {})
        lags = np.asarray(entry.get("variogram", {}).get("lag_cells", []), dtype=float)
        if "correlation_length_cells" not in entry:
            _note(ax, f"{name}: no correlation estimate\n{summary.get('likelihood', {}).get('correlation_error', '')}")
            continue
        gamma = np.asarray(entry["variogram"]["gamma"], dtype=float)
        length, sill, nugget = entry["correlation_length_cells"], entry["sill"], entry["nugget"]
        h = np.linspace(0.0, max(float(lags.max()) if lags.size else 0.0, 3 * length), 200)
        model = _gstools_model(entry["model"], length, 1.5)
        fitted = np.where(h > 0, nugget + (sill - nugget) * (1.0 - model.cor(h / length)), 0.0)
        if lags.size:
            ax.plot(lags, gamma, "o", color="tab:blue", ms=4, label="empirical")
        ax.plot(h, fitted, color="tab:red", label=f"{entry['model']}, ℓ = {length:.2f} cells")
        ax.axvline(length, color="tab:red", lw=0.6, ls=":")
        ax.set_title(
            f"{name}: N = {entry['n_points']}, n_eff = {entry['n_eff_location']:.0f} (location) / "
            f"{entry['n_eff_scale']:.0f} (scale)",
            fontsize=9,
        )
        ax.set_xlabel("lag (grid cells)")
        ax.set_ylabel("semivariance of standardized residuals")
        ax.legend(fontsize=8)
    fig.suptitle(f"Residual correlation (likelihood.form: {summary.get('likelihood', {}).get('form', '?')})", fontsize=10)
    few_ticks(axes)  # cheaper to draw, as readable (fusion.figures.parts)
    return fig


def plot_sensitivity(summary: dict[str, Any]):
    """Member weights and the 5/50/95 % projection under every likelihood form (the colours of
    the axes' cycle, as the error bars')."""
    from matplotlib.figure import Figure

    sens = (summary.get("sensitivity") or {}).get("forms", {})
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(**_SENSITIVITY_MARGINS)
    ax_w, ax_p = fig.subplots(1, 2, width_ratios=[3, 2])
    ok = {f: v for f, v in sens.items() if "weights" in v}
    if not ok:
        _note(ax_w, "no sensitivity table (compat: prototype, or likelihood.sensitivity: false)")
        ax_p.set_axis_off()
        return fig
    members = list(next(iter(ok.values()))["weights"])
    x = np.arange(len(members))
    width = 0.8 / len(ok)
    for k, (form, v) in enumerate(ok.items()):
        ax_w.bar(x + k * width, [v["weights"][m] for m in members], width, facecolor=f"C{k}", label=form)
        ax_p.errorbar(
            [v["median"]], [k], xerr=[[v["median"] - v["lower"]], [v["upper"] - v["median"]]], fmt="o", capsize=4
        )
    ax_w.set_xticks(x + 0.4 - width / 2, members, rotation=90, fontsize=6)
    ax_w.set_ylabel("E_post[w] (Laplace)")
    ax_w.legend(fontsize=8)
    ax_p.set_yticks(range(len(ok)), list(ok))
    ax_p.set_xlabel("SLE (mm): median and 5–95 %")
    run_form = summary.get("likelihood", {}).get("form")
    fig.suptitle(f"Sensitivity to likelihood.form (this run: {run_form})", fontsize=10)
    return fig


class SummaryFigure(NamedTuple):
    """A figure drawn from summary.json alone: the entries it reads, and what draws it from them."""

    reads: tuple[str, ...]
    plot: Callable[[dict[str, Any]], Any]


#: the figures drawn from summary.json alone, by file (each one's entries are known at their own
#: moment of the run: `fusion.worker` begins each as soon as they are)
SUMMARY_FIGURES: dict[str, SummaryFigure] = {
    "variogram.png": SummaryFigure(("likelihood",), plot_variogram),
    "sensitivity.png": SummaryFigure(("likelihood", "sensitivity"), plot_sensitivity),
    "perfect_model.png": SummaryFigure(("calibration",), plot_perfect_model),
}


def summary_png(name: str, summary: dict[str, Any]) -> bytes:
    """One of `SUMMARY_FIGURES` as PNG bytes, from `summary`'s entries (those it lacks: a note)."""
    from fusion.io import png_bytes

    return png_bytes(SUMMARY_FIGURES[name].plot(summary))


def draw_likelihood_figures(summary: dict[str, Any], folder: str | Path) -> None:
    """`variogram.png`, `sensitivity.png` and `perfect_model.png` in `folder`, each written atomically."""
    from fusion.io import write_bytes

    for name in SUMMARY_FIGURES:
        write_bytes(Path(folder) / name, summary_png(name, summary))
