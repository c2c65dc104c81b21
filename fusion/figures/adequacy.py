"""`residuals.png`: where and how the noise model misfits (fusion.adequacy), one row per stream.

Columns: the top-weighted member's standardized residual on the grid, the weighted mixture's
quantile residual Φ⁻¹(PIT) on the grid (the worst grid boxes outlined, red where a gate
failed), both residuals' histograms against N(0, 1), and the block PITs' ECDF minus the
uniform with ArviZ's simultaneous band. A pixel with several intervals shows their mean.
Object-oriented Matplotlib (no pyplot state).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.adequacy import STREAM_NAMES, Assessment
from fusion.data.prepared import Prepared
from fusion.figures.parts import MAP_TICKS, colorbar_beside, few_ticks

__all__ = ["plot_residuals", "residuals_png"]
_COLORBAR_TICKS = [-3, 0, 3]  # the scale's ends (values beyond are clipped) and its centre


def _pixel_mean(values: np.ndarray, pixel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    total = np.bincount(pixel, weights=values, minlength=shape[0] * shape[1])
    count = np.bincount(pixel, minlength=shape[0] * shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).reshape(shape)


def plot_residuals(prepared: Prepared, found: Assessment) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    streams = [s for s in STREAM_NAMES if np.any(prepared.stream == s)]
    layout = prepared.layout
    fig = Figure(figsize=(15, 3.6 * max(len(streams), 1)))
    axes = np.atleast_2d(fig.subplots(max(len(streams), 1), 4))
    grid = np.linspace(-4, 4, 200)
    for row, s in zip(axes, streams, strict=False):
        name = STREAM_NAMES[s]
        entry = found.record["streams"][name]
        sel = np.flatnonzero(prepared.stream == s)
        for ax, z, title in (
            (row[0], found.z_top, f"{name}: top member {found.record['top_member']}, (y − F)/σ_tot"),
            (row[1], found.z_mixture, f"{name}: mixture, Φ⁻¹(PIT)"),
        ):
            if layout is None:
                ax.text(0.5, 0.5, "no grid layout", ha="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            img = ax.imshow(_pixel_mean(z[sel], layout.pixel[sel], layout.grid_shape), cmap="RdBu_r", vmin=-3, vmax=3,
                            origin="lower", interpolation="nearest")  # fmt: skip
            ax.set_title(title, fontsize=9)
            colorbar_beside(fig, img, ax, ticks=_COLORBAR_TICKS)
            if ax is row[1]:
                for r in entry.get("regions", []):
                    (r0, r1), (c0, c1) = r["rows"], r["cols"]
                    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                           ec="red" if r["failed"] else "0.4", lw=1.5 if r["failed"] else 0.6))  # fmt: skip
        ax = row[2]
        edges = np.linspace(-4, 4, 61)
        for z, label, colour in ((found.z_top, "top member", "tab:blue"), (found.z_mixture, "mixture", "tab:orange")):
            density = np.histogram(np.clip(z[sel], -4, 4), edges, density=True)[0]
            ax.stairs(density, edges, fill=True, alpha=0.5, label=label, color=colour)
        ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
        ax.set_title(f"{name}: standardized residuals (1σ coverage {entry['coverage']['1sigma']:.2f})", fontsize=9)
        ax.legend(fontsize=7)
        ax = row[3]
        blocks = entry.get("blocks", {})
        if blocks.get("tested"):
            e = blocks["ecdf"]
            x = np.asarray(e["x"])
            ax.fill_between(x, np.asarray(e["lower"]) - x, np.asarray(e["upper"]) - x, color="0.85", step="post",
                            label="simultaneous band")  # fmt: skip
            ax.step(x, np.asarray(e["ecdf"]) - x, where="post", color="tab:red" if not entry["passed"] else "tab:blue",
                    label="block PIT ECDF − uniform")  # fmt: skip
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{name}: {blocks['n_blocks']} blocks of {blocks['width_cells']} cells "
                         f"(ℓ = {blocks['correlation_length_cells']:.1f})", fontsize=9)  # fmt: skip
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, blocks.get("why", "not tested"), ha="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle("Posterior predictive check: " + ("passed" if found.record["passed"] else "MISFIT: " + "; ".join(
        f for e in found.record["streams"].values() for f in e.get("failures", [])[:2])), fontsize=10)  # fmt: skip
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.08, top=0.88, wspace=0.3, hspace=0.35)
    few_ticks(axes[:, :2], MAP_TICKS)  # cheaper to draw, as readable (fusion.figures.parts)
    few_ticks(axes[:, 2:])
    return fig


def residuals_png(prepared: Prepared, found: Assessment) -> bytes:
    from fusion.io import png_bytes

    return png_bytes(plot_residuals(prepared, found), dpi=80)  # maps of a few hundred cells need no more


def fit_outputs(
    prepared: Prepared, theta: np.ndarray, w: np.ndarray, settings: Any, seed: int = 0,
    w_predictive: np.ndarray | None = None, pits: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """fit.json's record and residuals.png's bytes of one run (`fusion.adequacy.assess` on the thinned
    draws `theta`, the noise model's weights `w` and the calibrated `w_predictive`; `pits`, their
    `predictive_pits` when computed already): what `fusion run`'s worker computes while the main
    process projects."""
    from fusion.adequacy import assess

    found = assess(prepared, theta, w, settings, seed=seed, w_predictive=w_predictive, pits=pits)
    return found.record, residuals_png(prepared, found)


def write_fit_outputs(record: dict[str, Any], png: bytes, likelihood: dict[str, Any] | None, folder: Any) -> None:
    """`fit.json` (with the run's own correlation estimate from summary.json's `likelihood` beside
    the residuals' own) and `residuals.png` in `folder`, each atomically."""
    from pathlib import Path

    from fusion.io import write_bytes, write_json

    streams = (likelihood or {}).get("streams") or {}
    out = {**record, "likelihood_form": (likelihood or {}).get("form"), "streams": {
        name: {**entry, "blocks": {**entry.get("blocks", {}),
                                   "run_correlation_length_cells": streams.get(name, {}).get("correlation_length_cells")}}
        for name, entry in record["streams"].items()}}  # fmt: skip
    folder = Path(folder)
    write_bytes(folder / "residuals.png", png)
    write_json(folder / "fit.json", out)
