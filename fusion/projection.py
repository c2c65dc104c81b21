"""Sea-level contribution in the target year per member, and its weighted distribution.

Each member's SLE comes from its grounded-ice volume `totig` in a historical and a forward
run (`runNN.nc`, matched to member ids by the number in the file name). The weighted
distribution is the mixture that puts mass E_post[w_m] on SLE_m; its quantiles are exact
(the smallest member SLE whose cumulative weight reaches q), not the prototype's repetition
of each member `int(w·1000)` times. Draw by draw, Σ_m w_m·SLE_m gives the posterior of the
weighted mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import netCDF4
import numpy as np
import xarray as xr

from fusion.data.load import member_id
from fusion.data.timeaxis import TimeUnitsError, decode_time, valid_time_rows
from fusion.errors import InputError

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = [
    "RHO_ICE",
    "RHO_WATER",
    "OCEAN_AREA_M2",
    "TARGET_TOLERANCE_YEARS",
    "sle_mm",
    "projection_files",
    "read_volume",
    "member_sle",
    "member_ids_of",
    "project",
    "weighted_quantile",
    "projection_summary",
]

RHO_ICE: float = 917.0
RHO_WATER: float = 1028.0
OCEAN_AREA_M2: float = 3.62e14
#: How far the forward run's nearest time may sit from `target_year` before it is an error.
TARGET_TOLERANCE_YEARS: float = 0.5


def sle_mm(v_hist_last: np.ndarray | float, v_fwd_target: np.ndarray | float) -> np.ndarray:
    """(ρ_ice/ρ_water)·(V_hist[last] − V_fwd[target])/A_ocean·1000: ice lost, in mm of sea level."""
    delta = np.asarray(v_hist_last, dtype=np.float64) - np.asarray(v_fwd_target, dtype=np.float64)
    return (RHO_ICE / RHO_WATER) * delta / OCEAN_AREA_M2 * 1000.0


def projection_files(
    folder: Path | str, member_ids: Sequence[str], key: str, *,
    storage_options: Mapping[str, Any] | None = None, cache_dir: Path | None = None,
) -> dict[str, Path]:
    """Map each member id to its `runNN.nc` in `folder` (a URL: through the cache of
    `fusion.data.remote`); a missing or doubled member is an error."""
    from fusion.data.remote import is_remote, list_inputs

    if is_remote(folder):
        listed = list_inputs(folder, "*.nc", key, storage_options=storage_options, cache_dir=cache_dir)
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(folder, f"folder not found (config key {key})")
        listed = sorted(folder.glob("*.nc"))
    found: dict[str, Path] = {}
    for path in listed:
        try:
            mid = member_id(path)
        except InputError:
            continue
        if mid in found:
            raise InputError(path, f"member {mid} already given by {found[mid].name}")
        found[mid] = path
    missing = [m for m in member_ids if m not in found]
    if missing:
        raise InputError(folder, f"no projection file for member(s) {', '.join(missing)} (config key {key})")
    return {m: found[m] for m in member_ids}


def read_volume(path: Path, var: str) -> tuple[np.ndarray, np.ndarray]:
    """(decimal years, volume) of the valid rows of `var` on `time`, sorted by time."""
    try:
        ds = netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"not a readable NetCDF file ({reason})") from None
    with ds:
        if var not in ds.variables:
            raise InputError(path, f"missing variable '{var}'")
        if "time" not in ds.variables:
            raise InputError(path, "missing variable 'time'")
        tvar = ds.variables["time"]
        tvar.set_auto_maskandscale(False)
        raw_t = np.asarray(tvar[:], dtype=np.float64).reshape(-1)
        fills = [float(getattr(tvar, a)) for a in ("_FillValue", "missing_value") if hasattr(tvar, a)]
        vol = np.ma.filled(np.ma.masked_invalid(ds.variables[var][:]).astype(np.float64), np.nan).reshape(-1)
        units = getattr(tvar, "units", None)
    if vol.shape != raw_t.shape:
        raise InputError(path, f"'{var}' has {vol.size} values but 'time' has {raw_t.size}")
    keep = valid_time_rows(raw_t, fills) & np.isfinite(vol)
    if not keep.any():
        raise InputError(path, f"no valid time rows with a finite '{var}'")
    try:
        years = decode_time(raw_t[keep], units, "fixed")
    except TimeUnitsError as exc:
        raise InputError(path, f"time: {exc}") from None
    order = np.argsort(years, kind="stable")
    return years[order], vol[keep][order]


def member_sle(cfg: Config, member_ids: Sequence[str]) -> xr.DataArray:
    """SLE_mm in `cfg.projection.target_year` per member (dim `member`), from the two run folders."""
    spec = cfg.projection
    hist = projection_files(spec.historical_dir, member_ids, "projection.historical_dir",
                             storage_options=spec.storage_options, cache_dir=cfg.cache.dir)
    fwd = projection_files(spec.forward_dir, member_ids, "projection.forward_dir",
                             storage_options=spec.storage_options, cache_dir=cfg.cache.dir)
    values = []
    for m in member_ids:
        _, v_hist = read_volume(hist[m], spec.volume_var)
        t_fwd, v_fwd = read_volume(fwd[m], spec.volume_var)
        i = int(np.argmin(np.abs(t_fwd - spec.target_year)))
        if abs(t_fwd[i] - spec.target_year) > TARGET_TOLERANCE_YEARS:
            raise InputError(
                fwd[m],
                f"no time within {TARGET_TOLERANCE_YEARS} years of target_year {spec.target_year:g} "
                f"(covers {t_fwd[0]:.3f}–{t_fwd[-1]:.3f})",
            )
        values.append(float(sle_mm(v_hist[-1], v_fwd[i])))
    return xr.DataArray(
        np.array(values), dims=("member",), coords={"member": list(member_ids)},
        name="sle_mm", attrs={"units": "mm", "target_year": float(spec.target_year)},
    )


def member_ids_of(data: Any) -> list[str]:
    """The member ids, in order, of what a caller hands `project` as its third argument.

    Parameters
    ----------
    data : Mapping, EnsembleData, Prepared or sequence of str
        What `load_data(cfg)` returns, as a mapping with an `"ensemble"` Dataset whose
        `member` coordinate holds the ids (ice-fusion's form); any object with a
        `member_ids` attribute (`EnsembleData`, `Prepared`); or the ids themselves.

    Returns
    -------
    list of str
        The ids in the order given.

    Raises
    ------
    TypeError
        For a single string, or a mapping without `"ensemble"`: neither names members.
    """
    if isinstance(data, Mapping):
        if "ensemble" not in data:
            raise TypeError(f"project: a mapping needs an 'ensemble' entry (got keys {sorted(map(str, data))})")
        return [str(m) for m in np.asarray(data["ensemble"]["member"].values)]
    ids = getattr(data, "member_ids", data)
    if isinstance(ids, str):
        raise TypeError(f"project: member ids must be a sequence of ids, not the string {ids!r}")
    return [str(m) for m in ids]


def project(cfg: Config, trace: xr.DataTree, data: Any = None, sle: xr.DataArray | None = None) -> xr.Dataset:
    """Per-member SLE in the target year with the posterior weights, and Σ w·SLE for every draw.

    Parameters
    ----------
    cfg : Config
        The run's configuration (`projection` section: folders, target year, quantiles).
    trace : xarray.DataTree
        The sampled trace; its posterior holds `w` on (chain, draw, member).
    data : Mapping, EnsembleData, Prepared or sequence of str, optional
        Which members, in which row order (see `member_ids_of`): what `load_data(cfg)`
        returned, the prepared inputs, or the member ids. Default: the posterior's members.
        It must name the same set of members as the posterior.
    sle : xarray.DataArray, optional
        `member_sle`'s result when the caller has read the volume files already (`fusion run`
        reads them before sampling, to fail early); aligned by member label.

    Returns
    -------
    xarray.Dataset
        `sle_mm` and `weight` (posterior mean of `w`) on `member`, and
        `weighted_mean` on (chain, draw); attributes carry the target year and quantile levels.
    """
    w = trace["posterior"]["w"]
    posterior_members = [str(m) for m in w["member"].values]
    ids = member_ids_of(data) if data is not None else posterior_members
    if sorted(ids) != sorted(posterior_members) or len(set(ids)) != len(ids):
        raise ValueError(f"member ids {ids} do not match the posterior's members {posterior_members}")
    sle = member_sle(cfg, ids) if sle is None else sle.sel(member=ids)
    w = w.sel(member=ids)
    weighted = (w * sle).sum("member")
    return xr.Dataset(
        {
            "sle_mm": sle,
            "weight": w.mean(("chain", "draw")),
            "weighted_mean": weighted.assign_attrs(units="mm"),
        },
        attrs={
            "units": "mm",
            "target_year": float(cfg.projection.target_year),
            "lower_q": float(cfg.projection.lower_q),
            "upper_q": float(cfg.projection.upper_q),
        },
    )


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float | Sequence[float]) -> np.ndarray:
    """Inverse of the weighted empirical CDF: the smallest value whose cumulative weight reaches q.

    Cumulative sums are compared with a relative slack of 1e-12 so that a q landing exactly on
    a step (e.g. 0.5 with ten weights of 0.1) is not pushed one member up by rounding.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if values.shape != weights.shape or values.ndim != 1 or values.size == 0:
        raise ValueError("values and weights must be non-empty 1-D arrays of one length")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order]) / weights.sum()
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantiles must lie in [0, 1], got {qs}")
    idx = np.searchsorted(cum, qs * (1.0 - 1e-12), side="left")
    return values[order][np.minimum(idx, values.size - 1)]


def weighted_quantile_rows(values: np.ndarray, weights: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """`weighted_quantile` of every row of `weights` (K, M) at once: (K, len(q)), the same rule
    (the perfect-model calibration scores thousands of weightings of the same members)."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[:, order], axis=1) / weights.sum(axis=1, keepdims=True)
    qs = np.asarray(q, dtype=np.float64) * (1.0 - 1e-12)
    idx = (cum[:, :, None] < qs[None, None, :]).sum(axis=1)  # searchsorted(…, side="left") per row
    return values[order][np.minimum(idx, values.size - 1)]


def _interval(x: np.ndarray, lower_q: float, upper_q: float) -> dict[str, float]:
    lo, med, hi = np.quantile(x, [lower_q, 0.5, upper_q])
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


def projection_summary(
    projection: xr.Dataset, lower_q: float | None = None, upper_q: float | None = None
) -> dict[str, Any]:
    """The weighted SLE mixture (median, mean, sd, [lower, upper]) and the posterior of Σ w·SLE.

    Parameters
    ----------
    projection : xarray.Dataset
        `project`'s result.
    lower_q, upper_q : float, optional
        Quantile levels of the interval; default: those `project` stored (the config's, 5–95 %).

    Returns
    -------
    dict
    """
    lower_q = float(projection.attrs.get("lower_q", 0.05) if lower_q is None else lower_q)
    upper_q = float(projection.attrs.get("upper_q", 0.95) if upper_q is None else upper_q)
    sle = projection["sle_mm"].values
    out: dict[str, Any] = {}
    for key, w in (("weighted", projection["weight"].values), ("unweighted", np.ones_like(sle))):
        w = w / w.sum()
        mean = float(np.sum(w * sle))
        lo, med, hi = weighted_quantile(sle, w, [lower_q, 0.5, upper_q])
        out[key] = {
            "median": float(med),
            "mean": mean,
            "sd": float(np.sqrt(np.sum(w * (sle - mean) ** 2))),
            "lower": float(lo),
            "upper": float(hi),
        }
    summary: dict[str, Any] = dict(out["weighted"])
    summary.update(
        lower_q=lower_q,
        upper_q=upper_q,
        units="mm",
        weighted_mean=_interval(projection["weighted_mean"].values.ravel(), lower_q, upper_q),
        unweighted=out["unweighted"],
        n_members=int(sle.size),
    )
    if "target_year" in projection.attrs:
        summary["target_year"] = float(projection.attrs["target_year"])
    return summary
