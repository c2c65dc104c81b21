"""NetCDF (and Zarr presented as NetCDF) access shared by every reader: open, read a variable
with the masking rules, its grid, its CRS. One place for these rules, so a product reader only
says which names, groups, fills and orientation its files use.
"""

from __future__ import annotations

import re
from pathlib import Path

import netCDF4
import numpy as np

from fusion.data.grid import Grid
from fusion.errors import InputError

__all__ = ["open_dataset", "node", "read_var", "read_2d", "grid_of", "crs_of", "epsg_name"]

_EPSG_WKT1 = re.compile(r'AUTHORITY\[\s*"EPSG"\s*,\s*"?(\d+)"?\s*\]\s*\]\s*$')
_EPSG_WKT2 = re.compile(r'ID\[\s*"EPSG"\s*,\s*(\d+)\s*\]\s*\]\s*$')


def open_dataset(path: Path) -> netCDF4.Dataset:
    """A NetCDF file, or a Zarr store (a folder) presented as one."""
    if path.is_dir():
        from fusion.data.zarrstore import open_zarr_as_netcdf

        return open_zarr_as_netcdf(path)
    try:
        return netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if getattr(path, "url", None):  # netCDF4 names the file it opened: the cached copy, not the input
            reason = reason.replace(f": '{path}'", "").replace(str(path), path.url)
        raise InputError(path, f"not a readable NetCDF file ({reason})") from None


def node(ds: netCDF4.Dataset, path: Path, group: str | None) -> netCDF4.Dataset:
    """The root, or the NetCDF4 group `group` (bad input naming the file when absent)."""
    if group is None:
        return ds
    if group not in ds.groups:
        have = ", ".join(sorted(ds.groups)) or "none"
        raise InputError(path, f"missing group '{group}' (groups: {have})")
    return ds.groups[group]


def read_var(ds: netCDF4.Dataset, path: Path, name: str, compat: str = "fixed", index: tuple = (slice(None),),
             fill: float | None = None) -> np.ndarray:
    """A variable as a float array, NaN where masked; `fill` masks one more value (a product's fill
    its files do not declare, as MEaSUREs' 0).

    Under `compat: prototype` only `_FillValue`/`missing_value` mask, as xarray's CF decoding that
    the prototype reads through (netCDF4's default also masks outside `valid_min`/`valid_max`/
    `valid_range` and at the type's default fill value, which the prototype keeps as data).
    """
    if name not in ds.variables:
        raise InputError(path, f"missing variable '{name}'")
    var = ds.variables[name]
    packed = any(a in var.ncattrs() for a in ("scale_factor", "add_offset"))
    if compat == "prototype" and not packed:
        var.set_auto_maskandscale(False)
    try:
        raw = var[index]
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise InputError(path, f"variable '{name}' cannot be read ({exc})") from None
    values = np.ma.getdata(raw)
    dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float32)
    out = np.array(values, dtype=dtype, copy=True)
    mask = np.ma.getmaskarray(raw)
    if compat == "prototype" and not packed:
        for attr in ("_FillValue", "missing_value"):
            if attr in var.ncattrs():
                for value in np.atleast_1d(var.getncattr(attr)):
                    mask = mask | (values == value)
    if fill is not None:
        mask = mask | (values == fill)
    if mask.any():
        out[mask] = np.nan
    return out


def read_2d(ds: netCDF4.Dataset, path: Path, name: str, compat: str = "fixed", index: tuple = (slice(None),),
            fill: float | None = None) -> np.ndarray:
    """A squeezed 2-D field in float32, the precision the prototype casts every observation to."""
    arr = np.squeeze(read_var(ds, path, name, compat, index, fill)).astype(np.float32, copy=False)
    if arr.ndim != 2:
        raise InputError(path, f"variable '{name}' is {arr.ndim}-D after squeezing; expected a 2-D (y, x) field")
    return arr


def crs_of(ds: netCDF4.Dataset, var: str) -> str | None:
    """The variable's map projection as comparable text (CF `grid_mapping`), None when unstated."""
    if var not in ds.variables or "grid_mapping" not in ds.variables[var].ncattrs():
        return None
    name = str(ds.variables[var].getncattr("grid_mapping")).split(":")[0].strip()
    if name not in ds.variables:
        return f"grid_mapping '{name}' (variable absent)"
    mapping = ds.variables[name]
    attrs = {a: mapping.getncattr(a) for a in mapping.ncattrs()}
    for key in ("crs_wkt", "spatial_ref", "epsg_code"):
        if key in attrs:
            return str(attrs[key]).strip()
    parts = [f"{k}={np.asarray(v).tolist()}" for k, v in sorted(attrs.items()) if not k.startswith("_")]
    return ", ".join(parts) or f"grid_mapping '{name}' (no attributes)"


def epsg_name(crs: str | None) -> str | None:
    """`EPSG:<code>` when the CRS text names one (a bare code, `EPSG:3031`, or a WKT whose outermost
    AUTHORITY/ID is EPSG), else None: how CRSs written differently by two producers compare."""
    if crs is None:
        return None
    text = " ".join(str(crs).split())
    if text.isdigit():
        return f"EPSG:{text}"
    if text.upper().startswith("EPSG:") and text[5:].isdigit():
        return f"EPSG:{text[5:]}"
    m = _EPSG_WKT1.search(text) or _EPSG_WKT2.search(text)
    return f"EPSG:{m.group(1)}" if m else None


def grid_of(ds: netCDF4.Dataset, path: Path, shape: tuple[int, ...], var: str | None = None) -> Grid:
    """The (y, x) grid of a field of `shape` in `ds`, with `var`'s projection when asked."""
    coords = []
    for name in ("y", "x"):
        coords.append(np.asarray(ds.variables[name][:], dtype=np.float64) if name in ds.variables else None)
    projection = crs_of(ds, var) if var is not None else None
    return Grid(shape=(int(shape[-2]), int(shape[-1])), y=coords[0], x=coords[1], source=path, projection=projection)
