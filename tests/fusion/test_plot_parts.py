"""`fusion.plot_parts`: the cheaper pieces draw what Matplotlib's own calls draw, pixel for pixel
where they replace one (bars, titles), and `drawing` leaves the process as it found it."""

from __future__ import annotations

import gc
import io

import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from fusion.io import png_bytes
from fusion.plot_parts import MAP_TICKS, bars, colorbar_beside, drawing, few_ticks


def _pixels(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _stacked(use_bars: bool) -> Figure:
    """Three series of stacked bars, one translucent, one hatched (as availability.png's), with a
    legend and a title."""
    fig = Figure(figsize=(4, 3), dpi=80)
    ax = fig.add_subplot()
    x = np.arange(4) - 0.2
    low, mid = np.array([3.0, 5.0, 0.0, 2.0]), np.array([1.0, 0.0, 2.0, 1.5])
    high = np.array([1.0, 2.0, 4.0, 0.5])
    if use_bars:
        bars(ax, x, low, 0.4, facecolor="tab:green", label="low")
        bars(ax, x, mid, 0.4, bottom=low, facecolor="tab:green", alpha=0.45, label="mid")
        bars(ax, x, high, 0.4, bottom=low + mid, facecolor="tab:red", hatch="//", label="high")
    else:
        ax.bar(x, low, 0.4, color="tab:green", label="low")
        ax.bar(x, mid, 0.4, bottom=low, color="tab:green", alpha=0.45, label="mid")
        ax.bar(x, high, 0.4, bottom=low + mid, color="tab:red", hatch="//", label="high")
    ax.set_title("stacked")
    ax.legend(loc="upper left")
    return fig


def test_bars_draw_what_axes_bar_draws() -> None:
    """Same pixels as `Axes.bar` (fill, hatch, alpha, autoscaled limits with the bottom at 0, legend)."""
    assert np.array_equal(_pixels(_stacked(True)), _pixels(_stacked(False)))


def test_bars_are_one_artist_per_series() -> None:
    fig = _stacked(True)
    assert len(fig.axes[0].collections) == 3 and not fig.axes[0].patches
    assert fig.axes[0].get_ylim()[0] == 0.0  # the bottom is a sticky edge, as for Axes.bar


def _titled() -> Figure:
    fig = Figure(figsize=(4, 3), dpi=80)
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [3, 1, 2])
    ax.set_title("a title over bottom ticks")
    return fig


def test_drawing_keeps_the_pixels_and_restores_the_process() -> None:
    """Titles at a fixed height draw where the automatic position puts them; the collector is
    off inside and on again after, Matplotlib's settings as before."""
    outside = _pixels(_titled())
    titley = mpl.rcParams["axes.titley"]
    assert gc.isenabled()
    with drawing():
        assert not gc.isenabled()
        inside = _pixels(_titled())
    assert gc.isenabled() and mpl.rcParams["axes.titley"] == titley
    assert np.array_equal(inside, outside)


def test_drawing_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with drawing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_drawing_restores_the_collector_after_an_error() -> None:
    with pytest.raises(ValueError, match="planted"), drawing():
        raise ValueError("planted")
    assert gc.isenabled()


def test_few_ticks_on_round_steps() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    ax.imshow(np.zeros((60, 80)), origin="lower")
    few_ticks(ax, MAP_TICKS)
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert shown == [0.0, 20.0, 40.0, 60.0]
    ax2 = fig.add_subplot(2, 1, 2)
    ax2.set_ylim(0.0, 0.95)
    few_ticks([ax2])
    assert np.allclose(np.diff(ax2.get_yticks()), 0.2)


def test_colorbar_beside_sits_right_of_its_map() -> None:
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    img = ax.imshow(np.arange(12.0).reshape(3, 4), vmin=-3, vmax=3)
    cbar = colorbar_beside(fig, img, ax, ticks=[-3, 0, 3])
    _pixels(fig)  # positions are final after a draw (the map's equal aspect)
    map_box, bar_box = ax.get_position(), cbar.ax.get_position()
    assert bar_box.x0 > map_box.x1 and bar_box.x1 < 1.0
    assert map_box.y0 < bar_box.y0 < bar_box.y1 < map_box.y1
    assert list(cbar.get_ticks()) == [-3, 0, 3]


def test_png_bytes_are_lossless_and_deterministic() -> None:
    fig = _stacked(True)
    first, second = png_bytes(fig, dpi=80), png_bytes(_stacked(True), dpi=80)
    assert first == second
    decoded = np.asarray(Image.open(io.BytesIO(first)).convert("RGBA"))
    assert np.array_equal(decoded, _pixels(_stacked(True)))
