"""A small stand-in for FACTS' totaling step, written from scratch for the tests.

It reads component files the way FACTS does (`xr.open_mfdataset(..., concat_dim="file",
combine="nested")`), insists on the years range and one uniform step, on `lat`/`lon` along
`locations` that agree across files, on the dimension order `samples, years, locations`, and
sums `sea_level_change` over the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

DIMS = ("samples", "years", "locations")


def total(paths: Sequence[Path], start: int, end: int, step: int) -> xr.Dataset:
    def per_file(ds: xr.Dataset) -> xr.Dataset:
        years = np.asarray(ds["years"].values)
        assert (int(years.min()), int(years.max())) == (start, end), f"years {years.min()}–{years.max()}"
        steps = np.unique(np.diff(years))
        assert steps.tolist() == [step], f"year steps {steps}"
        assert ds["sea_level_change"].dims == DIMS, ds["sea_level_change"].dims
        assert ds["sea_level_change"].attrs.get("units") == "mm"
        for name in ("lat", "lon"):
            assert ds[name].dims == ("locations",), (name, ds[name].dims)
        return ds.expand_dims("file")

    combined = xr.open_mfdataset(
        [str(p) for p in paths], concat_dim="file", combine="nested", preprocess=per_file
    )
    with combined:
        for name in ("lat", "lon"):
            values = np.asarray(combined[name].values, dtype=np.float32)  # (file, locations)
            assert np.all(values == values[:1]), f"{name} differs between files"
        summed = combined["sea_level_change"].sum("file").transpose(*DIMS).load()
        lat = np.asarray(combined["lat"].values[0], dtype=np.float32)
        lon = np.asarray(combined["lon"].values[0], dtype=np.float32)
    return xr.Dataset(
        {"sea_level_change": summed, "lat": (("locations",), lat), "lon": (("locations",), lon)}
    )
