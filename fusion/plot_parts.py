"""Drawing pieces the run's figures share, chosen for what they cost to draw.

`fusion run` draws five figures per run in its worker process; at these sizes Matplotlib's
CPU goes to Python-level artists, not pixels: about 1 ms per axis tick (created, laid out,
drawn), about 50 µs per glyph of text, a Rectangle per bar. So the figures ask for few ticks on round
steps (`few_ticks`), draw a series of bars as one `PolyCollection` (`bars`), and put colour bars
in a box beside their axes (`colorbar_beside`) instead of re-laying out the grid of panels.

`drawing` is the context the run's figures are built and saved in. A figure is some 10⁵ small
Python objects in reference cycles, so building one sets off the cyclic garbage collector, and
now and then a full collection, which walks every object the process holds: in `fusion run`'s
worker (Matplotlib, SciPy, ArviZ and GSTools loaded, about 2·10⁵ objects) 80–110 ms each, one
or two per run. `drawing` turns the collector off meanwhile (the figure's cycles are collected
as usual once it is on again), and fixes the axes' titles at their default height
(`axes.titley` 1.0): Matplotlib's automatic title position computes every y-axis' ticks and
their extents once more per title, only to move a title clear of ticks or an offset text on
top, which these figures do not have (the same pixels, measured on all five).
Matplotlib is imported by the caller; this module only imports it inside its functions.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["MAP_TICKS", "PLOT_TICKS", "TICK_STEPS", "bars", "colorbar_beside", "drawing", "few_ticks"]


TICK_STEPS: list[float] = [1, 2, 5, 10]  # round tick steps only (no 2.5 or 1.5 of MaxNLocator's defaults)
MAP_TICKS = 4  # a map's axes are grid cells: 0, 20, 40, 60 on an 80-cell side
PLOT_TICKS = 5  # values read off a curve: 0, 0.2, …, 1.0


@contextmanager
def drawing() -> Iterator[None]:
    """No cyclic garbage collection inside, and titles at a fixed height (module docstring);
    the collector's state and Matplotlib's settings are restored after."""
    import matplotlib

    enabled = gc.isenabled()
    gc.disable()
    try:
        with matplotlib.rc_context({"axes.titley": 1.0}):
            yield
    finally:
        if enabled:
            gc.enable()


def few_ticks(axes: Any, nbins: int = PLOT_TICKS) -> None:
    """At most about `nbins` + 1 ticks on round steps on each axis of every axes in `axes`
    (one Axes or an iterable of them; colour bars and categorical axes set their own)."""
    for ax in np.atleast_1d(np.asarray(axes, dtype=object)).flat:
        ax.locator_params(nbins=nbins, steps=TICK_STEPS)


def bars(
    ax: Any, x: np.ndarray, height: np.ndarray, width: float, bottom: np.ndarray | float = 0.0, **style: Any
) -> Any:
    """Vertical bars centred on `x` as one `PolyCollection` (one artist, one legend entry), the
    pixels `Axes.bar` draws (no edge; the bottoms are sticky edges of the y-axis's autoscale), but
    for a hatch under `alpha`: translucent here, opaque there."""
    from matplotlib.collections import PolyCollection

    x = np.asarray(x, dtype=float)
    low = np.broadcast_to(np.asarray(bottom, dtype=float), x.shape)
    high = low + np.asarray(height, dtype=float)
    left = x - width / 2
    right = left + width  # as Axes.bar: a Rectangle from its left edge, to the same bits
    corners = ((left, low), (left, high), (right, high), (right, low))
    verts = np.stack([np.column_stack(c) for c in corners], axis=1)  # (bars, 4 corners, xy)
    collection = PolyCollection(verts, edgecolor="none", **style)
    collection.sticky_edges.y.extend(np.unique(low).tolist())
    ax.add_collection(collection)
    return collection


def colorbar_beside(fig: Any, mappable: Any, ax: Any, ticks: Any = None, height: float = 0.8) -> Any:
    """`fig.colorbar` in a narrow box right of `ax` (`inset_axes`, in `ax`'s axes fraction, so it
    follows an equal-aspect map), `height` of its height, centred; `ticks` as Colorbar takes them."""
    cax = ax.inset_axes((1.04, (1.0 - height) / 2, 0.05, height))
    return fig.colorbar(mappable, cax=cax, ticks=ticks)
