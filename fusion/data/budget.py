"""How many grid rows `prepare` takes at a time so that it stays within `memory.budget_gb`.

`prepare` streams the grid by blocks of rows and gives the same bits whatever the block size, so
the only question is memory: per pixel of a block it holds every block's observed rate, uncertainty
and mask, the observed fields it read for those rows, and one member variable on every time row;
per pixel of the whole grid, the kept-point maps, the packed masks and the thickness uncertainties
whose median fills gaps. `rows_for_budget` solves for the rows, with a margin for NumPy's
temporaries; a grid that fits whole is one block (the in-memory run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fusion.config import Config
    from fusion.data.load import EnsembleData

__all__ = ["rows_for_budget", "BASELINE_BYTES", "MARGIN"]

BASELINE_BYTES = 400 * 2**20  # the interpreter with NumPy, netCDF4, xarray and PyMC's imports
# NumPy temporaries on top of the arrays counted. Measured on the 2 km case (3,044², 5 members,
# 7 steps; benchmarks/bench_memory_budget.py): peak ≈ 0.26 GB + 1.5 MB per row of a block (4.80 GB
# as one block, 0.54 GB at 190 rows), so the counted 562 B per pixel already cover them: 1.0 keeps
# the 1.5 GB default at 380 rows, a predicted 0.83 GB.
MARGIN = 1.0


def rows_for_budget(cfg: "Config", data: "EnsembleData") -> int | None:
    """Rows per block under `cfg.memory.budget_gb`, or None when the whole grid fits (one block)."""
    ny, nx = data.grid.shape
    n_intervals = max(len(data.members[0].times) - 1, 1)
    blocks = 3 * n_intervals
    time_rows = max(len(m.rows) for m in data.members)
    obs_fields = 2 * len(data.thickness) + 4 * len(data.velocity)
    per_pixel = blocks * 17 + obs_fields * 4 + time_rows * 8 + 32
    whole_grid = ny * nx * (8 + blocks / 8 + n_intervals * 8)
    free = cfg.memory.budget_gb * 2**30 - BASELINE_BYTES - whole_grid
    rows = int(free // (per_pixel * nx * MARGIN))
    if rows >= ny:
        return None
    return max(rows, 1)
