"""`product: prototype` — the research prototype's layout: one NetCDF (or Zarr store) per year,
the year the first run of four digits in the file name, one 2-D field per variable (singleton
dimensions squeezed). Thickness: `height` and `absolute_elevation_rmse` (may be absent or all
NaN); velocity: `VX`, `VY`, `ERRX`, `ERRY` (a missing error is a constant 10 m/yr). The CRS is the
fields' CF `grid_mapping` when they name one (DESIGN.md "Inputs").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.data.fields import RowField
from fusion.data.netcdf import crs_of, epsg_name, grid_of, open_dataset
from fusion.data.readers.base import Reader, StreamInput, ThicknessYear, VelocityYear, any_finite
from fusion.data.readers.gridded import field_shape, read_velocity_year
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["PrototypeReader"]

_YEAR = re.compile(r"\d{4}")


class PrototypeReader(Reader):
    name = "prototype"
    description = "the prototype's yearly files: a four-digit year in the name, one 2-D field per variable"
    file_name = re.compile(r"(?P<year>\d{4})")

    @staticmethod
    def year(path: Path) -> int:
        m = _YEAR.search(path.name)
        if m is None:
            raise InputError(path, "no four-digit year in the file name")
        return int(m.group())

    def years(self, paths: list[Path], compat: str) -> list[tuple[int, Path]]:
        """(year, file) in year order; a repeated year is an error, except under `compat: prototype`.

        The prototype keeps repeats: files in name order, reordered by `np.argsort` of their years
        (NumPy's default sort, as it does); for each year the last one wins, and the velocity
        speed field counts that winner once per repeat (see `prepare`).
        """
        if compat == "prototype":
            years = np.array([self.year(p) for p in paths], dtype=int)
            return [(int(years[i]), paths[i]) for i in np.argsort(years)]
        return self.unique_years((self.year(p), p) for p in paths)  # type: ignore[misc]

    def read(self, cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
        read = self._thickness if stream == "thickness" else self._velocity
        records = [read(cfg, spec, year, path) for year, path in self.years(files, cfg.compat)]
        crs = next((epsg_name(r.crs) or r.crs for r in records if r.crs), None)
        return StreamInput(stream, self.name, files, records, {p: self.tokens(p) for p in files}, crs,
                           "file" if crs else "unstated")

    def _thickness(self, cfg: "Config", spec: Any, year: int, path: Path) -> ThicknessYear:
        var, unc_var, compat = spec.var, spec.uncertainty_var, cfg.compat
        with open_dataset(path) as ds:
            shape = field_shape(ds, path, var)
            grid = grid_of(ds, path, shape, var)
            crs = crs_of(ds, var)
            unc_shape = field_shape(ds, path, unc_var) if unc_var in ds.variables else None
        if unc_shape is not None and unc_shape != shape:
            raise InputError(path, f"'{unc_var}' shape {unc_shape} differs from '{var}' {shape}")
        height = RowField(path, var, compat, shape, fill=spec.fill_value)
        if compat == "fixed" and not any_finite(height):  # the prototype carries on: the year's rates are NaN
            raise InputError(path, f"variable '{var}' is all NaN")
        unc = None if unc_shape is None else RowField(path, unc_var, compat, shape, fill=spec.fill_value)
        return ThicknessYear(year, height, unc, path, grid, crs)

    def _velocity(self, cfg: "Config", spec: Any, year: int, path: Path) -> VelocityYear:
        names = [spec.vx_var, spec.vy_var, spec.vx_err_var, spec.vy_err_var]
        return read_velocity_year(self, cfg, year, path, names, spec.fill_value)
