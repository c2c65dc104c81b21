"""Deterministic synthetic datasets in the research prototype's file layout.

The harness needs data whose truth is known (recovery, coverage, stability) and users need a
small example that runs in seconds; both must look, byte for byte in structure, like the
inputs the prototype was written for, awkward cases included (day-00 time origins, a
fill-valued time row, missing error variables, observation gaps). Everything here is a
function of one frozen `SyntheticSpec`: the same spec writes the same bytes.

Physics, kept simple but with the right shapes and magnitudes:
- an ellipse-ish ice sheet (Vialov-like thickness profile, 150 m at the margin);
- a few curved fast ice streams (hundreds to a couple of thousand m/yr) that reach the margin;
- dynamic thinning concentrated at stream termini and along the margin, growing with time;
- per member, six scalar parameters (`PARAM_RANGES`) drawn from a seeded generator;
- one member is the hidden truth: observations are its fields plus noise whose standard
  deviation is the uncertainty written beside them, with cloud/no-coverage gaps, a tail of
  uncertainties above the pipeline's thresholds and a few NaNs inside member fields.

Member indices in the spec (`truth_member`, `fill_member`, ...) are 0-based positions:
index `i` is the file `run{i+1:02d}_regridded.nc`, member id `run{i+1}`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from fusion.data.correlation import ErrorCorrelation, correlated_field
from fusion.io import atomic_path, write_json, write_text

__all__ = [
    "generate",
    "SyntheticSpec",
    "write_example",
    "sle_mm",
    "PARAM_RANGES",
    "TIME_ENCODINGS",
    "EXAMPLE_SEED",
    "EXAMPLE_SPEC",
    "FILL_TIME",
    "PSU_UNITS",
]

DX = 8000.0  # grid spacing (m), as the prototype's 8 km Antarctic grid
OBS_FILL = np.float32(-9999.0)
FILL_TIME = 9.969209968386869e36  # netCDF default double fill, the prototype's padded time rows
PSU_UNITS = "seconds since 2000-01-00 00:00:00"  # day 00: origin is 1999-12-31
PSU_YEAR_SECONDS = 31556926.0  # the PSU model's year: 365.2422 days, whole seconds
TIME_ENCODINGS: tuple[str, ...] = ("psu", "cf", "years_nounits", "years_units")
RHO_ICE, RHO_WATER, OCEAN_AREA = 917.0, 1028.0, 3.62e14
EXAMPLE_SEED = 7

# Member parameters: uniform ranges. Rates are those of the first simulated year.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "thinning": (0.5, 5.0),  # m/yr, peak dynamic thinning at stream termini
    "thinning_growth": (0.0, 0.06),  # 1/yr, relative growth of the dynamic thinning rate
    "acceleration": (0.003, 0.04),  # 1/yr, relative speed-up of the ice streams
    "flow_factor": (0.85, 1.15),  # multiplies stream speeds
    "smb": (-0.2, 0.3),  # m/yr, uniform surface-mass-balance anomaly (thickening if > 0)
    "drift": (-0.4, 0.4),  # m/yr, RMS of a smooth spurious thickness trend (model bias)
}

# Projection: the continental volume budget is driven by the same parameters, on an effective
# area that puts SLE at 2100 in a plausible range (tens to a few hundred mm).
_PROJ_AREA = 5.0e11  # m²
_PROJ_DYN_FRACTION = 0.15  # share of the sheet under dynamic thinning
_PROJ_SMB_FRACTION = 0.3  # the observed-period SMB anomaly, damped over the century
_PROJ_DRIFT_FRACTION = 0.1
_PROJ_REF_YEAR = 2015.0
_PROJ_HIST_YEARS = (1950, 2015)
_PROJ_FWD_YEARS = (2015, 2100)
_PROJ_HIST_EFOLD = 20.0  # years: historical losses ramp up towards the present

# Independent random streams, so an option never perturbs the rest of the dataset.
_K_GEOM, _K_PARAMS, _K_OBS_ELEV, _K_OBS_VEL, _K_MEMBER, _K_TRUTH, _K_OBS_CORR = range(7)


@dataclass(frozen=True)
class _Geometry:
    """Fields shared by every member; drawn once in normalised coordinates (resolution-free)."""

    x: np.ndarray  # (nx,) m
    y: np.ndarray  # (ny,) m
    u: np.ndarray  # (1, nx) normalised [-1, 1]
    v: np.ndarray  # (ny, 1)
    ice: np.ndarray  # (ny, nx) bool
    q: np.ndarray  # normalised radius, 1 at the margin
    H0: np.ndarray  # thickness at the first year (m)
    bed: np.ndarray  # bed elevation (m); surface height = bed + thickness
    ex: np.ndarray  # flow direction, x component
    ey: np.ndarray
    base_speed: np.ndarray  # slow sheet flow (m/yr)
    stream_speed: np.ndarray  # fast-flow speed before the member's flow factor (m/yr)
    thin_pattern: np.ndarray  # [0, 1]: where dynamic thinning acts
    drift_pattern: np.ndarray  # unit RMS: shape of the member drift
    rough: np.ndarray  # bool: rough terrain, thickness uncertainty tail (> thresholds)
    rough_rmse: np.ndarray  # m, at rough pixels
    shear: np.ndarray  # bool: shear margins, velocity error tail
    shear_err: np.ndarray  # m/yr, at shear pixels
    n_streams: int


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _smooth_field(
    u: np.ndarray, v: np.ndarray, rng: np.random.Generator, modes: int = 8, kmax: float = 3.5, unit_rms: bool = False
) -> np.ndarray:
    """A smooth random field of a few plane waves, the same shape at any resolution.

    Scaled into [-1, 1], or (`unit_rms`) to an expected mean square of 1.
    """
    amp = rng.uniform(0.3, 1.0, modes)
    kx = rng.uniform(-kmax, kmax, modes)
    ky = rng.uniform(-kmax, kmax, modes)
    ph = rng.uniform(0.0, 2 * np.pi, modes)
    out = np.zeros(np.broadcast_shapes(u.shape, v.shape))
    for a, ax, ay, p in zip(amp, kx, ky, ph, strict=True):
        out += a * np.cos(np.pi * (ax * u + ay * v) + p)
    return out / (np.sqrt(0.5 * np.sum(amp * amp)) if unit_rms else amp.sum())


def _smoothstep(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _geometry(ny: int, nx: int, seed: int) -> _Geometry:
    rng = _rng(seed, _K_GEOM)
    x = (np.arange(nx) - (nx - 1) / 2.0) * DX
    y = (np.arange(ny) - (ny - 1) / 2.0) * DX
    u = np.linspace(-1.0, 1.0, nx)[None, :]
    v = np.linspace(-1.0, 1.0, ny)[:, None]

    cx, cy = rng.uniform(-0.05, 0.05, 2)
    X = (u - cx) / 1.08
    Y = (v - cy) / 1.05
    rho = np.hypot(X, Y)
    theta = np.arctan2(Y, X)
    edge = np.ones_like(rho)
    for k in range(2, 6):
        edge += rng.uniform(-0.05, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    q = rho / edge
    ice = q < 1.0

    hmax = rng.uniform(3000.0, 3400.0)
    profile = np.clip(1.0 - np.clip(q, 0.0, None) ** (4.0 / 3.0), 0.0, None) ** (3.0 / 8.0)
    H0 = 150.0 + (hmax - 150.0) * profile + 40.0 * _smooth_field(u, v, rng, kmax=6.0)
    H0 = np.where(ice, H0, 0.0)
    bed = -150.0 + 450.0 * _smooth_field(u, v, rng, kmax=2.5)

    norm = np.maximum(np.hypot(u - cx, v - cy), 1e-9)
    ex = (u - cx) / norm
    ey = (v - cy) / norm
    ex, ey = np.broadcast_to(ex, q.shape).copy(), np.broadcast_to(ey, q.shape).copy()

    n_streams = int(rng.integers(4, 7))
    start = rng.uniform(0.0, 2 * np.pi)
    stream_speed = np.zeros_like(q)
    s_max = np.zeros_like(q)
    thin_streams = np.zeros_like(q)
    for k in range(n_streams):
        th = start + 2 * np.pi * k / n_streams + rng.uniform(-0.3, 0.3)
        width = rng.uniform(0.08, 0.18)
        bend = rng.uniform(-0.4, 0.4)
        onset = rng.uniform(0.25, 0.55)
        peak = rng.uniform(400.0, 2000.0)
        d = np.mod(theta - (th + bend * q * q) + np.pi, 2 * np.pi) - np.pi
        s = np.exp(-0.5 * (d / width) ** 2) * _smoothstep((q - onset) / (1.0 - onset))
        stream_speed += peak * s
        s_max = np.maximum(s_max, s)
        thin_streams = np.maximum(thin_streams, s * (0.5 + 0.5 * q * q))
    margin_band = 0.4 * np.exp(-np.clip(1.0 - q, 0.0, None) / 0.15)
    thin_pattern = np.where(ice, np.clip(thin_streams + margin_band, 0.0, 1.0), 0.0)
    base_speed = np.where(ice, 3.0 + 80.0 * np.clip(q, 0.0, 1.0) ** 4, 0.0)
    stream_speed = np.where(ice, stream_speed, 0.0)
    drift_pattern = _smooth_field(u, v, rng, kmax=2.0, unit_rms=True)

    # Uncertainty tails, fixed in space like the real products (steep terrain, shear margins).
    p_rough = 0.01 + 0.06 * np.clip(q, 0.0, 1.0) ** 4
    rough = ice & (rng.random(q.shape) < p_rough)
    rough_rmse = rng.uniform(20.0, 150.0, q.shape)
    shear = ice & (rng.random(q.shape) < np.where((s_max > 0.2) & (s_max < 0.7), 0.2, 0.01))
    shear_err = rng.uniform(8.0, 30.0, q.shape)
    return _Geometry(
        x=x, y=y, u=u, v=v, ice=ice, q=q, H0=H0, bed=bed, ex=ex, ey=ey, base_speed=base_speed,
        stream_speed=stream_speed, thin_pattern=thin_pattern, drift_pattern=drift_pattern,
        rough=rough, rough_rmse=rough_rmse, shear=shear, shear_err=shear_err, n_streams=n_streams,
    )  # fmt: skip


def _draw_params(seed: int, members: int) -> list[dict[str, float]]:
    """Member i's parameters depend only on (seed, i): adding members never changes earlier ones."""
    u01 = _rng(seed, _K_PARAMS).random((members, len(PARAM_RANGES)))
    return [
        {name: float(lo + (hi - lo) * u01[i, j]) for j, (name, (lo, hi)) in enumerate(PARAM_RANGES.items())}
        for i in range(members)
    ]


def _fields(g: _Geometry, p: dict[str, float], tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thickness and velocity components (float64) `tau` years after the first year."""
    dyn = p["thinning"] * g.thin_pattern * (tau + 0.5 * p["thinning_growth"] * tau * tau)
    H = g.H0 + (p["smb"] + p["drift"] * g.drift_pattern) * tau - dyn
    H = np.where(g.ice, np.maximum(H, 1.0), 0.0)
    speed = (g.base_speed + p["flow_factor"] * g.stream_speed) * (1.0 + p["acceleration"] * tau)
    return H, speed * g.ex, speed * g.ey


def _unit_noise(rng: np.random.Generator, spec: SyntheticSpec, year: int, component: int) -> np.ndarray:
    """Unit-variance observation noise on the grid. The independent draw is always taken, so the
    rest of `rng`'s stream (gaps, ...) is the same with and without correlated errors."""
    independent = rng.standard_normal((spec.ny, spec.nx))
    if spec.error_correlation is None:
        return independent
    seed = int(_rng(spec.seed, _K_OBS_CORR, year, component).integers(2**31))
    return correlated_field((spec.ny, spec.nx), spec.error_correlation, seed)


def _gaps(g: _Geometry, rng: np.random.Generator, mean_blobs: float, rmax: float, dropout: float) -> np.ndarray:
    """Cloud / no-coverage gaps: a few discs plus scattered pixels."""
    gap = rng.random(g.ice.shape) < dropout
    for _ in range(int(rng.poisson(mean_blobs))):
        cx, cy = rng.uniform(-1.0, 1.0, 2)
        r = rng.uniform(0.04, rmax)
        gap |= (g.u - cx) ** 2 + (g.v - cy) ** 2 < r * r
    return gap


def _obs_time_days(year: int) -> float:
    """Mid-year (Jan 1 + 182 days) in days since 1950-01-01, as the prototype's products."""
    return float((_dt.date(year, 1, 1) - _dt.date(1950, 1, 1)).days + 182)


def _filled(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return np.where(np.isfinite(a), a, OBS_FILL).astype(np.float32)


def _add_xy(ds: netCDF4.Dataset, g: _Geometry) -> None:
    ds.createDimension("y", g.y.size)
    ds.createDimension("x", g.x.size)
    for name, values in (("x", g.x), ("y", g.y)):
        var = ds.createVariable(name, "f8", (name,))
        var.units = "m"
        var.standard_name = f"projection_{name}_coordinate"
        var[:] = values


def _write_elev(path: Path, g: _Geometry, year: int, height: np.ndarray, rmse: np.ndarray | None) -> None:
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.title = "synthetic surface elevation (obs)"
        ds.createDimension("time", 1)
        _add_xy(ds, g)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 1950-01-01 00:00:00"
        t.calendar = "standard"
        t[:] = [_obs_time_days(year)]
        h = ds.createVariable("height", "f4", ("time", "y", "x"), fill_value=OBS_FILL)
        h.units = "m"
        h.long_name = "surface height"
        h[:] = _filled(height)[None]
        if rmse is not None:
            r = ds.createVariable("absolute_elevation_rmse", "f4", ("time", "y", "x"), fill_value=OBS_FILL)
            r.units = "m"
            r[:] = _filled(rmse)[None]


def _write_vel(path: Path, g: _Geometry, fields: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.title = "synthetic ice velocity (obs)"
        _add_xy(ds, g)
        for name, values in fields.items():
            var = ds.createVariable(name, "f4", ("y", "x"), fill_value=OBS_FILL)
            var.units = "m/yr"
            var[:] = _filled(values)


def _time_value(encoding: str, year: int, first_year: int) -> float:
    if encoding == "psu":
        return (year - 2000) * PSU_YEAR_SECONDS
    if encoding == "cf":
        return float((_dt.date(year, 1, 1) - _dt.date(first_year, 1, 1)).days * 86400)
    return float(year)


def _time_units(encoding: str, first_year: int) -> str | None:
    return {
        "psu": PSU_UNITS,
        "cf": f"seconds since {first_year:04d}-01-01 00:00:00",
        "years_nounits": None,
        "years_units": "years",
    }[encoding]


def _write_member(
    path: Path,
    g: _Geometry,
    params: dict[str, float],
    name: str,
    years: Sequence[int],
    first: int,
    encoding: str,
    fill_index: int | None,
    nan_var: str | None,
    nan_cells: tuple[np.ndarray, np.ndarray] | None,
    nan_row: int,
) -> int:
    """One member file, row by row (bounded memory on large grids); returns the number of rows.

    `years` are the member's rows (a dropped step is simply absent); `first` is the dataset's first
    year, the origin of the member's evolution and of CF time units.
    """
    rows: list[int | None] = list(years)
    if fill_index is not None:
        rows.insert(fill_index, None)
    cell_area = DX * DX
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.title = f"synthetic regridded ISM member {name}"
        ds.createDimension("time", None)
        _add_xy(ds, g)
        kw: dict[str, Any] = {"fill_value": FILL_TIME} if fill_index is not None else {}
        t = ds.createVariable("time", "f8", ("time",), **kw)
        units = _time_units(encoding, first)
        if units is not None:
            t.units = units
        out = {}
        for var_name, units_ in (("h", "m"), ("ua", "m/yr"), ("va", "m/yr")):
            out[var_name] = ds.createVariable(var_name, "f4", ("time", "y", "x"))
            out[var_name].units = units_
        totig = ds.createVariable("totig", "f8", ("time",))
        totig.units = "m3"
        totig.long_name = "grounded ice volume"
        previous: dict[str, np.ndarray] = {}
        volumes = np.empty(len(rows))
        times = np.empty(len(rows))
        for i, year in enumerate(rows):
            if year is None:  # the fill row: junk fields (half the previous row, some NaN)
                junk = {k: (0.5 * a).astype(np.float32) for k, a in previous.items()}
                junk["h"][::3, ::5] = np.nan
                current = junk
                times[i] = FILL_TIME
                volumes[i] = 0.5 * volumes[i - 1]
            else:
                h, ua, va = _fields(g, params, float(year - first))
                current = {"h": h.astype(np.float32), "ua": ua.astype(np.float32), "va": va.astype(np.float32)}
                year_index = year - first
                if nan_var is not None and nan_cells is not None and year_index == nan_row:
                    current[nan_var][nan_cells] = np.nan
                times[i] = _time_value(encoding, year, first)
                volumes[i] = float(np.nansum(current["h"].astype(np.float64))) * cell_area
                previous = current
            for k, a in current.items():
                out[k][i] = a
        t[:] = times
        totig[:] = volumes
    return len(rows)


def _projection_volumes(p: dict[str, float], volume_2015: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Historical and forward grounded-ice volume (m³) on yearly decimal-year axes."""
    const = _PROJ_SMB_FRACTION * p["smb"] + _PROJ_DRIFT_FRACTION * p["drift"]  # m/yr over the effective area
    dyn = _PROJ_DYN_FRACTION * p["thinning"]
    g = p["thinning_growth"]
    t_fwd = np.arange(_PROJ_FWD_YEARS[0], _PROJ_FWD_YEARS[1] + 1, dtype=np.float64)
    s = t_fwd - _PROJ_REF_YEAR
    v_fwd = volume_2015 + _PROJ_AREA * (const * s - dyn * (s + 0.5 * g * s * s))
    rate0 = _PROJ_AREA * (const - dyn)  # m³/yr at the reference year
    t_hist = np.arange(_PROJ_HIST_YEARS[0], _PROJ_HIST_YEARS[1] + 1, dtype=np.float64)
    v_hist = volume_2015 - rate0 * _PROJ_HIST_EFOLD * (1.0 - np.exp((t_hist - _PROJ_REF_YEAR) / _PROJ_HIST_EFOLD))
    return t_hist, v_hist, t_fwd, v_fwd


def sle_mm(v_hist: np.ndarray, t_fwd: np.ndarray, v_fwd: np.ndarray, target_year: float = 2100.0) -> float:
    """The contract's SLE: (ρ_ice/ρ_water)·(V_hist[last] − V_fwd[target])/A_ocean·1000."""
    idx = int(np.flatnonzero(np.isclose(t_fwd, target_year))[0])
    return float((RHO_ICE / RHO_WATER) * (v_hist[-1] - v_fwd[idx]) / OCEAN_AREA * 1000.0)


def _write_projection(path: Path, name: str, kind: str, t: np.ndarray, v: np.ndarray) -> None:
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.title = f"synthetic {kind} projection, member {name}"
        ds.createDimension("time", t.size)
        tv = ds.createVariable("time", "f8", ("time",))
        tv.units = "years"
        tv.long_name = "decimal year"
        tv[:] = t
        vol = ds.createVariable("totig", "f8", ("time",))
        vol.units = "m3"
        vol.long_name = "grounded ice volume"
        vol[:] = v


def _check_index(name: str, value: int | None, members: int) -> None:
    if value is not None and not 0 <= value < members:
        raise ValueError(f"{name}={value} is not a member index in 0..{members - 1}")


def _as_years(name: str, values: Iterable[int], years: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    bad = [v for v in out if v not in years]
    if bad:
        raise ValueError(f"{name}: years {bad} are outside {years[0]}..{years[-1]}")
    return out


_YEAR_SETS = ("obs_gap_years", "vel_missing_err_years", "elev_no_rmse_years", "elev_gap_years",
              "vel_gap_years", "elev_drop_rmse_var_years")  # fmt: skip


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything a synthetic dataset is a function of: the same spec writes the same bytes.

    Grid `ny` x `nx`, `members` members, yearly steps `years[0]..years[1]`, drawn from `seed`.
    Member indices are 0-based (`truth_member=None` draws one from the seed). Awkward cases:
    `obs_gap_years` drops both observation files of a year (`elev_gap_years`/`vel_gap_years`
    only one); `vel_missing_err_years` omits `ERRY`; `elev_no_rmse_years` writes an all-fill
    `absolute_elevation_rmse`, `elev_drop_rmse_var_years` omits it; `fill_member` gets an extra
    time row (at `fill_index`) whose time is `FILL_TIME`; `drop_time_member` loses the row
    `drop_time_index`; `member_nans` puts a few NaNs in `h` of member 1 and `ua` of member 3;
    `with_projection` writes the members' projected volumes. `error_correlation` makes the
    observation errors a unit-variance Gaussian random field of that covariance (times the stated
    uncertainty) instead of independent; None (default) keeps the independent errors, bit for bit. Checked (and the year sets sorted)
    on construction, so a bad spec fails before anything is written.
    """

    ny: int = 30
    nx: int = 40
    members: int = 5
    years: tuple[int, int] = (2015, 2020)
    seed: int = 1
    truth_member: int | None = None
    obs_gap_years: tuple[int, ...] = ()
    vel_missing_err_years: tuple[int, ...] = ()
    elev_no_rmse_years: tuple[int, ...] = ()
    fill_member: int | None = 2
    with_projection: bool = True
    elev_gap_years: tuple[int, ...] = ()
    vel_gap_years: tuple[int, ...] = ()
    elev_drop_rmse_var_years: tuple[int, ...] = ()
    fill_index: int = 1
    drop_time_member: int | None = None
    drop_time_index: int = 3
    member_nans: bool = True
    error_correlation: ErrorCorrelation | None = None

    def __post_init__(self) -> None:
        ny, nx, members, years = self.ny, self.nx, self.members, self.years
        if ny < 4 or nx < 4:
            raise ValueError(f"grid {ny}x{nx} is too small (need at least 4x4)")
        if members < 1:
            raise ValueError(f"members={members}: need at least one member")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed}: must be non-negative")
        first, last = int(years[0]), int(years[1])
        if last <= first:
            raise ValueError(f"years={years}: need first < last")
        object.__setattr__(self, "years", (first, last))
        for name in ("truth_member", "fill_member", "drop_time_member"):
            _check_index(name, getattr(self, name), members)
        n_years = last - first + 1
        if not 1 <= self.fill_index <= n_years:
            raise ValueError(f"fill_index={self.fill_index} must be in 1..{n_years}")
        if not 0 <= self.drop_time_index < n_years:
            raise ValueError(f"drop_time_index={self.drop_time_index} must be in 0..{n_years - 1}")
        for name in _YEAR_SETS:
            object.__setattr__(self, name, _as_years(name, getattr(self, name), self.year_list))

    @property
    def year_list(self) -> list[int]:
        return list(range(self.years[0], self.years[1] + 1))


def generate(out_dir: str | Path, spec: SyntheticSpec | None = None) -> dict[str, Any]:
    """Write the dataset of `spec` (default `SyntheticSpec()`) under `out_dir` and return (and write)
    its `truth.json` record. A variant of a spec is `dataclasses.replace(spec, seed=3)`, checked
    when it is made, so a bad one fails before anything is written.
    Layout: `obs/elev/elev_antarctica_elevation_YYYY.nc`,
    `obs/vel/vel_Antarctica_ice_velocity_YYYY.nc`, `ensemble/runNN_regridded.nc`,
    `projection/{historical,forward}/runNN.nc`, `truth.json`.
    """
    spec = spec or SyntheticSpec()
    out = Path(out_dir)
    g = _geometry(spec.ny, spec.nx, spec.seed)
    params = _draw_params(spec.seed, spec.members)
    truth_member = spec.truth_member
    if truth_member is None:
        truth_member = int(_rng(spec.seed, _K_TRUTH).integers(spec.members))
    elev_files, vel_files = _write_observations(out, spec, g, params[truth_member])
    member_records = _write_ensemble(out, spec, g, params)
    truth_record = _truth_record(spec, g, truth_member, params[truth_member], member_records, elev_files, vel_files)
    write_json(out / "truth.json", truth_record)
    return truth_record


def _gap_years(spec: SyntheticSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(thickness, velocity) years without an observation file: a gap of both streams counts in each."""
    obs_gap = spec.obs_gap_years
    elev_gap = tuple(sorted(set(obs_gap) | set(spec.elev_gap_years)))
    vel_gap = tuple(sorted(set(obs_gap) | set(spec.vel_gap_years)))
    return elev_gap, vel_gap


def _write_observations(
    out: Path, spec: SyntheticSpec, g: _Geometry, truth: dict[str, float]
) -> tuple[list[str], list[str]]:
    """The observation files, year by year: the truth member's fields plus noise at the stated
    uncertainty. Returns the thickness and velocity file names written, in year order."""
    elev_dir, vel_dir = out / "obs" / "elev", out / "obs" / "vel"
    elev_dir.mkdir(parents=True, exist_ok=True)
    vel_dir.mkdir(parents=True, exist_ok=True)
    elev_gap, vel_gap = _gap_years(spec)
    elev_files, vel_files = [], []
    for year in spec.year_list:
        H, ua, va = _fields(g, truth, float(year - spec.years[0]))
        if year not in elev_gap:
            elev_files.append(_write_elev_year(elev_dir, spec, g, year, H))
        if year not in vel_gap:
            vel_files.append(_write_vel_year(vel_dir, spec, g, year, ua, va))
        del H, ua, va
    return elev_files, vel_files


def _write_elev_year(elev_dir: Path, spec: SyntheticSpec, g: _Geometry, year: int, H: np.ndarray) -> str:
    """One year's surface height and its rmse (rough terrain far above the threshold, gaps, a few
    pixels with a height but no rmse, the spec's all-fill or missing rmse years); the file's name."""
    rng = _rng(spec.seed, _K_OBS_ELEV, year)
    rmse = np.clip(0.3 * np.exp(0.4 * rng.standard_normal(H.shape)), 0.05, 2.0)
    rmse = np.where(g.rough, g.rough_rmse * np.exp(0.05 * rng.standard_normal(H.shape)), rmse)
    height = g.bed + H + rmse * _unit_noise(rng, spec, year, 0)
    gap = _gaps(g, rng, mean_blobs=3.0, rmax=0.14, dropout=0.01) | ~g.ice
    rmse_gap = gap | (rng.random(H.shape) < 0.004)  # a few pixels: height but no rmse
    height = np.where(gap, np.nan, height)
    rmse = np.where(rmse_gap, np.nan, rmse)
    if year in spec.elev_no_rmse_years:
        rmse = np.full_like(rmse, np.nan)
    path = elev_dir / f"elev_antarctica_elevation_{year}.nc"
    _write_elev(path, g, year, height, None if year in spec.elev_drop_rmse_var_years else rmse)
    return path.name


def _write_vel_year(
    vel_dir: Path, spec: SyntheticSpec, g: _Geometry, year: int, ua: np.ndarray, va: np.ndarray
) -> str:
    """One year's velocity components and their errors (a shear-margin tail above the threshold,
    gaps, `ERRY` left out in the spec's years); the file's name."""
    rng = _rng(spec.seed, _K_OBS_VEL, year)
    errs = {}
    for comp in ("ERRX", "ERRY"):
        e = np.clip(2.5 * np.exp(0.4 * rng.standard_normal(ua.shape)), 0.5, 9.0)
        errs[comp] = np.where(g.shear, g.shear_err * np.exp(0.05 * rng.standard_normal(ua.shape)), e)
    vx = ua + errs["ERRX"] * _unit_noise(rng, spec, year, 1)
    vy = va + errs["ERRY"] * _unit_noise(rng, spec, year, 2)
    gap = _gaps(g, rng, mean_blobs=4.0, rmax=0.2, dropout=0.02) | ~g.ice
    fields = {"VX": vx, "VY": vy, "ERRX": errs["ERRX"], "ERRY": errs["ERRY"]}
    fields = {k: np.where(gap, np.nan, a) for k, a in fields.items()}
    if year in spec.vel_missing_err_years:
        del fields["ERRY"]
    path = vel_dir / f"vel_Antarctica_ice_velocity_{year}.nc"
    _write_vel(path, g, fields)
    return path.name


def _write_ensemble(out: Path, spec: SyntheticSpec, g: _Geometry, params: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Every member's regridded file (and projected volumes), member by member; their truth records."""
    ens_dir = out / "ensemble"
    ens_dir.mkdir(parents=True, exist_ok=True)
    volume_2015 = float(_PROJ_AREA * g.H0[g.ice].mean())
    records = []
    for i, p in enumerate(params):
        record = _write_member_file(ens_dir, spec, g, i, p)
        if spec.with_projection:
            name = f"run{i + 1:02d}"
            t_hist, v_hist, t_fwd, v_fwd = _projection_volumes(p, volume_2015)
            _write_projection(out / "projection" / "historical" / f"{name}.nc", name, "historical", t_hist, v_hist)
            _write_projection(out / "projection" / "forward" / f"{name}.nc", name, "forward", t_fwd, v_fwd)
            record["projection_file"] = f"{name}.nc"
            record["sle_mm"] = sle_mm(v_hist, t_fwd, v_fwd)
        records.append(record)
    return records


def _write_member_file(ens_dir: Path, spec: SyntheticSpec, g: _Geometry, i: int, p: dict[str, float]) -> dict[str, Any]:
    """Member `i`'s `runNN_regridded.nc` with the awkward cases the spec gives it (a dropped time
    row, NaN cells, a fill-valued time row, its time encoding); its truth record, saying which."""
    name = f"run{i + 1:02d}"
    year_list, first = spec.year_list, spec.years[0]
    encoding = TIME_ENCODINGS[i % len(TIME_ENCODINGS)]
    note = ""
    member_years = list(year_list)
    if spec.drop_time_member == i:
        dropped = member_years.pop(spec.drop_time_index)
        note += f"time row {spec.drop_time_index} ({dropped}) dropped;"
    nan_var = {1: "h", 3: "ua"}.get(i) if spec.member_nans else None
    nan_cells = None
    if nan_var is not None:
        rng = _rng(spec.seed, _K_MEMBER, i)
        ice_idx = np.flatnonzero(g.ice)
        k = min(ice_idx.size, max(3, ice_idx.size // 300))
        nan_cells = np.unravel_index(np.sort(rng.choice(ice_idx, size=k, replace=False)), g.ice.shape)
        note += f"NaNs in {nan_var};"
    nan_row = min(2, len(year_list) - 1)
    fidx = None
    if spec.fill_member == i:
        fidx = min(spec.fill_index, len(member_years))
        note += f"extra record at index {fidx} with time = _FillValue ({FILL_TIME:.5e});"
    n_rows = _write_member(
        ens_dir / f"{name}_regridded.nc", g, p, name, member_years, first, encoding, fidx, nan_var, nan_cells, nan_row
    )
    return {
        "file": f"{name}_regridded.nc",
        "id": f"run{i + 1}",
        "index": i,
        "params": p,
        "time_encoding": encoding,
        "time_units": _time_units(encoding, first),
        "n_time": n_rows,
        "note": note,
    }


def _truth_record(
    spec: SyntheticSpec,
    g: _Geometry,
    truth_member: int,
    truth: dict[str, float],
    member_records: list[dict[str, Any]],
    elev_files: list[str],
    vel_files: list[str],
) -> dict[str, Any]:
    """`truth.json`: the spec, the grid, every member and which one the observations were drawn from."""
    first, last = spec.years
    elev_gap, vel_gap = _gap_years(spec)
    truth_record: dict[str, Any] = {
        "generator": "fusion.data.synthetic",
        "args": {
            "ny": spec.ny, "nx": spec.nx, "members": spec.members, "years": [first, last], "seed": spec.seed,
            "truth_member": truth_member, "obs_gap_years": list(spec.obs_gap_years), "elev_gap_years": list(elev_gap),
            "vel_gap_years": list(vel_gap), "vel_missing_err_years": list(spec.vel_missing_err_years),
            "elev_no_rmse_years": list(spec.elev_no_rmse_years),
            "elev_drop_rmse_var_years": list(spec.elev_drop_rmse_var_years),
            "fill_member": spec.fill_member, "fill_index": spec.fill_index, "drop_time_member": spec.drop_time_member,
            "drop_time_index": spec.drop_time_index, "member_nans": spec.member_nans,
            "with_projection": spec.with_projection,
        },  # fmt: skip
        "index_convention": "member indices are 0-based: index i is run{i+1:02d}_regridded.nc, id run{i+1}",
        "grid": {
            "ny": spec.ny,
            "nx": spec.nx,
            "dx": DX,
            "x_range": [float(g.x[0]), float(g.x[-1])],
            "y_range": [float(g.y[0]), float(g.y[-1])],
            "ice_pixels": int(g.ice.sum()),
            "n_streams": g.n_streams,
        },
        "years": spec.year_list,
        "param_ranges": {k: list(v) for k, v in PARAM_RANGES.items()},
        "members": member_records,
        "truth_member": {"file": member_records[truth_member]["file"], "id": f"run{truth_member + 1}", "index": truth_member},
        "truth_params": truth,
        "observations": {
            "elev_files": elev_files,
            "vel_files": vel_files,
            "noise": "truth member's fields + N(0, stated uncertainty); gaps are fill values",
            "thickness_rmse": "median 0.3 m; rough-terrain tail 20-150 m (fixed pixels)",
            "velocity_error": "median 2.5 m/yr; shear-margin tail 8-30 m/yr (fixed pixels)",
        },
    }
    if spec.with_projection:
        truth_record["projection"] = {
            "historical_years": list(_PROJ_HIST_YEARS),
            "forward_years": list(_PROJ_FWD_YEARS),
            "target_year": 2100,
            "formula": "SLE_mm = (917/1028)*(V_hist[last]-V_fwd[2100])/3.62e14*1000",
        }
    if spec.error_correlation is not None:  # only then, so default records keep their bytes
        truth_record["args"]["error_correlation"] = dataclasses.asdict(spec.error_correlation)
        truth_record["observations"]["noise"] = "truth member's fields + stated uncertainty x unit-variance GRF"
    return truth_record


_EXAMPLE_CONFIG = """\
# FUSION example: a synthetic dataset written by `fusion example` (truth.json says how it was made).
compat: fixed
observations:
  version: "2026-04-30"
  thickness: {dir: obs/elev, pattern: "elev_antarctica_elevation_*.nc", var: height, uncertainty_var: absolute_elevation_rmse}
  velocity: {dir: obs/vel, pattern: "vel_Antarctica_ice_velocity_*.nc", vx_var: VX, vy_var: VY, vx_err_var: ERRX, vy_err_var: ERRY}
ensemble: {dir: ensemble, pattern: "*_regridded.nc", thickness_var: h, vx_var: ua, vy_var: va, time_var: time}
metric: {thick_unc_threshold: 50.0, vel_unc_threshold: 10.0, missing_thick_unc: 20.0, snap_tolerance_years: 1.5, time_tolerance_years: 0.05}
inference:
  subsample: {size: 20000, seed: 42}
  draws: 1000
  tune: 1000
  chains: 4
  target_accept: 0.95
  seed: 42
  sampler: nutpie
  stream_weights: {thick: 0.5, vel: 0.5}
  velocity_inflation: 5.0
projection: {historical_dir: projection/historical, forward_dir: projection/forward, volume_var: totig, target_year: 2100}
output: {dir: results}
"""

EXAMPLE_SPEC = SyntheticSpec(
    ny=30, nx=40, members=5, years=(2015, 2020), seed=EXAMPLE_SEED, fill_member=2, vel_missing_err_years=(2018,)
)


def write_example(out_dir: str | Path) -> Path:
    """Write the bundled example (30x40, 5 members, 2015-2020) and its `config.yaml`; return the config path.

    Clean enough for the default `compat: fixed` pipeline, yet it carries a day-00 member, a
    fill-valued time row and one velocity year without `ERRY` (a warning, by design).
    """
    out = Path(out_dir)
    generate(out, EXAMPLE_SPEC)
    return write_text(out / "config.yaml", _EXAMPLE_CONFIG)
