"""The synthetic generator: deterministic, in the prototype's layout, and with an identifiable truth.

The harness's recovery checks and the bundled example rest on these properties, so they are
pinned here rather than discovered when a weighting run goes wrong.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from fusion.data.synthetic import FILL_TIME, PSU_UNITS, SyntheticSpec, generate, sle_mm, write_example

ELEV = "obs/elev/elev_antarctica_elevation_{}.nc"
VEL = "obs/vel/vel_Antarctica_ice_velocity_{}.nc"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate(out, SyntheticSpec(seed=3))


def _raw(path: Path, var: str) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return ds[var][:]


def _masked(path: Path, var: str) -> np.ndarray:
    """Fill values as NaN, float64, singleton time squeezed (how the pipeline reads observations)."""
    with netCDF4.Dataset(path) as ds:
        return np.squeeze(np.ma.filled(ds[var][:].astype(np.float64), np.nan))


def _all_arrays(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(root.rglob("*.nc")):
        with netCDF4.Dataset(path) as ds:
            ds.set_auto_mask(False)
            for name, var in ds.variables.items():
                out[f"{path.relative_to(root)}:{name}"] = var[:]
    return out


def test_same_arguments_give_identical_arrays(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SyntheticSpec(seed=5, members=4))
    b = generate(tmp_path / "b", SyntheticSpec(seed=5, members=4))
    assert a == b
    arrays_a, arrays_b = _all_arrays(tmp_path / "a"), _all_arrays(tmp_path / "b")
    assert arrays_a.keys() == arrays_b.keys() and len(arrays_a) > 0
    for key, value in arrays_a.items():
        assert value.dtype == arrays_b[key].dtype, key
        assert np.array_equal(value, arrays_b[key], equal_nan=True), key
    assert (tmp_path / "a/truth.json").read_text() == (tmp_path / "b/truth.json").read_text()
    other = generate(tmp_path / "c", SyntheticSpec(seed=6, members=4))
    assert other["members"][0]["params"] != a["members"][0]["params"]


def test_observation_files_have_the_prototype_structure(dataset: tuple[Path, dict]) -> None:
    out, truth = dataset
    for year in truth["years"]:
        with netCDF4.Dataset(out / ELEV.format(year)) as ds:
            assert {"x", "y", "time", "height", "absolute_elevation_rmse"} <= set(ds.variables)
            assert ds["time"].units == "days since 1950-01-01 00:00:00"
            for name in ("height", "absolute_elevation_rmse"):
                var = ds[name]
                assert var.dtype == np.float32 and var.dimensions == ("time", "y", "x")
                assert var.shape == (1, 30, 40) and var.getncattr("_FillValue") == np.float32(-9999.0)
            assert ds["x"].dtype == np.float64 and ds["x"].units == "m"
        with netCDF4.Dataset(out / VEL.format(year)) as ds:
            for name in ("VX", "VY", "ERRX", "ERRY"):
                var = ds[name]
                assert var.dtype == np.float32 and var.dimensions == ("y", "x")
                assert var.getncattr("_FillValue") == np.float32(-9999.0)
        height = _masked(out / ELEV.format(year), "height")
        assert 0 < np.isnan(height).sum() < height.size  # gaps, but mostly covered ice
    rmse = np.stack([_masked(out / ELEV.format(y), "absolute_elevation_rmse") for y in truth["years"]])
    pair = np.sqrt(rmse[1:] ** 2 + rmse[:-1] ** 2)
    assert np.nanmedian(rmse) < 1.0 and np.sum(pair > 50) > 0  # the thickness threshold is hit
    err = np.stack([_masked(out / VEL.format(y), "ERRX") for y in truth["years"]])
    assert np.nanmedian(err) < 5.0 and np.sum(err > 10) > 0


def test_ensemble_files_rotate_time_encodings_and_carry_a_fill_row(dataset: tuple[Path, dict]) -> None:
    out, truth = dataset
    units = []
    for member in truth["members"]:
        path = out / "ensemble" / member["file"]
        with netCDF4.Dataset(path) as ds:
            for name in ("h", "ua", "va"):
                assert ds[name].dtype == np.float32 and ds[name].dimensions == ("time", "y", "x")
            assert ds["totig"].dtype == np.float64 and ds["totig"].dimensions == ("time",)
            assert ds.dimensions["time"].isunlimited()
            units.append(getattr(ds["time"], "units", None))
            assert units[-1] == member["time_units"]
        time = _raw(path, "time")
        assert time.size == member["n_time"]
    assert PSU_UNITS in units  # day 00: origin 1999-12-31
    assert f"seconds since {truth['years'][0]}-01-01 00:00:00" in units and None in units and "years" in units
    psu = out / "ensemble" / truth["members"][0]["file"]
    assert _raw(psu, "time")[0] == (truth["years"][0] - 2000) * 31556926.0

    filled = out / "ensemble" / truth["members"][2]["file"]
    time = _raw(filled, "time")
    assert time.size == len(truth["years"]) + 1 and time[1] == FILL_TIME
    with netCDF4.Dataset(filled) as ds:
        assert ds["time"].getncattr("_FillValue") == FILL_TIME
    assert np.isnan(_raw(out / "ensemble" / truth["members"][1]["file"], "h")).sum() > 0  # NaNs inside a member


def test_truth_is_recorded(dataset: tuple[Path, dict]) -> None:
    out, truth = dataset
    assert json.loads((out / "truth.json").read_text()) == json.loads(json.dumps(truth))
    index = truth["truth_member"]["index"]
    assert truth["truth_member"]["id"] == f"run{index + 1}"
    assert truth["truth_member"]["file"] == f"run{index + 1:02d}_regridded.nc"
    assert truth["truth_params"] == truth["members"][index]["params"]
    assert truth["args"]["seed"] == 3 and truth["grid"]["ice_pixels"] > 0


def test_projection_gives_plausible_member_dependent_sle(dataset: tuple[Path, dict]) -> None:
    out, truth = dataset
    sles = []
    for member in truth["members"]:
        name = member["projection_file"]
        t_hist, v_hist = _raw(out / "projection/historical" / name, "time"), _raw(out / "projection/historical" / name, "totig")
        t_fwd, v_fwd = _raw(out / "projection/forward" / name, "time"), _raw(out / "projection/forward" / name, "totig")
        assert v_hist.dtype == np.float64 and t_hist[0] == 1950 and t_hist[-1] == 2015 and t_fwd[-1] == 2100
        sle = (917 / 1028) * (v_hist[-1] - v_fwd[t_fwd == 2100][0]) / 3.62e14 * 1000
        assert sle == pytest.approx(member["sle_mm"], rel=1e-12) and sle == sle_mm(v_hist, t_fwd, v_fwd)
        sles.append(sle)
    assert all(0 < s < 400 for s in sles) and len(set(sles)) == len(sles)
    thinning = [m["params"]["thinning"] for m in truth["members"]]
    assert np.corrcoef(thinning, sles)[0, 1] > 0.5


def test_truth_member_is_closest_to_the_observations(dataset: tuple[Path, dict]) -> None:
    """RMS of dh/dt residuals on well-measured points: the hidden truth must beat every other member."""
    out, truth = dataset
    years = truth["years"]
    height = np.stack([_masked(out / ELEV.format(y), "height") for y in years])
    rmse = np.stack([_masked(out / ELEV.format(y), "absolute_elevation_rmse") for y in years])
    obs_rate = np.diff(height, axis=0)
    good = np.isfinite(obs_rate) & (np.sqrt(rmse[1:] ** 2 + rmse[:-1] ** 2) < 5.0)
    rms = {}
    for member in truth["members"]:
        path = out / "ensemble" / member["file"]
        time = _raw(path, "time")
        h = _raw(path, "h")[np.abs(time) < 1e20].astype(np.float64)
        diff = np.diff(h, axis=0) - obs_rate
        use = good & np.isfinite(diff)
        assert use.sum() > 1000
        rms[member["id"]] = float(np.sqrt(np.mean(diff[use] ** 2)))
    best = truth["truth_member"]["id"]
    assert min(rms, key=rms.get) == best
    assert all(rms[best] < 0.9 * value for key, value in rms.items() if key != best), rms


def test_awkward_case_options(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        members=3,
        obs_gap_years=(2017,),
        vel_missing_err_years=(2018,),
        elev_no_rmse_years=(2019,),
        elev_drop_rmse_var_years=(2016,),
        fill_member=None,
        drop_time_member=0,
        drop_time_index=0,
        with_projection=False,
    )
    truth = generate(tmp_path, spec)
    assert not (tmp_path / ELEV.format(2017)).exists() and not (tmp_path / VEL.format(2017)).exists()
    with netCDF4.Dataset(tmp_path / VEL.format(2018)) as ds:
        assert "ERRY" not in ds.variables and "ERRX" in ds.variables
    with netCDF4.Dataset(tmp_path / ELEV.format(2016)) as ds:
        assert "absolute_elevation_rmse" not in ds.variables
    assert np.isnan(_masked(tmp_path / ELEV.format(2019), "absolute_elevation_rmse")).all()
    assert truth["members"][0]["n_time"] == len(truth["years"]) - 1
    assert all(m["n_time"] == len(truth["years"]) for m in truth["members"][1:])
    full = generate(tmp_path / "full", SyntheticSpec(members=3, fill_member=None, with_projection=False))
    dropped_h, full_h = (_raw(root / "ensemble/run01_regridded.nc", "h") for root in (tmp_path, tmp_path / "full"))
    assert np.array_equal(dropped_h, full_h[1:])  # a dropped step removes a row, shifts nothing
    assert full["members"][0]["params"] == truth["members"][0]["params"]
    assert not (tmp_path / "projection").exists()
    with pytest.raises(ValueError, match="fill_member"):
        SyntheticSpec(members=2, fill_member=2)
    with pytest.raises(ValueError, match="obs_gap_years"):
        SyntheticSpec(obs_gap_years=(1999,))


def test_example_writes_a_valid_config(tmp_path: Path) -> None:
    from fusion.config import load_config

    cfg_path = write_example(tmp_path)
    cfg = load_config(cfg_path)
    assert cfg.compat == "fixed"
    assert cfg.ensemble.dir == (tmp_path / "ensemble").resolve() and cfg.ensemble.dir.is_dir()
    assert cfg.observations.thickness.dir.is_dir() and cfg.projection.forward_dir.is_dir()
    assert cfg.inference.subsample.size == 20000 and cfg.inference.subsample.seed == 42
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert any(m["time_units"] == PSU_UNITS for m in truth["members"])
    assert any("_FillValue" in m["note"] for m in truth["members"])
    assert truth["args"]["vel_missing_err_years"] and not truth["args"]["obs_gap_years"]


def test_a_spec_is_frozen_and_checked_before_anything_is_written(tmp_path: Path) -> None:
    """The spec is the dataset's identity: immutable, normalised (equal specs write equal bytes) and
    validated on construction, so a bad one fails with nothing on disk."""
    spec = SyntheticSpec(members=3, obs_gap_years=[2017, 2016, 2017], with_projection=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 2  # type: ignore[misc]
    assert spec == SyntheticSpec(members=3, obs_gap_years=(2016, 2017), with_projection=False)
    assert spec.obs_gap_years == (2016, 2017)
    assert generate(tmp_path / "a", spec) == generate(
        tmp_path / "b", SyntheticSpec(members=3, obs_gap_years=(2016, 2017), with_projection=False)
    )
    with pytest.raises(ValueError, match="drop_time_index"):
        dataclasses.replace(spec, drop_time_index=9)
