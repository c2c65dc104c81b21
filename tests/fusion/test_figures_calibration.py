"""`fusion.figures.calibration`: perfect_model.png, drawn from summary.json's `calibration`."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg

from fusion.figures.calibration import plot_perfect_model


def _calibration(factors: list[float]) -> dict[str, Any]:
    """summary.json's `calibration` of a three-member run, its κ grid at `factors`."""
    held = [
        {"member": f"run{k}", "sle_mm": sle, "lower": sle - 10.0, "upper": sle + 10.0, "lower_unweighted": 0.0,
         "upper_unweighted": 100.0, "inside": k != 2, "members_in_play": 2.0}
        for k, sle in enumerate((20.0, 50.0, 80.0), start=1)
    ]  # fmt: skip
    grid = [{"factor": f, "coverage": 0.6, "relative_width": min(1.0, f), "members_in_play": 2.0} for f in factors]
    return {
        "method": "perfect_model", "temperature": {"thick": 0.5, "vel": 0.01}, "confident": True, "crps_skill": 0.2,
        "coverage_unweighted": 2 / 3, "lower_q": 0.05, "upper_q": 0.95, "held_out": held, "grid": grid,
    }  # fmt: skip


def test_the_factor_axis_labels_its_decades_as_plain_numbers() -> None:
    """κ's decades read 0.001 … 100, with the choice κ = 1 among them, in plain text: Matplotlib's
    default log labels (10⁻³ as mathtext) would build its mathtext parser for this one figure."""
    fig = plot_perfect_model({"calibration": _calibration([0.001, 0.01, 0.1, 1.0, 10.0, 100.0])})
    FigureCanvasAgg(fig).draw()
    ax_t = fig.axes[1]
    shown = [t.get_text() for t in ax_t.get_xticklabels() if t.get_text() and 0.001 <= t.get_position()[0] <= 100]
    assert shown == ["0.001", "0.01", "0.1", "1", "10", "100"]
    texts = [t.get_text() for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
    assert not any("$" in text for text in texts)


def test_coverage_and_relative_width_share_one_axis() -> None:
    """Both are fractions: on one y axis the unweighted width's line reads 1 and the unweighted
    coverage's its own value, where a twin axis put the two scales' 1s at different heights."""
    fig = plot_perfect_model({"calibration": _calibration([0.01, 0.1, 1.0, 10.0])})
    FigureCanvasAgg(fig).draw()
    assert len(fig.axes) == 2
    ax_t = fig.axes[1]
    lines = {line.get_label(): line for line in ax_t.get_lines()}
    drawn = {"held-out coverage", "unweighted coverage", "width / unweighted width", "unweighted width"}
    assert drawn <= set(lines)
    assert list(lines["unweighted width"].get_ydata()) == [1.0, 1.0]
    assert list(lines["unweighted coverage"].get_ydata()) == [2 / 3, 2 / 3]
    lo, hi = ax_t.get_ylim()
    assert lo < 0.0 and hi >= 1.1


def test_the_title_fits_the_figure_with_the_harness_method_name() -> None:
    """The harness draws the same figure with a long method name; its title stays on the page."""
    calibration = {**_calibration([0.1, 1.0, 10.0]), "method": "perfect_model (outer: every member held out)"}
    fig = plot_perfect_model({"calibration": calibration})
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = next(t for t in fig.texts if t.get_text() == fig.get_suptitle())
    box = title.get_window_extent(canvas.get_renderer())
    assert "outer: every member held out" in title.get_text()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
