"""Observations as the products are distributed: the same observations in the prototype layout
and as ATL15 / ITS_LIVE / MEaSUREs files (tests/fusion/data/products.py) prepare to the same arrays;
ATL15 quadrants mosaic to the whole file; each bad product input is one line, exit 2, nothing written."""

from __future__ import annotations

import inspect
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fusion.cli import main
from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data.prepare import prepare
from fusion.data.synthetic import SyntheticSpec, generate
from tests.fusion.data import products

pytestmark = pytest.mark.long_module(seconds=20)  # its tests in all under ./dev test

SPEC = SyntheticSpec(ny=12, nx=16, members=3, years=(2015, 2019), seed=5)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("products")
    generate(root / "case", SPEC)
    products.round_velocity_errors(root / "case")  # whole m/yr, as ITS_LIVE carries them
    products.write_atl15(root / "case", root / "atl15")
    products.write_atl15(root / "case", root / "atl15_quadrants", quadrants=True)
    products.write_itslive(root / "case", root / "itslive")
    products.write_measures(root / "case", root / "measures")
    return root


def _config(root: Path, name: str, compat: str = "fixed", thickness: dict | None = None, velocity: dict | None = None) -> Path:
    obs = {"thickness": {"dir": str(root / "case/obs/elev")}, "velocity": {"dir": str(root / "case/obs/vel")}}
    obs["thickness"].update(thickness or {})
    obs["velocity"].update(velocity or {})
    data = {"compat": compat, "observations": obs, "ensemble": {"dir": str(root / "case/ensemble")},
            "output": {"dir": str(root / f"out_{name}")}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


ATL15 = {"product": "atl15", "pattern": "ATL15_*.nc"}
ITSLIVE = {"product": "itslive", "pattern": "ITS_LIVE_velocity_*.nc"}
MEASURES = {"product": "measures", "pattern": "Antarctica_ice_velocity_*.nc"}


def _prepared(path: Path):
    cfg = load_config(path)
    return prepare(cfg, load_data(cfg, lazy=True))


def _assert_same(a, b) -> None:
    for name in ("y_obs", "sigma_obs", "F", "speed", "stream"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.n_dhdt, a.n_vel) == (b.n_dhdt, b.n_vel)
    assert a.availability.record["streams"]["thick"]["kept"] == b.availability.record["streams"]["thick"]["kept"]


@pytest.mark.parametrize("compat", ["fixed", "prototype"])
@pytest.mark.parametrize("velocity", ["itslive", "measures"])
def test_products_prepare_to_the_prototype_layouts_arrays(case: Path, compat: str, velocity: str) -> None:
    layout = _prepared(_config(case, f"layout_{compat}", compat))
    vel = {"dir": str(case / velocity), **(ITSLIVE if velocity == "itslive" else MEASURES)}
    product = _prepared(_config(case, f"{velocity}_{compat}", compat, {"dir": str(case / "atl15"), **ATL15}, vel))
    assert layout.n_points > 100 and layout.n_vel > 0 and layout.n_dhdt > 0
    _assert_same(layout, product)


def test_atl15_quadrants_mosaic_to_the_whole_file_through_the_cli(case: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole.npz", tmp_path / "parts.npz"
    vel = {"dir": str(case / "itslive"), **ITSLIVE}
    assert main(["prepare", str(_config(case, "whole", thickness={"dir": str(case / "atl15"), **ATL15}, velocity=vel)),
                 "--out", str(whole)]) == 0
    assert main(["prepare", str(_config(case, "parts", thickness={"dir": str(case / "atl15_quadrants"), **ATL15},
                                        velocity=vel)), "--out", str(parts)]) == 0
    assert len(list((case / "atl15_quadrants").glob("ATL15_A*.nc"))) == 4
    a, b = np.load(whole), np.load(parts)
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_atl15_lag_group_gives_the_products_rates_and_sigmas(case: Path) -> None:
    cfg = load_config(_config(case, "lag4", thickness={"dir": str(case / "atl15"), "group": "dhdt_lag4", **ATL15}))
    data = load_data(cfg)
    assert all(r.rate for r in data.thickness)
    mids = [r.year for r in data.thickness]
    assert 2015.5 in mids and 2016.5 in mids
    layout = prepare(load_config(_config(case, "layout_fixed")), load_data(load_config(_config(case, "layout_fixed"))))
    lag = prepare(cfg, data)
    thick_layout, thick_lag = layout.y_obs[layout.stream == 0], lag.y_obs[lag.stream == 0]
    # the rates of whole-year epochs one year apart are the yearly differences (float32, / 1.0)
    assert thick_lag.size == thick_layout.size
    np.testing.assert_array_equal(np.sort(thick_lag), np.sort(thick_layout))
    record = next(r for r in data.thickness if r.year == 2016.5)
    assert np.nanmax(np.asarray(record.uncertainty)) > 0


def test_itslive_as_zarr_stores_gives_its_netcdf_bits(case: Path, tmp_path: Path) -> None:
    """The product's files converted to Zarr (as a user's cloud copy would be) read through the same
    reader: the same arrays, and the CRS still found in the `mapping` scalar's attributes."""
    import xarray as xr

    for nc in sorted((case / "itslive").glob("*.nc")):
        with xr.open_dataset(nc, decode_times=False, mask_and_scale=False) as ds:
            ds.to_zarr(tmp_path / "z" / nc.with_suffix(".zarr").name, mode="w", consolidated=False)
    netcdf = _prepared(_config(case, "its_nc", velocity={"dir": str(case / "itslive"), **ITSLIVE}))
    zarr_cfg = load_config(_config(case, "its_zarr", velocity={"dir": str(tmp_path / "z"), "product": "itslive",
                                                                "pattern": "ITS_LIVE_velocity_*.zarr"}))
    data = load_data(zarr_cfg, lazy=True)
    assert data.crs["streams"]["velocity"] == {"product": "itslive", "crs": "EPSG:3031", "from": "file"}
    _assert_same(netcdf, prepare(zarr_cfg, data))


@pytest.mark.parametrize("compat", ["fixed", "prototype"])
def test_blocks_from_the_memory_budget_give_the_one_block_bits(case: Path, compat: str) -> None:
    """No flag: `memory.budget_gb` sets the rows per block (a tiny budget: one row at a time); the
    arrays are those of the grid as one block."""
    from fusion.data.budget import rows_for_budget

    path = _config(case, f"budget_{compat}", compat, {"dir": str(case / "atl15_quadrants"), **ATL15},
                   {"dir": str(case / "itslive"), **ITSLIVE})
    cfg = load_config(path)
    tight, roomy = (cfg.with_updates(memory={"budget_gb": gb}) for gb in (0.01, 1000.0))
    data = load_data(tight, lazy=True)
    assert rows_for_budget(tight, data) == 1 and rows_for_budget(roomy, data) is None
    assert rows_for_budget(cfg, data) is None  # the default budget holds this small grid whole
    _assert_same(prepare(roomy, data), prepare(tight, data))


# --- bad inputs ------------------------------------------------------------------------------------

def _bad_missing_group(case: Path, tmp: Path) -> tuple[dict, dict, str]:
    return {"dir": str(case / "atl15"), "group": "dhdt_lag8", **ATL15}, {}, "missing group 'dhdt_lag8'"


def _bad_missing_variable(case: Path, tmp: Path) -> tuple[dict, dict, str]:
    products.write_atl15(case / "case", tmp / "a", drop=("delta_h_sigma",))
    return {"dir": str(tmp / "a"), **ATL15}, {}, "missing variable 'delta_h_sigma' in group 'delta_h'"


def _bad_two_files_one_year(case: Path, tmp: Path) -> tuple[dict, dict, str]:
    shutil.copytree(case / "itslive", tmp / "v")
    products.write_itslive(case / "case", tmp / "v", version="v01", years=[2016])
    return {}, {"dir": str(tmp / "v"), **ITSLIVE}, "year 2016 already given by"


def _bad_epochs_match_no_step(case: Path, tmp: Path) -> tuple[dict, dict, str]:
    products.write_atl15(case / "case", tmp / "a", shift_years=20.0)
    return {"dir": str(tmp / "a"), **ATL15}, {}, "no epoch"


def _bad_crs_mismatch(case: Path, tmp: Path) -> tuple[dict, dict, str]:
    products.write_itslive(case / "case", tmp / "v", epsg="3413")
    return {}, {"dir": str(tmp / "v"), **ITSLIVE}, "projection mismatch (CRS): velocity (itslive) is on 'EPSG:3413'"


BAD = {f.__name__[5:]: f for f in (_bad_missing_group, _bad_missing_variable, _bad_two_files_one_year,
                                    _bad_epochs_match_no_step, _bad_crs_mismatch)}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_product_input_is_one_line_exit_2_nothing_written(case: Path, tmp_path: Path, capsys, name: str) -> None:
    thickness, velocity, problem = BAD[name](case, tmp_path)
    config = _config(case, f"bad_{name}", thickness=thickness, velocity=velocity)
    out = tmp_path / "prepared.npz"
    capsys.readouterr()
    assert main(["prepare", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0], err
    assert ".nc" in err[0] and "Traceback" not in err[0]
    assert not out.exists() and not list(tmp_path.glob("prepared*"))


def test_an_unknown_product_names_the_key_and_the_choices(case: Path, capsys) -> None:
    config = _config(case, "unknown", thickness={"product": "atl16"})
    assert main(["prepare", str(config), "--out", str(case / "x.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "observations.thickness.product" in err and "atl15, itslive, measures" in err


def test_load_data_visits_each_stage_module_once_in_order(case: Path) -> None:
    """Following `cfg` through load_data → prepare: list (remote), read (readers), align (regrid),
    prepare — each entered once, in that order (consecutive calls within a stage are one visit)."""
    stages = {"fusion.data.remote": "list", "fusion.data.readers": "read", "fusion.data.regrid": "align",
              "fusion.data.prepare": "prepare"}
    visits: list[str] = []

    def stage_of(frame) -> str | None:
        code = frame.f_code  # module and class bodies (imports) and dataclass-generated methods are not its code
        if not code.co_flags & inspect.CO_OPTIMIZED or code.co_filename.startswith("<"):
            return None
        name = frame.f_globals.get("__name__", "")
        return next((s for mod, s in stages.items() if name == mod or name.startswith(mod + ".")), None)

    def profile(frame, event, arg) -> None:
        if event != "call":
            return
        stage = stage_of(frame)
        if stage is not None and stage_of(frame.f_back) != stage and (not visits or visits[-1] != stage):
            visits.append(stage)

    cfg = load_config(_config(case, "trace", thickness={"dir": str(case / "atl15"), **ATL15},
                              velocity={"dir": str(case / "itslive"), **ITSLIVE}))
    sys.setprofile(profile)
    try:
        data = load_data(cfg, lazy=True)
        prepare(cfg, data)
    finally:
        sys.setprofile(None)
    assert visits == ["list", "read", "align", "prepare"], visits


def test_load_data_is_the_ice_fusion_mapping(case: Path) -> None:
    import xarray as xr

    cfg = load_config(_config(case, "mapping", thickness={"dir": str(case / "atl15"), **ATL15},
                              velocity={"dir": str(case / "itslive"), **ITSLIVE}))
    data = load_data(cfg)
    assert set(data) == {"obs", "ensemble"}
    ens = data["ensemble"]
    assert isinstance(ens, xr.Dataset) and list(ens["member"].values) == ["run1", "run2", "run3"]
    assert ens["h"].chunks is not None  # dask-backed: read on demand
    obs = data["obs"]
    assert set(obs) == {"thickness", "velocity"} and obs["thickness"].attrs["product"] == "atl15"
    first = next(r for r in data.thickness if r.year == 2016)
    np.testing.assert_array_equal(obs["thickness"]["height"].sel(time=2016.0).values, np.asarray(first.height))
    # y in the ensemble's order: ITS_LIVE's descending y was flipped
    np.testing.assert_array_equal(obs["velocity"]["y"].values, ens["y"].values)


# --- provenance --------------------------------------------------------------------------------------

def _run(case: Path, tmp_path: Path, name: str, atl15: str) -> Path:
    config = _config(case, name, thickness={"dir": str(case / atl15), **ATL15},
                     velocity={"dir": str(case / "measures"), **MEASURES})
    data = yaml.safe_load(config.read_text())
    data["inference"] = {"method": "laplace", "draws": 100}
    data["likelihood"] = {"form": "tempered", "sensitivity": False}
    data["projection"] = {"historical_dir": str(case / "case/projection/historical"),
                          "forward_dir": str(case / "case/projection/forward")}
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / name
    assert main(["run", str(config), "--out", str(out)]) == 0
    return out


def test_run_metadata_records_products_crs_and_availability(case: Path, tmp_path: Path) -> None:
    """`fusion run` on ATL15 quadrants + MEaSUREs: the provenance it records, and the same
    weights and projection as the run on the whole ATL15 file."""
    import json

    out = _run(case, tmp_path, "quadrants", "atl15_quadrants")
    whole = _run(case, tmp_path, "whole", "atl15")
    for name in ("weights.csv", "projection.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    meta = json.loads((out / "run_metadata.json").read_text())
    crs = meta["inputs"]["crs"]
    assert crs["ensemble"] == {"crs": "EPSG:3031", "from": "assumed", "file": "run01_regridded.nc"}
    assert crs["streams"]["thickness"] == {"product": "atl15", "crs": "EPSG:3031", "from": "file"}
    assert crs["streams"]["velocity"] == {"product": "measures", "crs": "EPSG:3031", "from": "product default"}
    files = {Path(e["file"]).name: e for e in meta["inputs"]["products"]}
    a3 = files["ATL15_A3_0314_01km_004_01.nc"]
    assert a3["product"] == "atl15" and a3["tokens"] == {"region": "A3", "cycles": "0314", "resolution": "01km",
                                                         "release": "004", "version": "01"}
    assert a3["sha256"] == meta["input_files"][a3["file"]] and len(a3["sha256"]) == 64
    m = files["Antarctica_ice_velocity_2016_2017_1km_v01.1.nc"]
    assert m["tokens"]["end"] == "2017" and m["tokens"]["version"] == "v01.1"
    streams = meta["availability"]["streams"]
    assert streams["thick"]["product"] == "atl15" and streams["vel"]["product"] == "measures"
    assert streams["thick"]["kept"] > 0 and streams["thick"]["intervals"][0]["dropped"]
