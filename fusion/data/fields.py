"""Observation fields left in their files and read a block of grid rows at a time (`field[rows]`).

What the readers hand on when memory is bounded: a chunked `prepare` never holds a whole field.
A `RowField` is one 2-D slice of one variable (optionally in a NetCDF4 group, at one index of its
leading dimension, y flipped to the ensemble's order); a `Mosaic` is several of them placed on
one grid (ATL15's quadrant files). The same reader as the eager path, restricted to the rows, so
the values are the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.data.netcdf import node, open_dataset, read_var

__all__ = ["RowField", "Mosaic", "ObsField", "rows_of"]


@dataclass(frozen=True)
class RowField:
    """`name` in `path` (group `group`), at `lead` of its leading dimensions, as a (y, x) field;
    `flip`: the file's y runs the other way from the grid it is read onto; `fill`: one more value
    that means missing."""

    path: Path
    name: str
    compat: str
    shape: tuple[int, int]
    dtype: np.dtype = np.dtype(np.float32)
    group: str | None = None
    lead: tuple[int, ...] | None = None
    flip: bool = False
    fill: float | None = None

    def __getitem__(self, rows: slice) -> np.ndarray:
        ny = self.shape[0]
        lo, hi, _ = rows.indices(ny)
        file_rows = slice(ny - hi, ny - lo) if self.flip else slice(lo, hi)
        with open_dataset(self.path) as ds:
            where = node(ds, self.path, self.group)
            var = where.variables[self.name]
            lead = self.lead if self.lead is not None else (slice(None),) * (var.ndim - 2)
            arr = read_var(where, self.path, self.name, self.compat, (*lead, file_rows, slice(None)), self.fill)
        arr = arr.reshape(arr.shape[-2:]).astype(np.float32, copy=False)
        return arr[::-1] if self.flip else arr

    def with_flip(self) -> "RowField":
        return RowField(self.path, self.name, self.compat, self.shape, self.dtype, self.group, self.lead,
                        not self.flip, self.fill)


@dataclass(frozen=True)
class Mosaic:
    """Pieces (field, first row, first column) placed on one grid of `shape`; NaN where none lies,
    the later piece's finite values where two overlap."""

    shape: tuple[int, int]
    pieces: tuple[tuple["RowField", int, int], ...]
    dtype: np.dtype = np.dtype(np.float32)

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, _ = rows.indices(self.shape[0])
        out = np.full((hi - lo, self.shape[1]), np.nan, dtype=np.float32)
        for field, r0, c0 in self.pieces:
            h, w = field.shape
            a, b = max(lo, r0), min(hi, r0 + h)
            if a >= b:
                continue
            part = field[slice(a - r0, b - r0)]
            target = out[a - lo:b - lo, c0:c0 + w]
            np.copyto(target, part, where=np.isfinite(part))
        return out

    def with_flip(self) -> "Mosaic":
        ny = self.shape[0]
        return Mosaic(self.shape, tuple((f.with_flip(), ny - r0 - f.shape[0], c0) for f, r0, c0 in self.pieces))


ObsField = np.ndarray | RowField | Mosaic


def rows_of(field: ObsField, rows: slice = slice(None)) -> np.ndarray:
    """`field[rows]` for a held array and a field left in its file alike."""
    return field[rows]
