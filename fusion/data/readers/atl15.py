"""`product: atl15` — ICESat-2 ATL15, gridded land-ice height change, as NSIDC distributes it.

The schema relied on here was read from the producer's writer (SmithB/ATL1415,
`scripts/ATL15_write2nc.py`, `ATL1415/resources/ATL15_output_attrs.csv`,
`ATL1415/make_nc_projection_variable.py`):
- file name `ATL15_<region>_<cycles>_<resolution>_<release>_<version>.nc`; Antarctica comes as
  the quadrants `A1`–`A4` (release 003 on), each with its own `x`/`y`; files matching the
  pattern are mosaicked (two files for one region are bad input);
- NetCDF4 groups: `delta_h` (variables `delta_h`, `delta_h_sigma`, `ice_area`, `data_count`,
  `misfit_rms`, `misfit_scaled_rms`: height change relative to the ATL14 surface of 2020.0, m)
  and `dhdt_lag1`, `dhdt_lag4`, `dhdt_lag8`, `dhdt_lag12` (`dhdt`, `dhdt_sigma`, `ice_area`: the
  product's own rates over 1, 4, 8, 12 quarters, m/yr, at interval midpoints);
- every field float32 on (time, y, x) with `_FillValue` float32's maximum; `x`, `y` float64 in
  metres, y ascending; `time` float64 in "days since 2018-01-01", computed by the producer as
  (decimal year − 2018) × 365.25 — so decoded here as 2018 + days / 365.25;
- each group's `Polar_Stereographic` (a byte scalar) carries `crs_wkt`, `spatial_epsg` ('3031'
  for Antarctica) and semi-axes in km (6378.137): the CRS is taken from `spatial_epsg`/`crs_wkt`.
`group: delta_h`: each epoch's `delta_h` plays a yearly height (the reference surface cancels in
a difference), `delta_h_sigma` its uncertainty; `group: dhdt_lagN`: `dhdt`/`dhdt_sigma` are the
observed rates of the intervals whose midpoint they match (`fusion.data.prepare`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.data.fields import Mosaic, RowField
from fusion.data.grid import Grid
from fusion.data.netcdf import epsg_name, node, open_dataset
from fusion.data.readers.base import Reader, StreamInput, ThicknessYear
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["ATL15Reader", "decimal_years", "TIME_UNITS"]

TIME_UNITS = "days since 2018-01-01"
DAYS_PER_YEAR = 365.25  # the producer's own conversion from decimal years
CRS_VARIABLE = "Polar_Stereographic"


def decimal_years(days: np.ndarray) -> np.ndarray:
    """ATL15 time (days since 2018-01-01) back to the producer's decimal years."""
    return 2018.0 + np.asarray(days, dtype=np.float64) / DAYS_PER_YEAR


class ATL15Reader(Reader):
    name = "atl15"
    description = "ICESat-2 ATL15 gridded height change: one file per region or quadrant, NetCDF4 groups"
    file_name = re.compile(
        r"ATL15_(?P<region>[A-Z0-9]{2})_(?P<cycles>\d{4})_(?P<resolution>[0-9a-z]+)_(?P<release>\d{3})_(?P<version>\d{2})"
    )
    streams = ("thickness",)
    defaults = {"thickness": {"group": "delta_h"}}
    crs = "EPSG:3031"

    def names(self, spec: Any) -> tuple[str, str, str]:
        """(group, value variable, sigma variable): `delta_h`'s or a lag group's, unless set."""
        group = self.setting(spec, "thickness", "group")
        rate = group.startswith("dhdt")
        value = spec.var if "var" in spec.model_fields_set else ("dhdt" if rate else "delta_h")
        sigma = (spec.uncertainty_var if "uncertainty_var" in spec.model_fields_set
                 else ("dhdt_sigma" if rate else "delta_h_sigma"))
        return group, value, sigma

    def read(self, cfg: "Config", stream: str, spec: Any, files: list[Path]) -> StreamInput:
        group, value, sigma = self.names(spec)
        regions: dict[str, Path] = {}
        for path in files:
            region = self.tokens(path).get("region", path.name)
            if region in regions:
                raise InputError(path, f"region {region} already given by {regions[region].name}")
            regions[region] = path
        parts = [self._part(cfg, path, group, value, sigma) for path in files]
        times, crs = parts[0]["times"], parts[0]["crs"]
        for part in parts[1:]:
            if part["times"].shape != times.shape or not np.array_equal(part["times"], times):
                raise InputError(part["path"], f"group '{group}' has epochs differing from {parts[0]['path'].name}")
        grid, offsets = _mosaic_grid(parts)
        records = []
        for k, t in enumerate(times):
            fields = []
            for name in (value, sigma):
                pieces = tuple((RowField(p["path"], name, cfg.compat, p["shape"], group=group, lead=(k,),
                                         fill=spec.fill_value), r0, c0)
                               for p, (r0, c0) in zip(parts, offsets))
                fields.append(pieces[0][0] if len(pieces) == 1 and pieces[0][0].shape == grid.shape
                              else Mosaic(grid.shape, pieces))
            year = float(t)
            records.append(ThicknessYear(int(year) if year.is_integer() else year, fields[0], fields[1], files[0],
                                         grid, crs, rate=group.startswith("dhdt")))
        tokens = {p: self.tokens(p) for p in files}
        return StreamInput(stream, self.name, files, records, tokens, crs or self.crs, "file" if crs else "product default")

    def _part(self, cfg: "Config", path: Path, group: str, value: str, sigma: str) -> dict[str, Any]:
        with open_dataset(path) as ds:
            g = node(ds, path, group)
            for name in ("time", "x", "y", value, sigma):
                if name not in g.variables:
                    raise InputError(path, f"missing variable '{name}' in group '{group}'")
            units = str(getattr(g.variables["time"], "units", ""))
            if not units.startswith(TIME_UNITS):
                raise InputError(path, f"group '{group}' time units '{units}' are not ATL15's '{TIME_UNITS}'")
            times = decimal_years(g.variables["time"][:])
            shape = g.variables[value].shape
            if len(shape) != 3 or shape[0] != times.size:
                raise InputError(path, f"variable '{value}' in group '{group}' has shape {shape}; expected (time, y, x)")
            if g.variables[sigma].shape != shape:
                raise InputError(path, f"'{sigma}' shape {g.variables[sigma].shape} differs from '{value}' {shape}")
            y = np.asarray(g.variables["y"][:], dtype=np.float64)
            x = np.asarray(g.variables["x"][:], dtype=np.float64)
            crs = None
            if CRS_VARIABLE in g.variables:
                attrs = {a: g.variables[CRS_VARIABLE].getncattr(a) for a in g.variables[CRS_VARIABLE].ncattrs()}
                epsg = attrs.get("spatial_epsg")
                crs = (f"EPSG:{int(epsg)}" if epsg is not None and str(epsg).strip().isdigit()
                       else epsg_name(attrs.get("crs_wkt")) or attrs.get("crs_wkt"))
        return {"path": path, "times": times, "shape": (int(shape[1]), int(shape[2])), "y": y, "x": x, "crs": crs}


def _mosaic_grid(parts: list[dict[str, Any]]) -> tuple[Grid, list[tuple[int, int]]]:
    """The grid covering every part (the union of their cell centres, on one spacing) and where each
    part's first row and column fall on it. Parts off that lattice are bad input naming the file."""
    if len(parts) == 1:
        p = parts[0]
        return Grid(p["shape"], p["y"], p["x"], p["path"], p["crs"]), [(0, 0)]
    axes = {}
    for axis in ("y", "x"):
        values = np.unique(np.concatenate([p[axis] for p in parts]))
        step = min(abs(float(np.diff(p[axis][:2])[0])) for p in parts if p[axis].size > 1)
        n = int(round((values[-1] - values[0]) / step)) + 1
        lattice = values if values.size == n else values[0] + step * np.arange(n)  # the parts' own values when they tile
        if parts[0][axis].size > 1 and parts[0][axis][1] < parts[0][axis][0]:
            lattice = lattice[::-1]
        axes[axis] = lattice
    offsets = []
    for p in parts:
        at = []
        for axis in ("y", "x"):
            lattice, mine = axes[axis], p[axis]
            i = int(np.argmin(np.abs(lattice - mine[0])))
            if i + mine.size > lattice.size or not np.allclose(lattice[i:i + mine.size], mine, rtol=0, atol=1e-6 * abs(lattice[1] - lattice[0])):
                raise InputError(p["path"], f"its {axis} cells are not on the grid of {parts[0]['path'].name}; cannot mosaic")
            at.append(i)
        offsets.append((at[0], at[1]))
    return Grid((axes["y"].size, axes["x"].size), axes["y"], axes["x"], parts[0]["path"], parts[0]["crs"]), offsets
