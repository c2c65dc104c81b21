"""Read the prototype's file layout: yearly observation files and one file per member.

Observations are small enough to hold; member fields are not at full size (27 members on a
761 × 761 grid), so members are validated here and their fields read on demand by `prepare`.
Every problem is an `InputError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from fusion.config import Config
from fusion.data.grid import Grid
from fusion.data.regrid import conform, projection_of
from fusion.data.timeaxis import TimeUnitsError, decode_time, valid_time_rows
from fusion.errors import DataWarning, InputError

__all__ = ["Grid", "ThicknessYear", "VelocityYear", "Member", "EnsembleData", "load_data", "member_id"]

MISSING_VEL_ERROR: float = 10.0  # m/yr, the prototype's constant for a missing ERRX/ERRY
_YEAR = re.compile(r"\d{4}")
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class RowField:
    """A 2-D observation field left in its file and read a block of rows at a time (`field[rows]`):
    what `load_data(lazy=True)` holds, so a chunked `prepare` never has a whole field in memory.
    The same reader as the eager path, restricted to the rows, so the values are the same bits."""

    path: Path
    name: str
    compat: str
    shape: tuple[int, int]
    dtype: np.dtype = np.dtype(np.float32)

    def __getitem__(self, rows: slice) -> np.ndarray:
        with _open(self.path) as ds:
            lead = (slice(None),) * (ds.variables[self.name].ndim - 2)
            arr = _read(ds, self.path, self.name, self.compat, (*lead, rows, slice(None)))
        return arr.reshape(arr.shape[-2:]).astype(np.float32, copy=False)


@dataclass(frozen=True)
class ThicknessYear:
    year: int
    height: np.ndarray | RowField  # float32 (y, x), NaN where missing
    uncertainty: np.ndarray | RowField | None  # float32 (y, x), None when the variable is absent
    source: Path


@dataclass(frozen=True)
class VelocityYear:
    year: int
    vx: np.ndarray | RowField
    vy: np.ndarray | RowField
    err_x: np.ndarray | RowField
    err_y: np.ndarray | RowField
    source: Path


@dataclass(frozen=True)
class Member:
    """One ensemble member: decoded time axis and where to read its fields."""

    member_id: str
    path: Path
    times: np.ndarray  # decimal years of the kept rows
    rows: np.ndarray  # indices of kept rows in the file's time dimension
    variables: tuple[str, str, str]  # thickness, vx, vy
    compat: str = "fixed"

    def fields(self, grid_rows: slice = slice(None)) -> Iterator[tuple[str, np.ndarray]]:
        """Each of `variables` as a (time, y, x) field at the kept rows (in time order), NaN where
        masked, on the grid rows `grid_rows` only (a chunk of `prepare`); one open of the file
        (opening costs about as much as reading a field), one field held at a time."""
        with _open(self.path) as ds:
            for name in self.variables:
                yield name, _read(ds, self.path, name, self.compat, (slice(None), grid_rows))[self.rows]


@dataclass
class EnsembleData:
    thickness: list[ThicknessYear]
    velocity: list[VelocityYear]
    members: list[Member]
    grid: Grid
    input_files: list[Path] = field(default_factory=list)

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.member_id for m in self.members)


def member_id(path: Path) -> str:
    """`run<N>` from the first number in the file name, without zero padding."""
    m = _NUMBER.search(path.name)
    if m is None:
        raise InputError(path, "member file name has no number to make a member id from")
    return f"run{int(m.group())}"


def _open(path: Path) -> netCDF4.Dataset:
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


def _read(ds: netCDF4.Dataset, path: Path, name: str, compat: str = "fixed", index: tuple = (slice(None),)) -> np.ndarray:
    """A variable as a float array, NaN where masked.

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
                for fill in np.atleast_1d(var.getncattr(attr)):
                    mask = mask | (values == fill)
    if mask.any():
        out[mask] = np.nan
    return out


def _read_2d(ds: netCDF4.Dataset, path: Path, name: str, compat: str = "fixed") -> np.ndarray:
    """A squeezed 2-D field in float32, the precision the prototype casts every observation to."""
    arr = np.squeeze(_read(ds, path, name, compat)).astype(np.float32, copy=False)
    if arr.ndim != 2:
        raise InputError(path, f"variable '{name}' is {arr.ndim}-D after squeezing; expected a 2-D (y, x) field")
    return arr


def _grid_of(ds: netCDF4.Dataset, path: Path, shape: tuple[int, ...], var: str | None = None) -> Grid:
    coords = []
    for name in ("y", "x"):
        coords.append(np.asarray(ds.variables[name][:], dtype=np.float64) if name in ds.variables else None)
    projection = projection_of(ds, var) if var is not None else None
    return Grid(shape=(int(shape[-2]), int(shape[-1])), y=coords[0], x=coords[1], source=path, projection=projection)


def _files(cfg: Config, spec: Any, key: str, hidden: bool = True) -> list[Path]:
    """Sorted matching files or Zarr stores, local or fetched through the cache (`fusion.data.remote`);
    `hidden=False` skips dot-files, as `glob.glob` (the prototype's member list)."""
    from fusion.data.remote import list_inputs

    return list_inputs(spec.dir, spec.pattern, key, cfg.source, storage_options=spec.storage_options,
                       cache_dir=cfg.cache.dir, hidden=hidden)


def _year(path: Path) -> int:
    m = _YEAR.search(path.name)
    if m is None:
        raise InputError(path, "no four-digit year in the file name")
    return int(m.group())


def _unique_years(paths: list[Path], compat: str = "fixed") -> list[tuple[int, Path]]:
    """(year, file) in year order; a repeated year is an error, except under `compat: prototype`.

    The prototype keeps repeats: files in name order, reordered by `np.argsort` of their years
    (NumPy's default sort, as it does); for each year the last one wins, and the velocity
    speed field counts that winner once per repeat (see `prepare`).
    """
    if compat == "prototype":
        years = np.array([_year(p) for p in paths], dtype=int)
        return [(int(years[i]), paths[i]) for i in np.argsort(years)]
    seen: dict[int, Path] = {}
    for p in paths:
        y = _year(p)
        if y in seen:
            raise InputError(p, f"year {y} already given by {seen[y].name}")
        seen[y] = p
    return sorted(seen.items())


def _all_nan(arr: np.ndarray) -> bool:
    return not np.isfinite(arr).any()


def _load_thickness(cfg: Config, target: Grid | None = None, lazy: bool = False) -> tuple[list[ThicknessYear], Grid]:
    """Thickness years, and the grid of the first file: the one every other field must share
    (or, with `observations.regrid`, the ensemble's grid `target`, which every file is averaged onto)."""
    spec = cfg.observations.thickness
    out: list[ThicknessYear] = []
    grid: Grid | None = None
    files = _files(cfg, spec, "observations.thickness")
    for year, path in _unique_years(files, cfg.compat):
        with _open(path) as ds:
            height = _read_2d(ds, path, spec.var, cfg.compat)
            this = _grid_of(ds, path, height.shape)
            has_unc = spec.uncertainty_var in ds.variables
            unc = _read_2d(ds, path, spec.uncertainty_var, cfg.compat) if has_unc else None
            if target is not None:
                this = _grid_of(ds, path, height.shape, spec.var)
        if target is not None:
            if unc is not None and unc.shape != height.shape:
                raise InputError(path, f"'{spec.uncertainty_var}' shape {unc.shape} differs from '{spec.var}' {height.shape}")
            both = conform({"h": height, "u": height if unc is None else unc}, {"u": "h"}, this, target, cfg.observations.regrid, path)
            height, unc, this = both["h"], (None if unc is None else both["u"]), target
        grid = grid or this
        grid.check(this)
        if _all_nan(height) and cfg.compat == "fixed":  # the prototype carries on: the year's rates are NaN
            raise InputError(path, f"variable '{spec.var}' is all NaN")
        if unc is not None and unc.shape != height.shape:
            raise InputError(path, f"'{spec.uncertainty_var}' shape {unc.shape} differs from '{spec.var}' {height.shape}")
        if lazy and target is None:  # validated; left in the file, read by rows when used
            height = RowField(path, spec.var, cfg.compat, height.shape)
            unc = None if unc is None else RowField(path, spec.uncertainty_var, cfg.compat, unc.shape)
        out.append(ThicknessYear(year, height, unc, path))
    assert grid is not None  # _files never returns an empty list
    return out, grid


def _load_velocity(cfg: Config, grid: Grid, lazy: bool = False) -> list[VelocityYear]:
    spec = cfg.observations.velocity
    regrid = cfg.observations.regrid
    out = []
    for year, path in _unique_years(_files(cfg, spec, "observations.velocity"), cfg.compat):
        with _open(path) as ds:
            vx = _read_2d(ds, path, spec.vx_var, cfg.compat)
            vy = _read_2d(ds, path, spec.vy_var, cfg.compat)
            if regrid is None:
                grid.check(_grid_of(ds, path, vx.shape))
            else:  # averaged onto the ensemble's grid; a missing error's constant is set on that grid
                if vy.shape != vx.shape:
                    raise InputError(path, f"'{spec.vy_var}' shape {vy.shape} differs from '{spec.vx_var}' {vx.shape}")
                fine = {"vx": vx, "vy": vy}
                for key, name in (("ex", spec.vx_err_var), ("ey", spec.vy_err_var)):
                    if name in ds.variables:
                        fine[key] = _read_2d(ds, path, name, cfg.compat)
                fine = conform(fine, {"ex": "vx", "ey": "vy"}, _grid_of(ds, path, vx.shape, spec.vx_var), grid, regrid, path)
                vx, vy = fine["vx"], fine["vy"]
            present = [name in ds.variables for name in (spec.vx_err_var, spec.vy_err_var)]
            errs = []
            for key, name, like in (("ex", spec.vx_err_var, vx), ("ey", spec.vy_err_var, vy)):
                if name in ds.variables:
                    errs.append(fine[key] if regrid is not None else _read_2d(ds, path, name, cfg.compat))
                else:
                    if cfg.compat == "fixed":
                        warnings.warn(
                            f"{getattr(path, 'url', None) or path}: missing error variable '{name}'; using a constant "
                            f"{MISSING_VEL_ERROR} m/yr, which may fail the velocity uncertainty threshold",
                            DataWarning,
                            stacklevel=2,
                        )
                    errs.append(np.full_like(like, MISSING_VEL_ERROR))
        if vy.shape != vx.shape:
            raise InputError(path, f"'{spec.vy_var}' shape {vy.shape} differs from '{spec.vx_var}' {vx.shape}")
        if (_all_nan(vx) or _all_nan(vy)) and cfg.compat == "fixed":
            raise InputError(path, f"velocity '{spec.vx_var}'/'{spec.vy_var}' is all NaN")
        if lazy and regrid is None:  # validated; left in the file, read by rows when used
            vx, vy = (RowField(path, name, cfg.compat, vx.shape) for name in (spec.vx_var, spec.vy_var))
            errs = [RowField(path, name, cfg.compat, vx.shape) if has else e
                    for e, name, has in zip(errs, (spec.vx_err_var, spec.vy_err_var), present)]
        out.append(VelocityYear(year, vx, vy, errs[0], errs[1], path))
    return out


def _load_member(cfg: Config, path: Path, grid: Grid) -> Member:
    spec = cfg.ensemble
    with _open(path) as ds:
        if spec.time_var not in ds.variables:
            raise InputError(path, f"missing variable '{spec.time_var}'")
        tvar = ds.variables[spec.time_var]
        tvar.set_auto_maskandscale(False)
        raw = np.asarray(tvar[:], dtype=np.float64).reshape(-1)
        fills = [float(getattr(tvar, a)) for a in ("_FillValue", "missing_value") if hasattr(tvar, a)]
        rows = np.flatnonzero(valid_time_rows(raw, fills))
        units = getattr(tvar, "units", None)
        if units is None and cfg.compat == "prototype":
            units = getattr(tvar, "unit", None)  # the prototype's fallback attribute
        try:
            times = decode_time(raw[rows], units, cfg.compat)
        except TimeUnitsError as exc:
            raise InputError(path, f"time variable '{spec.time_var}': {exc}") from None
        for name in (spec.thickness_var, spec.vx_var, spec.vy_var):
            if name not in ds.variables:
                raise InputError(path, f"missing variable '{name}'")
            var = ds.variables[name]
            if var.ndim != 3:
                raise InputError(path, f"variable '{name}' has dims {var.dimensions}; expected (time, y, x)")
            if var.shape[0] != raw.shape[0]:
                raise InputError(path, f"variable '{name}' has {var.shape[0]} time rows but '{spec.time_var}' has {raw.shape[0]}")
            grid.check(_grid_of(ds, path, var.shape))
    if rows.size < 2:
        raise InputError(path, f"fewer than two valid time steps in '{spec.time_var}'")
    if cfg.compat == "prototype":  # the prototype sorts the rows by time (NumPy's default argsort)
        order = np.argsort(times)
        times, rows = times[order], rows[order]
        if np.any(np.diff(times) == 0):
            raise InputError(path, f"duplicate time values in '{spec.time_var}'")
    if np.any(np.diff(times) <= 0):
        raise InputError(path, f"time variable '{spec.time_var}' is not strictly increasing")
    variables = (spec.thickness_var, spec.vx_var, spec.vy_var)
    return Member(member_id(path), path, times, rows, variables, cfg.compat)


def _ensemble_grid(cfg: Config, path: Path) -> Grid:
    """The first member's grid (with its projection): what `observations.regrid` averages onto."""
    name = cfg.ensemble.thickness_var
    with _open(path) as ds:
        if name not in ds.variables:
            raise InputError(path, f"missing variable '{name}'")
        return _grid_of(ds, path, ds.variables[name].shape, name)


def load_data(cfg: Config, lazy: bool = False) -> EnsembleData:
    """Read observations, validate every member (grid, variables, time axis) and return both.

    Parameters
    ----------
    cfg : Config
        The run's configuration: where the observations and the ensemble are, and their variables.
    lazy : bool, default False
        Leave observation fields in their files once validated (`RowField`), for a chunked
        `prepare`; regridded fields are held (they are on the ensemble's grid).

    Returns
    -------
    EnsembleData
        The observation years, the members and the shared grid, with the input files read.

    Raises
    ------
    InputError
        A folder, file or variable is missing, a file is corrupt, or the grids do not match.
    """
    target, paths = None, None
    if cfg.observations.regrid is not None:  # observations come to the ensemble's grid: read it first
        paths = _files(cfg, cfg.ensemble, "ensemble", hidden=cfg.compat == "fixed")
        target = _ensemble_grid(cfg, paths[0])
    thickness, grid = _load_thickness(cfg, target, lazy)
    velocity = _load_velocity(cfg, grid, lazy)
    if paths is None:  # observations are checked first, as the prototype reads them first
        paths = _files(cfg, cfg.ensemble, "ensemble", hidden=cfg.compat == "fixed")
    members = [_load_member(cfg, p, grid) for p in paths]
    if len(members) < 2:
        raise InputError(cfg.ensemble.dir, f"only {len(members)} member matches '{cfg.ensemble.pattern}'; weighting needs at least 2")
    seen: dict[str, Path] = {}
    for m in members:
        if m.member_id in seen:
            raise InputError(m.path, f"duplicate member id {m.member_id} (also from {seen[m.member_id].name})")
        seen[m.member_id] = m.path
    files = [t.source for t in thickness] + [v.source for v in velocity] + [m.path for m in members]
    return EnsembleData(thickness, velocity, members, grid, files)
