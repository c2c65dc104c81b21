"""Observations on their own grid, brought onto the ensemble's (`align`): the load stage's step
after reading, once for every product. y running the other way is flipped; observations and
ensemble must share a CRS; a finer grid is averaged onto the ensemble's cells (`observations.regrid`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config, Regrid
    from fusion.data.grid import Grid
    from fusion.data.readers import StreamInput
    from fusion.data.readers.members import Member

__all__ = ["conform", "same_grid", "align", "Aligned"]

ALIGN_TOLERANCE = 1e-6  # fraction of a cell: coordinates closer than this are the same


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


ASSUMED_ENSEMBLE_CRS = "EPSG:3031"  # DESIGN.md: an ensemble file that states none is taken to be on it


@dataclass
class Aligned:
    """Observation records on one grid, members checked against it, and the CRS record of the run."""

    thickness: list[Any]
    velocity: list[Any]
    grid: "Grid"
    crs: dict[str, Any]


def align(cfg: "Config", streams: "list[StreamInput]", members: "list[Member]", ensemble: "tuple[Grid, str | None]") -> Aligned:
    """Every observation record on the grid that `prepare` works on, each step once:

    1. orientation: a file whose y runs the other way from the ensemble's is read flipped;
    2. CRS: each stream's (stated by its files, the config, or its product's documentation) must be
       the ensemble's (its files' `grid_mapping`, else EPSG:3031, recorded as assumed);
    3. grid: with `observations.regrid`, finer fields are averaged onto the ensemble's cells; without,
       every field and member must share the first thickness field's grid (as the prototype).
    """
    ens_grid, ens_crs = ensemble
    crs = _crs_record(streams, ens_grid, ens_crs)
    spec = cfg.observations.regrid
    thickness, velocity = ([_oriented(r, ens_grid) for r in s.records] for s in streams)
    reference = ens_grid if spec is not None else thickness[0].grid
    thickness = [_onto_thickness(r, reference, spec, cfg) for r in thickness]
    velocity = [_onto_velocity(r, reference, spec) for r in velocity]
    for member in members:
        reference.check(member.grid)
    return Aligned(thickness, velocity, reference, crs)


def _crs_record(streams: "list[StreamInput]", ens_grid: "Grid", ens_crs: str | None) -> dict[str, Any]:
    from fusion.data.netcdf import epsg_name

    def key(text: str) -> str:
        return epsg_name(text) or " ".join(text.split())

    ensemble = {"crs": epsg_name(ens_crs) or ens_crs or ASSUMED_ENSEMBLE_CRS,
                "from": "file" if ens_crs else "assumed", "file": ens_grid.source.name}
    record: dict[str, Any] = {"ensemble": ensemble, "streams": {}, "check": "same"}
    for s in streams:
        if s.crs is None:
            record["streams"][s.stream] = {"product": s.product, "crs": ensemble["crs"], "from": "unstated: taken as the ensemble's"}
            continue
        record["streams"][s.stream] = {"product": s.product, "crs": epsg_name(s.crs) or s.crs, "from": s.crs_from}
        if key(s.crs) != key(ensemble["crs"]):
            raise InputError(
                s.files[0],
                f"projection mismatch (CRS): {s.stream} ({s.product}) is on '{_short(s.crs)}', the ensemble "
                f"({ens_grid.source.name}) on '{_short(ensemble['crs'])}'{' (assumed)' if not ens_crs else ''}",
            )
    return record


def _flip(field: Any) -> Any:
    return field[::-1] if isinstance(field, np.ndarray) else field.with_flip()


def _oriented(record: Any, ens_grid: "Grid") -> Any:
    """`record` with y in the ensemble's direction (its fields read flipped when they run the other way)."""
    from dataclasses import replace

    from fusion.data.grid import Grid

    g = record.grid
    if g is None or g.y is None or ens_grid.y is None or g.y.size < 2 or ens_grid.y.size < 2:
        return record
    if np.sign(g.y[1] - g.y[0]) == np.sign(ens_grid.y[1] - ens_grid.y[0]):
        return record
    flipped = Grid(g.shape, g.y[::-1].copy(), g.x, g.source, g.projection)
    names = ("height", "uncertainty") if hasattr(record, "height") else ("vx", "vy", "err_x", "err_y")
    return replace(record, grid=flipped, **{n: None if getattr(record, n) is None else _flip(getattr(record, n)) for n in names})


def _whole(field: Any) -> np.ndarray:
    return field if isinstance(field, np.ndarray) else field[slice(None)]


def _onto_thickness(record: Any, reference: "Grid", spec: "Regrid | None", cfg: "Config") -> Any:
    from dataclasses import replace

    if spec is None:
        reference.check(record.grid)
        return record
    height, unc = _whole(record.height), None if record.uncertainty is None else _whole(record.uncertainty)
    both = conform({"h": height, "u": height if unc is None else unc}, {"u": "h"}, record.grid, reference, spec, record.source)
    return replace(record, height=both["h"], uncertainty=None if unc is None else both["u"], grid=reference)


def _onto_velocity(record: Any, reference: "Grid", spec: "Regrid | None") -> Any:
    """On the reference grid; an absent error becomes the prototype's constant there."""
    from dataclasses import replace

    from fusion.data.readers.base import MISSING_VEL_ERROR

    if spec is None:
        reference.check(record.grid)
        errs = [e if e is not None else np.full(reference.shape, MISSING_VEL_ERROR, dtype=np.float32)
                for e in (record.err_x, record.err_y)]
        return replace(record, err_x=errs[0], err_y=errs[1])
    fine = {"vx": _whole(record.vx), "vy": _whole(record.vy)}
    for key, err in (("ex", record.err_x), ("ey", record.err_y)):
        if err is not None:
            fine[key] = _whole(err)
    fine = conform(fine, {"ex": "vx", "ey": "vy"}, record.grid, reference, spec, record.source)
    errs = [fine.get(k, np.full_like(fine[like], MISSING_VEL_ERROR)) for k, like in (("ex", "vx"), ("ey", "vy"))]
    return replace(record, vx=fine["vx"], vy=fine["vy"], err_x=errs[0], err_y=errs[1], grid=reference)
