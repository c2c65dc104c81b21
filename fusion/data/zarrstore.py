"""A Zarr store read as the NetCDF file it would be, so one reader (and its masking rules) serves both.

The store's raw arrays and attributes (no CF decoding: `_FillValue`, `scale_factor`, `units` stay
attributes) are copied into an in-memory NetCDF dataset; `fusion.data.load` then masks, scales and
decodes time exactly as it does for a file, which is what makes a Zarr input give the bits its
NetCDF twin gives.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import netCDF4
import numpy as np

from fusion.errors import InputError

__all__ = ["open_zarr_as_netcdf"]


def open_zarr_as_netcdf(path: Path) -> netCDF4.Dataset:
    """The store at `path` as a diskless, read-back NetCDF dataset; an unreadable store is bad input."""
    import xarray as xr

    try:
        with warnings.catch_warnings():  # about consolidated metadata (absent, or not in the v3 spec): not the user's problem
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            ds = xr.open_zarr(path, decode_cf=False, mask_and_scale=False, decode_times=False, chunks=None, consolidated=None)
    except Exception as exc:  # zarr raises its own errors for missing or malformed metadata
        text = str(exc).strip().splitlines()
        raise InputError(path, f"not a readable Zarr store ({type(exc).__name__}{': ' + text[0] if text else ''})") from None
    nc = netCDF4.Dataset(f"{path.name}.nc", "w", diskless=True, persist=False)
    try:
        for dim, size in ds.sizes.items():
            nc.createDimension(str(dim), int(size))
        for name, var in ds.variables.items():
            attrs = dict(var.attrs)
            fill = attrs.pop("_FillValue", None)
            values = np.asarray(var.values)
            values = values.astype(np.dtype(f"{values.dtype.kind}{values.dtype.itemsize}"))  # native order: zarr's explicit "<"/">" upsets netCDF4
            if values.dtype.kind not in "biuf":  # text is no field; a scalar's attributes may be a grid mapping
                if var.ndim == 0:
                    nc.createVariable(str(name), "i1", ()).setncatts({k: v for k, v in attrs.items() if v is not None})
                continue
            out = nc.createVariable(str(name), values.dtype, tuple(str(d) for d in var.dims), fill_value=fill)
            out.set_auto_maskandscale(False)
            out.setncatts({k: v for k, v in attrs.items() if v is not None})
            out[...] = values
            out.set_auto_maskandscale(True)
    except InputError:
        nc.close()
        raise
    except Exception as exc:
        nc.close()
        raise InputError(path, f"Zarr store cannot be read ({type(exc).__name__}: {exc})") from None
    finally:
        ds.close()
    return nc
