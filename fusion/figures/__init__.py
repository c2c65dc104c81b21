"""The run folder's figures, one module per family, and what the run draws with them.

- `projection`: `projection.png`, the members' SLE weighted against unweighted;
- `availability`: `availability.png`, where observations survived the masks and why others did not;
- `likelihood`: `variogram.png` and `sensitivity.png`, the residual correlation and what each
  `likelihood.form` does to the weights and the projection;
- `calibration`: `perfect_model.png`, the perfect-model test behind the member temperatures;
- `adequacy`: `residuals.png` (with `fit.json`), where the noise model misfits;
- `parts`: what they share (few ticks on round steps, colour bars beside their maps).

Drawn in this process by `draw_figures`, or by `fusion.worker.RunWorker` in a second process
(`fusion run`), which calls the same functions below. Matplotlib is imported inside them only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from fusion.data.availability import Availability

__all__ = ["FIGURE_FILES", "availability_png", "draw_figures", "draw_projection", "import_plotting"]

FIGURE_FILES: tuple[str, ...] = (
    "projection.png", "availability.png", "variogram.png", "sensitivity.png", "perfect_model.png",
)  # fmt: skip


def draw_projection(projection: xr.Dataset, summary: dict[str, Any], folder: str | Path) -> None:
    """`projection.png` in `folder`, written atomically."""
    from fusion.figures.projection import plot_projection

    plot_projection(projection, Path(folder) / "projection.png", summary=summary)


def availability_png(availability: Availability | None) -> bytes:
    """`availability.png`'s bytes: it depends on the prepared data only, so it can be drawn while sampling."""
    from fusion.figures.availability import plot_availability
    from fusion.io import png_bytes

    return png_bytes(plot_availability(availability, None))


def draw_figures(
    projection: xr.Dataset, summary: dict[str, Any], availability: Availability | None, folder: str | Path
) -> None:
    """Write every figure into `folder` (each atomically): the projection, the availability of
    observations, and from summary.json's `likelihood` and `sensitivity` the variogram and the
    sensitivity (`fusion.figures.likelihood`)."""
    from fusion.figures.likelihood import draw_likelihood_figures
    from fusion.io import write_bytes

    draw_projection(projection, summary, folder)
    draw_likelihood_figures(summary, folder)
    write_bytes(Path(folder) / "availability.png", availability_png(availability))


def import_plotting() -> None:
    """Every import drawing needs, paid before any figure is asked for (by `fusion.worker`'s
    process as it starts, or by `run` while the chains sample when it draws in-process)."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    import fusion.figures.availability  # noqa: F401
    import fusion.figures.likelihood  # noqa: F401
    import fusion.figures.parts  # noqa: F401
    import fusion.figures.projection  # noqa: F401
