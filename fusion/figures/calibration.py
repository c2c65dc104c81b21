"""`perfect_model.png`: the inner perfect-model test behind the run's member temperatures.

Left: every member in turn held out as the truth, its 2100 SLE against the weighted range the
other members give at the chosen stream temperatures (and, dashed, the unweighted ensemble's
range), sorted by SLE, so a glaciologist sees which members the weighting fails to cover and how
much narrower it is. Right: the held-out coverage and the relative width as the chosen
temperatures are made sharper or softer by a common factor κ (κ = 1 the choice, marked), the
unweighted ensemble's coverage and width dashed; both are fractions, so they share one axis
(the unweighted width reads 1 where it is drawn). Drawn from summary.json's `calibration` alone
(fusion.inference.calibration), in the run's second process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["calibration_outputs", "plot_perfect_model"]

_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.2, "top": 0.78, "wspace": 0.2}


def _temperatures(cal: dict[str, Any]) -> str:
    lam = cal.get("temperature") or {}
    return ", ".join(f"λ_{name} = {value:.3g}" for name, value in lam.items())


def _factor_label(value: float, _: int) -> str:
    """κ's decades as the numbers they are (0.01, 0.1, 1, 10): κ = 1 is the choice, read at a
    glance, and plain text needs no mathtext (10⁻² would: 0.25 s of CPU to build its parser)."""
    return f"{value:g}"


def plot_perfect_model(summary: dict[str, Any]):
    """The figure of summary.json's `calibration` (a note where the run has none)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullLocator

    cal = summary.get("calibration")
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(**_MARGINS)
    ax_m, ax_t = fig.subplots(1, 2, width_ratios=[3, 2])
    if not cal or not cal.get("held_out"):
        for ax in (ax_m, ax_t):
            ax.set_axis_off()
        reason = "compat: prototype, likelihood.calibration: off, or no projection" if not cal else cal.get("message")
        ax_m.text(0.5, 0.5, f"no perfect-model calibration ({reason})", ha="center", va="center",
                  transform=ax_m.transAxes)  # fmt: skip
        return fig
    held = sorted(cal["held_out"], key=lambda r: r["sle_mm"])
    x = np.arange(len(held))
    sle = np.array([r["sle_mm"] for r in held])
    lo, hi = np.array([r["lower"] for r in held]), np.array([r["upper"] for r in held])
    lo0, hi0 = np.array([r["lower_unweighted"] for r in held]), np.array([r["upper_unweighted"] for r in held])
    inside = np.array([r["inside"] for r in held])
    ax_m.vlines(x, lo0, hi0, colors="0.6", linestyles="dashed", lw=1, label="unweighted range")
    ax_m.vlines(x, lo, hi, colors="tab:blue", lw=3, alpha=0.6, label=f"weighted range ({_temperatures(cal)})")
    ax_m.plot(x[inside], sle[inside], "o", color="black", ms=4, label="held-out member: inside")
    ax_m.plot(x[~inside], sle[~inside], "x", color="tab:red", ms=6, mew=2, label="outside")
    ax_m.set_xticks(x, [r["member"] for r in held], rotation=90, fontsize=6)
    ax_m.set_ylabel("SLE in 2100 (mm)")
    top, bottom = float(max(sle.max(), hi0.max())), float(min(sle.min(), lo0.min()))
    ax_m.set_ylim(bottom - 0.05 * (top - bottom), top + 0.45 * (top - bottom))  # room for the legend
    q = f"{cal['lower_q']:.0%}–{cal['upper_q']:.0%}"
    ax_m.set_title(
        f"Each member held out as the truth:\n{int(inside.sum())}/{len(held)} inside the weighted {q} "
        f"(unweighted {round(cal['coverage_unweighted'] * len(held))}/{len(held)})",
        fontsize=9,
    )
    ax_m.legend(fontsize=7, loc="upper left")

    grid = sorted(cal.get("grid", []), key=lambda r: r["factor"])
    if grid:
        lam = np.array([r["factor"] for r in grid])
        ax_t.semilogx(lam, [r["coverage"] for r in grid], "o-", color="tab:blue", ms=3, label="held-out coverage")
        ax_t.axhline(cal["coverage_unweighted"], color="tab:blue", ls="--", lw=1, label="unweighted coverage")
        ax_t.semilogx(lam, [r["relative_width"] for r in grid], "s-", color="tab:orange", ms=3,
                      label="width / unweighted width")  # fmt: skip
        ax_t.axhline(1.0, color="tab:orange", ls="--", lw=1, label="unweighted width")
        ax_t.set_ylim(-0.02, max(1.1, max(r["relative_width"] for r in grid) * 1.05))
        ax_t.set_xlabel("κ × the chosen temperatures (each at most 1)")
        ax_t.set_ylabel("held-out coverage; relative width")
        ax_t.xaxis.set_major_formatter(FuncFormatter(_factor_label))
        ax_t.xaxis.set_minor_locator(NullLocator())  # the grid's markers show its steps
        ax_t.axvline(1.0, color="black", lw=1)
        ax_t.legend(fontsize=7, loc="lower left")
    skill = cal.get("crps_skill")
    verdict = "confident" if cal.get("confident") else "not confident"
    fig.suptitle(  # two lines: the harness's method name ("… (outer: every member held out)") is long
        f"Perfect-model calibration ({cal['method']})\n{_temperatures(cal)}, {verdict}"
        + (f", CRPS skill {skill:+.2f} vs unweighted" if skill is not None else ""),
        fontsize=10,
    )
    return fig


def calibration_outputs(calibration: Any, sle: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """summary.json's `calibration` (`fusion.inference.calibration.calibration_record`: its CRPS
    needs ArviZ's statistics) and `perfect_model.png`'s bytes drawn from it: `fusion run`'s worker
    computes both as soon as the temperatures are chosen, while the main process computes the
    predictive check's PITs."""
    from fusion.inference.calibration import calibration_record
    from fusion.io import png_bytes

    record = calibration_record(calibration, sle)
    return record, png_bytes(plot_perfect_model({"calibration": record}))  # as `summary_png` draws it
