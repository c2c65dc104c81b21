"""Rules of the prototype that the shared reference cases do not show, reproduced under `compat: prototype`.

Each was found by reading the prototype and confirmed by capturing it on unseen synthetic cases
(`harness capture`); each test here fails without its rule. Inputs are tiny generated datasets
edited with netCDF4 — no prototype needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data.prepare import _interval_rows, _member_rates, _observed_blocks, model_intervals, prepare
from fusion.data.synthetic import SyntheticSpec, generate
from fusion.data.timeaxis import TimeUnitsError, decode_time
from fusion.errors import InputError

SECONDS = 365.2425 * 86400.0


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rules") / "data"
    generate(root, SyntheticSpec(ny=7, nx=9, members=4, years=(2015, 2019), seed=5, with_projection=False, fill_member=None))
    return root


@pytest.fixture
def data_dir(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "data"))


def _config(root: Path, compat: str = "prototype"):
    path = root / f"{compat}.yaml"
    path.write_text(
        f"compat: {compat}\nobservations:\n  thickness: {{dir: obs/elev}}\n  velocity: {{dir: obs/vel}}\n"
        "ensemble: {dir: ensemble}\n"
    )
    return load_config(path)


def _prepare(root: Path, compat: str = "prototype"):
    cfg = _config(root, compat)
    return prepare(cfg, load_data(cfg))


def _assert_same(a, b) -> None:
    for name in ("y_obs", "sigma_obs", "F", "speed"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.n_dhdt, a.n_vel) == (b.n_dhdt, b.n_vel)


def _member(root: Path, n: int) -> Path:
    return root / "ensemble" / f"run{n:02d}_regridded.nc"


def _rewrite_member(path: Path, *, order=None, dtype: str | None = None, jitter: bool = False) -> None:
    """Rewrite a member file with rows permuted and/or fields in another dtype (`jitter`: float64
    values that are not float32 ones, within half a float32 ULP of the originals)."""
    with netCDF4.Dataset(path) as ds:
        t = ds["time"]
        t.set_auto_maskandscale(False)
        time, attrs = np.array(t[:]), {a: t.getncattr(a) for a in t.ncattrs()}
        fields = {k: np.array(ds[k][:]) for k in ("h", "ua", "va")}
        y, x = np.array(ds["y"][:]), np.array(ds["x"][:])
    order = np.arange(time.size) if order is None else np.asarray(order)
    path.unlink()
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("y", y.size)
        ds.createDimension("x", x.size)
        ds.createVariable("y", "f8", ("y",))[:] = y
        ds.createVariable("x", "f8", ("x",))[:] = x
        t = ds.createVariable("time", "f8", ("time",), fill_value=attrs.pop("_FillValue", None))
        t.setncatts(attrs)
        t[:] = time[order]
        rng = np.random.default_rng(0)
        for k, v in fields.items():
            values = v[order].astype(dtype or v.dtype)
            if jitter:
                values = values + rng.uniform(-0.45, 0.45, values.shape) * np.spacing(np.abs(v[order]))
            ds.createVariable(k, dtype or v.dtype, ("time", "y", "x"))[:] = values


# defect 3: nearest midpoint within 1e-3 years


def test_a_member_of_another_length_matches_midpoints_only_within_1e_3_years(data_dir: Path) -> None:
    cfg = _config(data_dir)
    member = load_data(cfg).members[0]
    ref = model_intervals(np.array([2015.0, 2016.0, 2017.0, 2018.0]))
    near = member.__class__(**{**member.__dict__, "times": np.array([2015.0, 2016.0, 2017.0015, 2018.0, 2019.0])})
    far = member.__class__(**{**member.__dict__, "times": np.array([2015.0, 2016.0, 2017.003, 2018.0, 2019.0])})
    assert _interval_rows(near, ref, cfg) == [(0, 1), (1, 2), (2, 3)]  # midpoints off by 0.00075
    assert _interval_rows(far, ref, cfg) == [(0, 1), None, None]  # off by 0.0015: nothing within 1e-3


def test_an_unmatched_interval_is_nan_for_that_member_so_masked_for_all(data_dir: Path) -> None:
    path = _member(data_dir, 2)  # cf seconds: midpoints ~0.004 years from the day-00 reference
    _rewrite_member(path, order=[0, 1, 2, 3])  # one step fewer: reindexed, nothing within 1e-3
    cfg = _config(data_dir)
    data = load_data(cfg)
    intervals = model_intervals(data.members[0].times)
    from fusion.data.prepare import _Block

    blocks = [_Block(0, i, 0) for i in range(len(intervals))]
    rates = dict(_member_rates(data.members[1], intervals, blocks, cfg))
    assert all(np.isnan(r).all() for r in rates.values())
    with pytest.raises(InputError, match="no valid points"):
        prepare(cfg, data)  # every interval gone for every member: the prototype fails here too


# time axis: units as the prototype reads them, rows sorted


def test_prototype_time_units_are_case_sensitive_substrings() -> None:
    seconds = np.array([0.0, SECONDS])
    assert decode_time(seconds, "Seconds since 2015-01-01 00:00:00", "prototype")[1] == SECONDS  # read as years
    np.testing.assert_allclose(decode_time(seconds, "second since 2015-01-01 00:00:00 UTC", "prototype"), [2015, 2016], atol=1e-3)
    with pytest.raises(TimeUnitsError):
        decode_time(seconds, "seconds since 2015-01-01", "prototype")  # its origin search needs hh:mm:ss
    assert decode_time(seconds, "Seconds since 2015-01-01 00:00:00", "fixed")[1] == pytest.approx(2016)


def test_prototype_reads_a_unit_attribute_when_units_is_absent(data_dir: Path) -> None:
    path = _member(data_dir, 3)  # decimal years, no units: re-express as seconds under `unit`
    with netCDF4.Dataset(path, "a") as ds:
        t = ds["time"]
        years = np.array(t[:])
        t[:] = (years - 2010.0) * SECONDS
        t.unit = "seconds since 2010-01-01 00:00:00"
    times = load_data(_config(data_dir)).members[2].times
    np.testing.assert_allclose(times, years, atol=0.01)


def test_prototype_sorts_member_rows_by_time(data_dir: Path) -> None:
    expected = _prepare(data_dir)
    _rewrite_member(_member(data_dir, 2), order=[0, 3, 2, 1, 4])
    _assert_same(_prepare(data_dir), expected)
    with pytest.raises(InputError, match="not strictly increasing"):
        _prepare(data_dir, "fixed")


# fields: float32 before any arithmetic, masked as xarray masks


def test_member_fields_stored_as_float64_are_differenced_in_float32(data_dir: Path) -> None:
    path = _member(data_dir, 2)
    _rewrite_member(path, dtype="f8", jitter=True)  # bits below float32 precision
    got = _prepare(data_dir)
    _rewrite_member(path, dtype="f4")  # the same values, cast to float32 on disk
    reference = _prepare(data_dir)
    _assert_same(got, reference)


def test_observations_stored_as_float64_are_cast_to_float32(data_dir: Path) -> None:
    path = data_dir / "obs" / "vel" / "vel_Antarctica_ice_velocity_2017.nc"
    with netCDF4.Dataset(path) as ds:
        arrays = {k: np.ma.filled(ds[k][:].astype(np.float64), np.nan) for k in ("VX", "VY", "ERRX", "ERRY")}
        y, x = np.array(ds["y"][:]), np.array(ds["x"][:])

    def write(values: dict) -> None:
        path.unlink()
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("y", y.size)
            ds.createDimension("x", x.size)
            ds.createVariable("y", "f8", ("y",))[:] = y
            ds.createVariable("x", "f8", ("x",))[:] = x
            for k, v in values.items():
                ds.createVariable(k, v.dtype, ("y", "x"))[:] = v

    write({k: v * (1 + 1e-9) + 1e-6 for k, v in arrays.items()})
    got = _prepare(data_dir)
    write({k: (v * (1 + 1e-9) + 1e-6).astype(np.float32) for k, v in arrays.items()})
    _assert_same(got, _prepare(data_dir))


def test_prototype_masks_only_fill_values_not_the_valid_range(data_dir: Path) -> None:
    path = data_dir / "obs" / "vel" / "vel_Antarctica_ice_velocity_2017.nc"
    with netCDF4.Dataset(path, "a") as ds:
        vx = np.ma.filled(ds["VX"][:], np.nan)
        ds["VX"].valid_max = float(np.nanmedian(vx))  # half the values lie above it
    cfg = _config(data_dir)
    fields = {"prototype": None, "fixed": None}
    for compat in fields:
        cfg = _config(data_dir, compat)
        fields[compat] = next(v.vx for v in load_data(cfg).velocity if v.year == 2017)
    np.testing.assert_array_equal(fields["prototype"], vx.astype(np.float32))
    assert np.isnan(fields["fixed"]).sum() > np.isnan(vx).sum()


# thickness uncertainty: every non-finite value gets the median (of the values, inf included)


def test_an_rmse_whose_square_overflows_gets_the_median_like_a_missing_one(data_dir: Path) -> None:
    path = data_dir / "obs" / "elev" / "elev_antarctica_elevation_2017.nc"

    def set_rmse(value: float) -> None:
        with netCDF4.Dataset(path, "a") as ds:
            r = np.array(ds["absolute_elevation_rmse"][:])
            r[0, 2:5, 3:7] = value
            ds["absolute_elevation_rmse"][:] = r

    set_rmse(1e30)  # float32 square is inf
    got, fixed = _prepare(data_dir), _prepare(data_dir, "fixed")
    set_rmse(np.nan)
    ref, fixed_ref = _prepare(data_dir), _prepare(data_dir, "fixed")
    np.testing.assert_array_equal(got.y_obs, ref.y_obs)  # the same points kept ...
    filled = got.sigma_obs != ref.sigma_obs  # ... with one median each (inf counts in the prototype's)
    assert filled.sum() >= 12
    assert np.unique(got.sigma_obs[filled]).size == 1 and np.isfinite(got.sigma_obs).all()
    assert fixed.n_points == fixed_ref.n_points - filled.sum()  # fixed: an infinite uncertainty fails the threshold


# observation files: repeated years, all-NaN years


def test_a_repeated_velocity_year_uses_its_last_file_counted_twice_in_speed(data_dir: Path) -> None:
    vel = data_dir / "obs" / "vel"
    second = vel / "vel_Antarctica_ice_velocity_2016_v2.nc"
    shutil.copyfile(vel / "vel_Antarctica_ice_velocity_2016.nc", second)
    with netCDF4.Dataset(second, "a") as ds:
        ds["VX"][:] = np.array(ds["VX"][:]) * 1.5
    cfg = _config(data_dir)
    data = load_data(cfg)
    assert [v.year for v in data.velocity] == [2015, 2016, 2016, 2017, 2018, 2019]
    _, _, _, speed = _observed_blocks(cfg, data, model_intervals(data.members[0].times))
    by_year = {v.year: v for v in data.velocity}  # the last file of a year wins
    assert by_year[2016].source == second
    fields = [np.sqrt(by_year[y].vx ** 2 + by_year[y].vy ** 2) for y in (2015, 2016, 2016, 2017, 2018, 2019)]
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(np.stack(fields), axis=0).reshape(-1)
    np.testing.assert_array_equal(speed, expected)
    with pytest.raises(InputError, match="year 2016 already given"):
        load_data(_config(data_dir, "fixed"))


def test_an_all_nan_observation_year_is_data_under_prototype(data_dir: Path) -> None:
    path = data_dir / "obs" / "elev" / "elev_antarctica_elevation_2019.nc"
    with netCDF4.Dataset(path, "a") as ds:
        ds["height"][:] = np.full(ds["height"].shape, np.nan, dtype=np.float32)
    assert len(load_data(_config(data_dir)).thickness) == 5
    with pytest.raises(InputError, match="all NaN"):
        load_data(_config(data_dir, "fixed"))


def test_prototype_member_list_skips_dot_files_as_glob_does(data_dir: Path) -> None:
    (data_dir / "ensemble" / "._run01_regridded.nc").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert len(load_data(_config(data_dir)).members) == 4
    with pytest.raises(InputError, match="not a readable NetCDF"):
        load_data(_config(data_dir, "fixed"))
