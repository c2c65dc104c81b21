"""A small stand-in for FACTS' totaling step (`facts-total`), written from scratch for the tests.

It has the names and the steps of `facts_total.total_workflow.WorkflowTotaler`, which is how
FACTS consumes a component file: `get_projections` opens every file with
`xr.open_mfdataset(..., concat_dim="file", combine="nested", join="outer")`, adding a `file`
and a `year_step` dimension to each (a years range other than the one asked for is cut to it,
silently there and with a warning here, so that a test can insist on the range; a step other
than the one asked for is reported; uneven steps fail with an AssertionError);
`format_projections` drops `year_step` (only that dimension is squeezed, so a single location
or sample stays), makes `locations`, `lat` and `lon` coordinates, casts `lat`/`lon` to float32
and keeps the first file's; `total_projections` sums every variable over `file`;
`write_totaled_projections` writes `sea_level_change` as zlib-compressed float32. The real
module is not a dependency (it is not on PyPI); it was run on FUSION's exports outside the
repository, with the same result as this stand-in.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["WorkflowTotaler"]


class WorkflowTotaler:
    def __init__(self, name: str, paths_list: Sequence[str | Path], pyear_start: int, pyear_end: int,
                 pyear_step: int) -> None:  # fmt: skip
        self.name = name
        self.paths_list = [str(p) for p in paths_list]
        self.pyear_start, self.pyear_end, self.pyear_step = pyear_start, pyear_end, pyear_step

    def _preprocess(self, ds: xr.Dataset) -> xr.Dataset:
        years = ds["years"]
        if (years.min().item(), years.max().item()) != (self.pyear_start, self.pyear_end):
            warnings.warn(f"years {years.min().item()}–{years.max().item()}: cut to "
                          f"{self.pyear_start}–{self.pyear_end}", stacklevel=2)  # fmt: skip
            ds = ds.sel(years=slice(self.pyear_start, self.pyear_end))
        steps = np.unique(np.diff(ds["years"].values))
        if steps.size != 1 or steps[0] != self.pyear_step:
            warnings.warn(f"year steps {steps}, not {self.pyear_step}", stacklevel=2)
        ds = ds.expand_dims("file")
        ds["file"] = [ds.encoding["source"]]
        ds = ds.expand_dims("year_step")
        assert steps.size == 1, f"year steps are not uniform: {steps}"
        ds["year_step"] = [steps[0]]
        return ds

    def get_projections(self) -> xr.Dataset:
        self.combined_ds = xr.open_mfdataset(self.paths_list, concat_dim="file", combine="nested", join="outer",
                                             preprocess=self._preprocess, chunks="auto")  # fmt: skip
        return self.combined_ds

    def format_projections(self) -> xr.Dataset:
        ds = self.combined_ds
        if np.unique(ds["year_step"].values).size > 1:
            warnings.warn(f"year steps differ between files: {np.unique(ds['year_step'].values)}", stacklevel=2)
        ds = ds.squeeze(dim="year_step", drop=True)
        if "locations" not in ds.coords:
            ds = ds.set_coords("locations")
        ds = ds.set_coords(["lat", "lon"])
        for name in ("lat", "lon"):
            ds[name] = ds[name].astype("float32").load()
        first = {name: ("locations", ds[name].isel(file=0).values) for name in ("lat", "lon")}
        ds = ds.assign_coords(first).reset_coords(["lat", "lon"])
        ds.attrs["source"] = "total of: " + ",".join(str(f) for f in ds["file"].values.tolist())
        self.projections_ds = ds
        return ds

    def total_projections(self) -> xr.Dataset:
        ds = self.projections_ds
        attrs = dict(ds.attrs)
        total = ds.sum(dim="file")
        total["sea_level_change"].attrs = {"units": "mm", "missing_value": np.nan}
        total.attrs = attrs
        self.totaled_ds = total
        return total

    def write_totaled_projections(self, outpath: str | Path) -> None:
        encoding = {"sea_level_change": {"zlib": True, "complevel": 4, "dtype": "f4"}}
        self.totaled_ds.to_netcdf(outpath, encoding=encoding)
