"""The run folder's figures, drawn here or by a worker process `fusion run` starts at once.

Matplotlib's import and the drawing are about a quarter of a short `fusion run`'s CPU time, and
the main process is busy on one core (the GIL) while the second core idles outside sampling.
`FigureWorker` spawns one process when the run starts; it imports Matplotlib while the main
process loads data and samples, and later draws both figures from the (small) projection and
availability record. If the worker is gone (killed, or failed to start), the figures are drawn
in this process instead: the outputs never depend on the worker. An error while drawing is
raised here, as it would be in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from fusion.data.availability import Availability

__all__ = ["FIGURE_FILES", "FigureWorker", "draw_figures"]

FIGURE_FILES: tuple[str, ...] = ("projection.png", "availability.png")


def draw_figures(
    projection: xr.Dataset, summary: dict[str, Any], availability: Availability | None, folder: str | Path
) -> None:
    """Write `projection.png` and `availability.png` into `folder` (each atomically)."""
    from fusion.data.availability import plot_availability
    from fusion.projection import plot_projection

    folder = Path(folder)
    plot_projection(projection, summary, folder / "projection.png")
    plot_availability(availability, folder / "availability.png")


def _import_plotting() -> None:
    """The worker's start: every import `draw_figures` needs, before any figure is asked for."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    import fusion.data.availability  # noqa: F401
    import fusion.projection  # noqa: F401


def _started() -> bool:
    return True


class FigureWorker:
    """A one-process pool (standard library, `spawn`: no fork of a process that runs threads)."""

    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_import_plotting
        )
        self._pool.submit(_started)  # the pool starts its process at the first task: start it now

    def draw(
        self,
        projection: xr.Dataset,
        summary: dict[str, Any],
        availability: Availability | None,
        folder: str | Path,
    ) -> None:
        """`draw_figures` in the worker; in this process if the worker is unavailable."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self._pool.submit(draw_figures, projection, summary, availability, Path(folder))
        except (BrokenProcessPool, RuntimeError):  # broken, or already shut down
            future = None
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool:
                pass
        draw_figures(projection, summary, availability, folder)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FigureWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
