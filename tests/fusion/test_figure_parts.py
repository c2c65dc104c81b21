"""`fusion.figures.parts`: few ticks on round steps, colour bars beside their maps, and the run's
PNG bytes lossless and deterministic."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from fusion.io import png_bytes
from fusion.figures.parts import MAP_TICKS, colorbar_beside, few_ticks


def _pixels(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _stacked() -> Figure:
    """Three series of stacked bars, one translucent, one hatched (as availability.png's), with a
    legend and a title."""
    fig = Figure(figsize=(4, 3), dpi=80)
    ax = fig.add_subplot()
    x = np.arange(4) - 0.2
    low, mid = np.array([3.0, 5.0, 0.0, 2.0]), np.array([1.0, 0.0, 2.0, 1.5])
    high = np.array([1.0, 2.0, 4.0, 0.5])
    ax.bar(x, low, 0.4, color="tab:green", label="low")
    ax.bar(x, mid, 0.4, bottom=low, color="tab:green", alpha=0.45, label="mid")
    ax.bar(x, high, 0.4, bottom=low + mid, color="tab:red", hatch="//", label="high")
    ax.set_title("stacked")
    ax.legend(loc="upper left")
    return fig


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
    fig = _stacked()
    first, second = png_bytes(fig, dpi=80), png_bytes(_stacked(), dpi=80)
    assert first == second
    decoded = np.asarray(Image.open(io.BytesIO(first)).convert("RGBA"))
    assert np.array_equal(decoded, _pixels(_stacked()))
