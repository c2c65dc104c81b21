"""The ensemble's member files: one file per member, `h`, `ua`, `va` on (time, y, x), time read
undecoded and turned into decimal years (`fusion.data.timeaxis`). Members are validated here and
their fields read on demand by `prepare` (27 members on a 761 × 761 grid do not fit at once)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fusion.data.fields import Member
from fusion.data.grid import Grid
from fusion.data.netcdf import crs_of, grid_of, open_dataset
from fusion.data.timeaxis import TimeUnitsError, decode_time, valid_time_rows
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["Member", "member_id", "read_member", "ensemble_grid"]

_NUMBER = re.compile(r"\d+")


def member_id(path: Path) -> str:
    """`run<N>` from the first number in the file name, without zero padding."""
    m = _NUMBER.search(path.name)
    if m is None:
        raise InputError(path, "member file name has no number to make a member id from")
    return f"run{int(m.group())}"


def read_member(cfg: "Config", path: Path) -> Member:
    """A member's time axis (fills dropped, decoded, sorted under `compat: prototype`), variables
    checked to be (time, y, x) with as many rows as its time, and its grid."""
    spec = cfg.ensemble
    with open_dataset(path) as ds:
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
        grid = None
        for name in (spec.thickness_var, spec.vx_var, spec.vy_var):
            if name not in ds.variables:
                raise InputError(path, f"missing variable '{name}'")
            var = ds.variables[name]
            if var.ndim != 3:
                raise InputError(path, f"variable '{name}' has dims {var.dimensions}; expected (time, y, x)")
            if var.shape[0] != raw.shape[0]:
                raise InputError(path, f"variable '{name}' has {var.shape[0]} time rows but '{spec.time_var}' has {raw.shape[0]}")
            here = grid_of(ds, path, var.shape)
            if grid is None:
                grid = grid_of(ds, path, var.shape, name)
            else:
                grid.check(here)
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
    return Member(member_id(path), path, times, rows, variables, cfg.compat, grid)


def ensemble_grid(cfg: "Config", path: Path) -> tuple[Grid, str | None]:
    """The first member's grid (with its projection) and its CRS text: what observations come onto."""
    name = cfg.ensemble.thickness_var
    with open_dataset(path) as ds:
        if name not in ds.variables:
            raise InputError(path, f"missing variable '{name}'")
        return grid_of(ds, path, ds.variables[name].shape, name), crs_of(ds, name)
