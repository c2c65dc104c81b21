"""Files with each product's exact schema, written from a synthetic case in the prototype layout.

A stand-in for what NSIDC and NASA JPL distribute, with the names, groups, dtypes, fills,
attributes and orientation the producers write (read, not copied, from their writers and guides:
SmithB/ATL1415 `scripts/ATL15_write2nc.py` and `resources/ATL15_output_attrs.csv`, with
`make_nc_projection_variable.py`; nasa-jpl/its_live_production `src/itslive_annual_mosaics.py`;
the NSIDC-0720 user guide as DESIGN.md records it). Values are the case's own observations, so a
run on these files can be compared with a run on the prototype layout. Two liberties, both noted
where they are taken: ATL15's writer quantizes fields to 4 decimal digits (`least_significant_digit`)
and this one does not, so the comparison tests the reader, not the quantization; and the case's
height plays `delta_h` (its ATL14 reference surface is 0).
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np

F32_MAX = np.finfo(np.float32).max
ITS_FILL, ITS_ERR_MISSING = -32767.0, 32767
WKT_3031 = ('PROJCS["WGS 84 / Antarctic Polar Stereographic",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",'
            '6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
            'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
            'AUTHORITY["EPSG","4326"]],PROJECTION["Polar_Stereographic"],PARAMETER["latitude_of_origin",-71],'
            'PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],PARAMETER["false_easting",0],'
            'PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],'
            'AXIS["Northing",NORTH],AUTHORITY["EPSG","3031"]]')
WKT_3413 = WKT_3031.replace("Antarctic Polar Stereographic", "NSIDC Sea Ice Polar Stereographic North").replace(
    '"latitude_of_origin",-71', '"latitude_of_origin",70').replace('"EPSG","3031"', '"EPSG","3413"')


def _read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    with netCDF4.Dataset(path) as ds:
        out = {n: np.squeeze(np.ma.filled(ds.variables[n][:].astype(np.float64), np.nan)) for n in names if n in ds.variables}
        out["x"], out["y"] = np.asarray(ds.variables["x"][:], np.float64), np.asarray(ds.variables["y"][:], np.float64)
    return out


def case_thickness(case: Path) -> tuple[list[int], dict[int, dict[str, np.ndarray]]]:
    files = sorted((case / "obs/elev").glob("*.nc"))
    fields = {int(f.stem[-4:]): _read(f, ("height", "absolute_elevation_rmse")) for f in files}
    return sorted(fields), fields


def round_velocity_errors(case: Path) -> None:
    """The case's ERRX/ERRY in whole m/yr, as ITS_LIVE stores them (what 'the same observations' can be)."""
    for f in sorted((case / "obs/vel").glob("*.nc")):
        with netCDF4.Dataset(f, "a") as ds:
            for name in ("ERRX", "ERRY"):
                if name in ds.variables:
                    ds.variables[name][:] = np.rint(ds.variables[name][:])


# --- ATL15 --------------------------------------------------------------------------------------

def _projection(group: netCDF4.Group, epsg: str = "3031") -> None:
    crs = group.createVariable("Polar_Stereographic", np.byte, ())
    north = epsg == "3413"
    for key, value in (("standard_name", "Polar_Stereographic"), ("grid_mapping_name", "polar_stereographic"),
                       ("straight_vertical_longitude_from_pole", -45.0 if north else 0.0),
                       ("latitude_of_projection_origin", 90.0 if north else -90.0),
                       ("standard_parallel", 70.0 if north else -71.0), ("scale_factor_at_projection_origin", 1.0),
                       ("false_easting", 0.0), ("false_northing", 0.0),
                       ("semi_major_axis", 6378.137), ("semi_minor_axis", 6356.752),  # km, as the producer writes them
                       ("inverse_flattening", 298.257223563), ("spatial_epsg", epsg),
                       ("spatial_ref", WKT_3413 if north else WKT_3031), ("crs_wkt", WKT_3413 if north else WKT_3031)):
        crs.setncattr(key, value)


def _coord(group: netCDF4.Group, name: str, values: np.ndarray, units: str) -> None:
    group.createDimension(name, values.size)
    var = group.createVariable(name, "f8", (name,), fill_value=np.finfo(np.float64).max, zlib=True)
    var[:] = values
    var.units, var.grid_mapping = units, "Polar_Stereographic"
    if name in ("x", "y"):
        var.standard_name = f"projection_{name}_coordinate"


def _field(group: netCDF4.Group, name: str, values: np.ndarray, units: str, long_name: str) -> None:
    var = group.createVariable(name, "f4", ("time", "y", "x"), fill_value=F32_MAX, zlib=True)
    var.set_auto_maskandscale(False)
    var[:] = np.where(np.isfinite(values), values, F32_MAX).astype(np.float32)
    var.set_auto_maskandscale(True)
    var.units, var.long_name, var.grid_mapping = units, long_name, "Polar_Stereographic"
    var.setncatts({"coordinates": "time y x", "dimensions": "time,y,x", "datatype": "float32"})  # as the writer copies them


def atl15_epochs(years: list[int], quarters: bool = True) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Quarterly epochs over the case's years: (decimal years, per epoch its two bracketing years and weight)."""
    step = 0.25 if quarters else 1.0
    t = np.arange(years[0], years[-1] + step / 2, step)
    brackets = []
    for e in t:
        lo = max(y for y in years if y <= e + 1e-9)
        hi = min((y for y in years if y >= e - 1e-9), default=lo)
        w = 0.0 if hi == lo else (e - lo) / (hi - lo)
        brackets.append((lo, hi, w))
    return t, brackets


def write_atl15(case: Path, out: Path, *, quadrants: bool = False, lags: tuple[int, ...] = (4,),
                shift_years: float = 0.0, epsg: str = "3031", drop: tuple[str, ...] = ()) -> list[Path]:
    """ATL15 file(s) of the case's thickness: group `delta_h` (quarterly epochs; at whole years
    the case's own height and rmse, between them linear in time) and `dhdt_lag<N>` groups (rates
    between epochs N quarters apart at their midpoints, sigma √(σ₁² + σ₂²)/Δt standing in for the
    inversion's); one file for the whole grid (`A1`) or four quadrants `A1`–`A4` (`quadrants`).
    `shift_years` moves every epoch; `drop` leaves variables out (bad inputs)."""
    years, fields = case_thickness(case)
    t, brackets = atl15_epochs(years)
    ny, nx = fields[years[0]]["height"].shape
    x, y = fields[years[0]]["x"], fields[years[0]]["y"]
    h = np.stack([(1 - w) * fields[lo]["height"] + w * fields[hi]["height"] if w else fields[lo]["height"] for lo, hi, w in brackets])
    s = np.stack([fields[lo].get("absolute_elevation_rmse", np.full((ny, nx), np.nan)) if w == 0 else
                  np.sqrt((1 - w) * fields[lo].get("absolute_elevation_rmse", np.nan) ** 2
                          + w * fields[hi].get("absolute_elevation_rmse", np.nan) ** 2) for lo, hi, w in brackets])
    h, s = h.astype(np.float32), s.astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    parts = [("A1", slice(None), slice(None))]
    if quadrants:
        my, mx = ny // 2, nx // 2
        parts = [("A1", slice(0, my), slice(0, mx)), ("A2", slice(0, my), slice(mx, None)),
                 ("A3", slice(my, None), slice(mx, None)), ("A4", slice(my, None), slice(0, mx))]
    written = []
    for region, rows, cols in parts:
        path = out / f"ATL15_{region}_0314_01km_004_01.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
            nc.GDAL_AREA_OR_POINT, nc.Conventions = "Area", "CF-1.6"
            g = nc.createGroup("delta_h")
            g.description = ("delta_h group includes variables describing height differences between the model "
                             "surface at any time and the DEM surface at a resolution of 1 km.")
            _projection(g, epsg)
            _coord(g, "x", x[cols], "meters")
            _coord(g, "y", y[rows], "meters")
            _coord(g, "time", (t + shift_years - 2018.0) * 365.25, "days since 2018-01-01")
            area = np.where(np.isfinite(h[:, rows, cols]), 1e6, np.nan)
            for name, values, units, long in (("ice_area", area, "meters^2", "ice-covered area at 1 km"),
                                               ("delta_h", h[:, rows, cols], "meters", "height change  at 1 km"),
                                               ("delta_h_sigma", s[:, rows, cols], "meters", "height change uncertainty at 1 km"),
                                               ("data_count", np.where(np.isfinite(area), 10.0, np.nan), "counts", "data count "),
                                               ("misfit_rms", np.where(np.isfinite(area), 0.5, np.nan), "meters", "rms misfit "),
                                               ("misfit_scaled_rms", np.where(np.isfinite(area), 1.0, np.nan), "counts", "scaled rms misfit")):
                if name not in drop:
                    _field(g, name, values, units, long)
            for lag in lags:
                g = nc.createGroup(f"dhdt_lag{lag}")
                g.description = f"dhdt_lag{lag} group includes variables describing height-change-rate estimates."
                _projection(g, epsg)
                _coord(g, "x", x[cols], "meters")
                _coord(g, "y", y[rows], "meters")
                dt = lag / 4
                mids = (t[lag:] + t[:-lag]) / 2
                _coord(g, "time", (mids + shift_years - 2018.0) * 365.25, "days since 2018-01-01")
                rate = (h[lag:] - h[:-lag]) / np.float32(dt)
                sigma = (np.sqrt(s[lag:] ** 2 + s[:-lag] ** 2) / np.float32(dt)).astype(np.float32)
                _field(g, "ice_area", np.where(np.isfinite(rate), 1e6, np.nan)[:, rows, cols], "meters^2", "ice-covered area")
                if "dhdt" not in drop:
                    _field(g, "dhdt", rate[:, rows, cols], "meters years^-1", "height-change rate at 1 km")
                _field(g, "dhdt_sigma", sigma[:, rows, cols], "meters years^-1", "height-change rate uncertainty at 1 km")
        written.append(path)
    return written


# --- ITS_LIVE and MEaSUREs ------------------------------------------------------------------------

def case_velocity(case: Path) -> dict[int, dict[str, np.ndarray]]:
    files = sorted((case / "obs/vel").glob("*.nc"))
    return {int(f.stem[-4:]): _read(f, ("VX", "VY", "ERRX", "ERRY")) for f in files}


def write_itslive(case: Path, out: Path, *, epsg: str = "3031", version: str = "v02",
                  years: list[int] | None = None) -> list[Path]:
    """ITS_LIVE annual mosaics (v2) of the case's velocity: y descending, vx/vy float32 fill −32767,
    errors uint16 whole m/yr with missing_value 32767, a `mapping` scalar named by `grid_mapping`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for year, f in case_velocity(case).items():
        if years is not None and year not in years:
            continue
        path = out / f"ITS_LIVE_velocity_120m_RGI19A_{year}_{version}.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
            nc.setncatts({"GDAL_AREA_OR_POINT": "Area", "region": "RGI19A", "year": f"01-Jan-{year}",
                          "projection": int(epsg), "title": "ITS_LIVE annual ice velocity mosaic",
                          "institution": "NASA Jet Propulsion Laboratory (JPL), California Institute of Technology"})
            nc.createDimension("y", f["y"].size)
            nc.createDimension("x", f["x"].size)
            for name, values in (("x", f["x"]), ("y", f["y"][::-1])):
                var = nc.createVariable(name, "f8", (name,))
                var[:] = values
                var.standard_name, var.units = f"projection_{name}_coordinate", "meter"
            mapping = nc.createVariable("mapping", str, ())
            mapping.setncatts({"grid_mapping_name": "polar_stereographic", "spatial_epsg": int(epsg),
                               "crs_wkt": WKT_3413 if epsg == "3413" else WKT_3031,
                               "GeoTransform": f"{f['x'][0]} {f['x'][1] - f['x'][0]} 0 {f['y'][-1]} 0 {f['y'][0] - f['y'][1]}"})
            for name, src in (("vx", "VX"), ("vy", "VY")):
                var = nc.createVariable(name, "f4", ("y", "x"), fill_value=np.float32(ITS_FILL), zlib=True)
                var.set_auto_maskandscale(False)
                var[:] = np.where(np.isfinite(f[src]), f[src], ITS_FILL).astype(np.float32)[::-1]
                var.units, var.grid_mapping = "meter/year", "mapping"
            for name, src in (("vx_error", "ERRX"), ("vy_error", "ERRY")):
                if src not in f:
                    continue
                var = nc.createVariable(name, "u2", ("y", "x"), zlib=True)
                var.set_auto_maskandscale(False)
                var.missing_value = np.uint16(ITS_ERR_MISSING)
                var[:] = np.where(np.isfinite(f[src]), np.rint(f[src]), ITS_ERR_MISSING).astype(np.uint16)[::-1]
                var.units, var.grid_mapping = "meter/year", "mapping"
        written.append(path)
    return written


def write_measures(case: Path, out: Path) -> list[Path]:
    """MEaSUREs annual maps (NSIDC-0720) of the case's velocity: `<Y-1>_<Y>` stands for year Y,
    y descending, 0 where there is no data, `CNT` the number of scenes."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for year, f in case_velocity(case).items():
        path = out / f"Antarctica_ice_velocity_{year - 1}_{year}_1km_v01.1.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
            nc.createDimension("y", f["y"].size)
            nc.createDimension("x", f["x"].size)
            for name, values in (("x", f["x"]), ("y", f["y"][::-1])):
                var = nc.createVariable(name, "f8", (name,))
                var[:] = values
                var.units = "m"
            for name in ("VX", "VY", "ERRX", "ERRY"):
                var = nc.createVariable(name, "f4", ("y", "x"), zlib=True)
                var.set_auto_maskandscale(False)
                var[:] = np.where(np.isfinite(f[name]), f[name], 0.0).astype(np.float32)[::-1]
                var.units = "m/yr"
            cnt = nc.createVariable("CNT", "i4", ("y", "x"), zlib=True)
            cnt[:] = np.where(np.isfinite(f["VX"]), 5, 0)[::-1]
        written.append(path)
    return written
