"""Observation fields left in their files and read a block of grid rows at a time (`field[rows]`).

What the readers hand on when memory is bounded: a chunked `prepare` never holds a whole field.
A `RowField` is one 2-D slice of one variable (optionally in a NetCDF4 group, at one index of its
leading dimension, y flipped to the ensemble's order); a `Mosaic` is several of them placed on
one grid (ATL15's quadrant files); a `Member` is an ensemble member's fields, read the same way. The same reader as the eager path, restricted to the rows, so
the values are the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.data.grid import Grid
from fusion.data.netcdf import node, open_dataset, read_var

__all__ = ["RowField", "Mosaic", "Member", "ObsField"]


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


@dataclass(frozen=True)
class Member:
    """One ensemble member: decoded time axis and where to read its fields."""

    member_id: str
    path: Path
    times: np.ndarray  # decimal years of the kept rows
    rows: np.ndarray  # indices of kept rows in the file's time dimension
    variables: tuple[str, str, str]  # thickness, vx, vy
    compat: str = "fixed"
    grid: Grid | None = None

    def fields(self, grid_rows: slice = slice(None)) -> Iterator[tuple[str, np.ndarray]]:
        """Each of `variables` as a (time, y, x) field at the kept rows (in time order), NaN where
        masked, on the grid rows `grid_rows` only (a chunk of `prepare`); one open of the file
        (opening costs about as much as reading a field), one field held at a time."""
        with open_dataset(self.path) as ds:
            for name in self.variables:
                yield name, read_var(ds, self.path, name, self.compat, (slice(None), grid_rows))[self.rows]


ObsField = np.ndarray | RowField | Mosaic

