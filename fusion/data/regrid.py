"""Observations on their own grid, averaged onto the ensemble's cells (`observations.regrid`).

Observations come at their own resolution (velocity at hundreds of metres, altimetry at 1 to
40 km); the ensemble's grid is the one inference works on. A finer field on the same
projection is averaged cell by cell: xarray's `coarsen` when the ensemble cell is a whole
block of k × k observation cells aligned with it, xarray-regrid's conservative scheme
otherwise. A cell keeps its mean only when at least `min_valid_fraction` of its area is valid.
Fields already on the ensemble's grid are returned untouched (same arrays, same bits), so a
config without `observations.regrid` and one with it give identical results on matching grids.

Uncertainty of a cell mean, from the per-cell σᵢ of its n valid observation cells:
- `correlated` (default): √(mean σᵢ²), errors fully correlated within one cell, as the
  correlated-errors model makes them (lengths of tens of km against cells of a few km);
- `independent`: √(Σ σᵢ²) / n = √(mean σᵢ² / n), errors independent between observation cells.
xarray and xarray-regrid are imported inside the functions: most runs never regrid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fusion.errors import InputError

if TYPE_CHECKING:
    import netCDF4

    from fusion.config import Regrid
    from fusion.data.grid import Grid

__all__ = ["projection_of", "conform", "same_grid"]

ALIGN_TOLERANCE = 1e-6  # fraction of a cell: coordinates closer than this are the same


def projection_of(ds: "netCDF4.Dataset", var: str) -> str | None:
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


def same_grid(a: "Grid", b: "Grid") -> bool:
    """Same shape and, where both carry them, the same coordinate values."""
    if a.shape != b.shape:
        return False
    for mine, theirs in ((a.y, b.y), (a.x, b.x)):
        if mine is not None and theirs is not None and not (mine.shape == theirs.shape and np.array_equal(mine, theirs)):
            return False
    return True


def _spacing(coord: np.ndarray, path: Path, name: str) -> float:
    step = np.diff(coord)
    if step.size == 0 or not np.all(np.isfinite(step)) or np.any(step == 0):
        raise InputError(path, f"coordinate '{name}' is not a regular axis; regridding needs cell centres")
    if not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise InputError(path, f"coordinate '{name}' is not evenly spaced; regridding needs a regular grid")
    return float(step[0])


def _check(source: "Grid", target: "Grid", path: Path) -> None:
    """Everything that makes averaging `source` onto `target` meaningless is one line, naming both."""
    for grid in (source, target):
        if grid.y is None or grid.x is None:
            raise InputError(path, f"cannot regrid: {grid.describe()} has no x/y coordinates")
    sp, tp = source.projection, target.projection
    if sp is not None and tp is not None and sp != tp:
        raise InputError(
            path,
            f"projection mismatch: {source.describe()} is on '{_short(sp)}', {target.describe()} on "
            f"'{_short(tp)}'; regridding averages only within one projection",
        )
    for axis in ("y", "x"):
        s, t = getattr(source, axis), getattr(target, axis)
        ds, dt = abs(_spacing(s, path, axis)), abs(_spacing(t, target.source, axis))
        if ds > dt * (1 + 1e-9):
            raise InputError(
                path,
                f"{source.describe()} is coarser than {target.describe()} along {axis} ({ds:g} vs {dt:g}); "
                "regridding only averages finer observations onto the ensemble's cells",
            )
        s_lo, s_hi = s.min() - ds / 2, s.max() + ds / 2
        t_lo, t_hi = t.min() - dt / 2, t.max() + dt / 2
        if s_hi <= t_lo or t_hi <= s_lo:
            raise InputError(
                path,
                f"no overlap: {source.describe()} spans {axis} {s_lo:g}..{s_hi:g}, "
                f"{target.describe()} spans {t_lo:g}..{t_hi:g}",
            )


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _block_factor(source: "Grid", target: "Grid") -> tuple[int, int] | None:
    """(ky, kx) when every target cell is exactly a ky × kx block of source cells (shared edges), else None."""
    out = []
    for axis in ("y", "x"):
        s, t = getattr(source, axis), getattr(target, axis)
        ds, dt = _spacing(s, source.source, axis), _spacing(t, target.source, axis)
        k = dt / ds
        if k <= 0 or abs(k - round(k)) > ALIGN_TOLERANCE * k:
            return None
        k = int(round(k))
        # source edge positions must line up with target edges: offset of the first edge, in source cells
        offset = ((s[0] - ds / 2) - (t[0] - dt / 2)) / ds
        if abs(offset - round(offset)) > ALIGN_TOLERANCE or int(round(offset)) % k:
            return None
        out.append(k)
    return out[0], out[1]


def _as_array(field: np.ndarray, grid: "Grid"):
    import xarray as xr

    return xr.DataArray(field.astype(np.float64), dims=("y", "x"), coords={"y": grid.y, "x": grid.x})


def _average(da, source: "Grid", target: "Grid", factor: tuple[int, int] | None):
    """(mean over valid area, valid fraction) of `da` on the target's cells, NaN outside the source."""
    import xarray as xr

    valid = da.notnull().astype(np.float64)
    if factor is not None:
        ky, kx = factor
        # extend the source to whole blocks (NaN, invalid) so each block is one target cell
        ext = {}
        for axis, k in (("y", ky), ("x", kx)):
            c = getattr(source, axis)
            extra = (-len(c)) % k
            ext[axis] = np.concatenate([c, c[-1] + (c[1] - c[0]) * np.arange(1, extra + 1)])
        blocks = xr.Dataset({"v": da.fillna(0.0), "w": valid}).reindex(y=ext["y"], x=ext["x"], fill_value=0.0)
        coarse = blocks.coarsen(y=ky, x=kx, boundary="exact", coord_func="mean").sum()
        total = coarse["w"]
        mean = (coarse["v"] / total).where(total > 0)
        fraction = total / (ky * kx)
        tol = ALIGN_TOLERANCE * min(abs(target.y[1] - target.y[0]), abs(target.x[1] - target.x[0]))
        kw = {"y": target.y, "x": target.x, "method": "nearest", "tolerance": tol}
        return mean.reindex(**kw), fraction.reindex(**kw).fillna(0.0)
    import xarray_regrid  # noqa: F401  (registers the `.regrid` accessor)

    grid_ds = xr.Dataset(coords={"y": target.y, "x": target.x})
    mean = da.regrid.conservative(grid_ds, latitude_coord=None, time_dim=None, skipna=True, nan_threshold=1.0)
    fraction = valid.regrid.conservative(grid_ds, latitude_coord=None, time_dim=None, skipna=False)
    # area outside the source counts as invalid: xarray-regrid leaves it NaN
    return mean, fraction.fillna(0.0)


def conform(
    fields: Mapping[str, np.ndarray],
    uncertainties: Mapping[str, str],
    source: "Grid",
    target: "Grid",
    spec: "Regrid | None",
    path: Path,
) -> dict[str, np.ndarray]:
    """`fields` on `target`'s grid, float32; untouched when the grids already agree.

    `uncertainties` maps an uncertainty field to the value field it belongs to: its cell
    value follows the module's rule and is NaN wherever that value's cell mean is NaN.
    """
    if same_grid(source, target):
        return dict(fields)
    if spec is None:
        problem = "shape" if source.shape != target.shape else "coordinate values"
        raise InputError(path, f"grid mismatch ({problem}): {source.describe()} vs {target.describe()}")
    _check(source, target, path)
    factor = _block_factor(source, target) if spec.method == "mean" else None
    cells = abs(np.diff(target.y[:2])[0] * np.diff(target.x[:2])[0]) / abs(np.diff(source.y[:2])[0] * np.diff(source.x[:2])[0])
    out: dict[str, np.ndarray] = {}
    kept: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, field in fields.items():
            if name in uncertainties:
                continue
            mean, fraction = _average(_as_array(field, source), source, target, factor)
            ok = fraction.values >= spec.min_valid_fraction * (1 - 1e-9)
            kept[name] = ok
            out[name] = np.where(ok, mean.values, np.nan).astype(np.float32)
        for name, owner in uncertainties.items():
            if name not in fields:
                continue
            sigma = _as_array(fields[name], source)
            var_mean, fraction = _average(sigma**2, source, target, factor)
            n_valid = fraction.values * cells
            cell_var = var_mean.values if spec.uncertainty == "correlated" else var_mean.values / n_valid
            ok = kept.get(owner, fraction.values >= spec.min_valid_fraction * (1 - 1e-9))
            out[name] = np.where(ok, np.sqrt(cell_var), np.nan).astype(np.float32)
    return {name: out[name] for name in fields}
