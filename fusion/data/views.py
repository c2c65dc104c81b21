"""The ice-fusion view of loaded inputs: `load_data(cfg)["obs"]` and `["ensemble"]` as xarray.

Both are dask-backed: nothing is read until a value is asked for, so the view costs nothing on a
run that never uses it and stays within memory on the 2 km grid. The observations are the aligned
records (on the grid `prepare` uses, y in the ensemble's direction); the ensemble is every
member's `h`, `ua`, `va` at its kept rows, on decimal-year `time`, stacked along `member`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

    from fusion.data.load import EnsembleData

__all__ = ["observations", "ensemble"]


def _lazy(field: Any, shape: tuple[int, int]):
    import dask
    import dask.array as da

    if isinstance(field, np.ndarray):
        return da.from_array(field, chunks=field.shape)
    return da.from_delayed(dask.delayed(field.__getitem__)(slice(None)), shape=shape, dtype=np.float32)


def _coords(data: "EnsembleData") -> dict[str, Any]:
    g = data.grid
    return {k: v for k, v in (("y", g.y), ("x", g.x)) if v is not None}


def observations(data: "EnsembleData") -> dict[str, "xr.Dataset"]:
    """Per stream, the observed fields on (time, y, x): thickness `height` (or `dhdt` for a
    product's own rates) and `uncertainty`; velocity `vx`, `vy`, `err_x`, `err_y`."""
    import dask.array as da
    import xarray as xr

    shape = data.grid.shape
    out = {}
    for name, records, variables in (("thickness", data.thickness, ("height", "uncertainty")),
                                     ("velocity", data.velocity, ("vx", "vy", "err_x", "err_y"))):
        fields = {}
        for v in variables:
            layers = [_lazy(getattr(r, v), shape) if getattr(r, v) is not None else da.full(shape, np.nan, dtype=np.float32)
                      for r in records]
            fields["dhdt" if v == "height" and records and records[0].rate else v] = (("time", "y", "x"), da.stack(layers))
        product = next((s.product for s in data.streams if s.stream == name), "prototype")
        out[name] = xr.Dataset(fields, coords={"time": [float(r.year) for r in records], **_coords(data)},
                               attrs={"product": product})
    return out


def ensemble(data: "EnsembleData") -> "xr.Dataset":
    """The members' fields at their kept rows on decimal-year `time`, stacked along `member`."""
    import pandas as pd
    import xarray as xr

    parts = []
    for m in data.members:
        opened = (xr.open_zarr(m.path, decode_times=False, chunks={}) if m.path.is_dir()
                  else xr.open_dataset(m.path, decode_times=False, chunks={}))
        ds = opened[list(m.variables)].isel({opened[m.variables[0]].dims[0]: m.rows})
        ds = ds.rename({ds[m.variables[0]].dims[0]: "time"}).assign_coords(time=m.times)
        parts.append(ds.drop_vars([c for c in ds.coords if c not in ("time", "y", "x")]))
    return xr.concat(parts, dim=pd.Index(list(data.member_ids), name="member"), join="outer")
