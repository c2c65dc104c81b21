"""One yearly file of 2-D velocity fields, checked and left in the file: what the prototype's,
ITS_LIVE's and MEaSUREs' velocity readers share (they differ in names, years, fills and CRS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fusion.data.fields import RowField
from fusion.data.netcdf import crs_of, epsg_name, grid_of, open_dataset
from fusion.data.readers.base import Reader, StreamInput, VelocityYear, any_finite
from fusion.errors import InputError

if TYPE_CHECKING:
    import netCDF4

    from fusion.config import Config

__all__ = ["field_shape", "read_velocity_year", "read_velocity_stream"]


def field_shape(ds: "netCDF4.Dataset", path: Path, name: str) -> tuple[int, int]:
    """The (y, x) shape of a variable once singleton dimensions are squeezed, without reading it."""
    if name not in ds.variables:
        raise InputError(path, f"missing variable '{name}'")
    shape = tuple(int(s) for s in ds.variables[name].shape if s != 1)
    if len(shape) != 2:
        raise InputError(path, f"variable '{name}' is {len(shape)}-D after squeezing; expected a 2-D (y, x) field")
    return shape  # type: ignore[return-value]


def read_velocity_year(reader: Reader, cfg: "Config", year: float, path: Path, names: list[str],
                       fill: float | None = None) -> VelocityYear:
    """`names` = (vx, vy, vx error, vy error) of one file; an absent error is None (a warning under
    `compat: fixed`: the constant it becomes may fail the threshold); `fill` one more missing value."""
    vx_var, vy_var, *err_vars = names
    compat = cfg.compat
    with open_dataset(path) as ds:
        shape = field_shape(ds, path, vx_var)
        vy_shape = field_shape(ds, path, vy_var)
        if vy_shape != shape:
            raise InputError(path, f"'{vy_var}' shape {vy_shape} differs from '{vx_var}' {shape}")
        grid = grid_of(ds, path, shape, vx_var)
        crs = crs_of(ds, vx_var)
        present = [name in ds.variables for name in err_vars]
        for name, has in zip(err_vars, present):
            if has and field_shape(ds, path, name) != shape:
                raise InputError(path, f"'{name}' shape {field_shape(ds, path, name)} differs from '{vx_var}' {shape}")
    vx, vy = (RowField(path, name, compat, shape, fill=fill) for name in (vx_var, vy_var))
    if compat == "fixed" and not (any_finite(vx) and any_finite(vy)):
        raise InputError(path, f"velocity '{vx_var}'/'{vy_var}' is all NaN")
    errs = []
    for name, has in zip(err_vars, present):
        if not has:
            reader.missing_error(path, name, compat)
        errs.append(RowField(path, name, compat, shape, fill=fill) if has else None)
    return VelocityYear(year, vx, vy, errs[0], errs[1], path, grid, crs)


def read_velocity_stream(reader: Reader, cfg: "Config", spec: object, files: list[Path], fill: float | None) -> StreamInput:
    """A product's yearly velocity files (`reader.year_of` names each file's year; two files for a
    year are bad input), with the stream's CRS: the files' own, else the product's documented one."""
    names = [reader.setting(spec, "velocity", k) for k in ("vx_var", "vy_var", "vx_err_var", "vy_err_var")]
    records = [read_velocity_year(reader, cfg, year, path, names, fill)
               for year, path in reader.unique_years((reader.year_of(p), p) for p in files)]  # type: ignore[attr-defined]
    stated = next((epsg_name(r.crs) or r.crs for r in records if r.crs), None)
    crs_from = "file" if stated else ("product default" if reader.crs else "unstated")
    return StreamInput("velocity", reader.name, files, records, {p: reader.tokens(p) for p in files},
                       stated or reader.crs, crs_from)
