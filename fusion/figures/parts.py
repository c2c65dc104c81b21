"""Drawing pieces the run's figures share: few ticks on round steps, colour bars beside their maps.

The figures ask for few ticks on round steps (`few_ticks`: as readable, and at these sizes
about 1 ms of Matplotlib's CPU per tick saved) and put colour bars in a box beside their axes
(`colorbar_beside`) instead of re-laying out the grid of panels. Everything else is plain
Matplotlib: the speed workarounds that were here (bars as one collection, the cyclic collector
off and titles at a fixed height while drawing) each saved under 3 % of a warm `fusion run` and
were removed (docs/performance/workarounds.md), the figures' pixels unchanged.
Matplotlib is imported by the caller; this module only imports it inside its functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAP_TICKS", "PLOT_TICKS", "TICK_STEPS", "colorbar_beside", "few_ticks"]


TICK_STEPS: list[float] = [1, 2, 5, 10]  # round tick steps only (no 2.5 or 1.5 of MaxNLocator's defaults)
MAP_TICKS = 4  # a map's axes are grid cells: 0, 20, 40, 60 on an 80-cell side
PLOT_TICKS = 5  # values read off a curve: 0, 0.2, …, 1.0


def few_ticks(axes: Any, nbins: int = PLOT_TICKS) -> None:
    """At most about `nbins` + 1 ticks on round steps on each axis of every axes in `axes`
    (one Axes or an iterable of them; colour bars and categorical axes set their own)."""
    for ax in np.atleast_1d(np.asarray(axes, dtype=object)).flat:
        ax.locator_params(nbins=nbins, steps=TICK_STEPS)


def colorbar_beside(fig: Any, mappable: Any, ax: Any, ticks: Any = None, height: float = 0.8) -> Any:
    """`fig.colorbar` in a narrow box right of `ax` (`inset_axes`, in `ax`'s axes fraction, so it
    follows an equal-aspect map), `height` of its height, centred; `ticks` as Colorbar takes them."""
    cax = ax.inset_axes((1.04, (1.0 - height) / 2, 0.05, height))
    return fig.colorbar(mappable, cax=cax, ticks=ticks)
