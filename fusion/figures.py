"""The run folder's figures: the projection, the availability of observations, the residual
variogram and the sensitivity to `likelihood.form`.

Drawn in this process by `draw_figures`, or by `fusion.worker.RunWorker` in a second process
(`fusion run`), which calls the same functions below.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from fusion.data.availability import Availability

__all__ = ["FIGURE_FILES", "availability_png", "draw_figures", "draw_projection", "import_plotting"]

FIGURE_FILES: tuple[str, ...] = ("projection.png", "availability.png", "variogram.png", "sensitivity.png")


def draw_projection(projection: xr.Dataset, summary: dict[str, Any], folder: str | Path) -> None:
    """`projection.png` in `folder`, written atomically."""
    from fusion.plot_parts import drawing
    from fusion.projection import plot_projection

    with drawing():
        plot_projection(projection, Path(folder) / "projection.png", summary=summary)


def availability_png(availability: Availability | None) -> bytes:
    """`availability.png`'s bytes: it depends on the prepared data only, so it can be drawn while sampling."""
    from fusion.data.availability import plot_availability
    from fusion.io import png_bytes
    from fusion.plot_parts import drawing

    with drawing():
        return png_bytes(plot_availability(availability, None))


def draw_figures(
    projection: xr.Dataset, summary: dict[str, Any], availability: Availability | None, folder: str | Path
) -> None:
    """Write every figure into `folder` (each atomically): the projection, the availability of
    observations, and from summary.json's `likelihood` and `sensitivity` the variogram and the
    sensitivity (`fusion.likelihood_figures`)."""
    from fusion.io import write_bytes
    from fusion.likelihood_figures import draw_likelihood_figures

    draw_projection(projection, summary, folder)
    draw_likelihood_figures(summary, folder)
    write_bytes(Path(folder) / "availability.png", availability_png(availability))


def import_plotting() -> None:
    """Every import drawing needs, paid before any figure is asked for (by `fusion.worker`'s
    process as it starts, or by `run` while the chains sample when it draws in-process)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    import fusion.data.availability  # noqa: F401
    import fusion.likelihood_figures  # noqa: F401
    import fusion.plot_parts  # noqa: F401
    import fusion.projection  # noqa: F401
