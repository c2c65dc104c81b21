"""`observations.regrid`: finer observations averaged onto the ensemble's cells (fusion.data.regrid)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml

from fusion.cli import main
from fusion.config import Regrid, load_config
from fusion.data.load import Grid, load_data
from fusion.data.prepare import prepare
from fusion.data.regrid import conform
from fusion.errors import InputError
from tests.helpers import reference_inputs

FACTOR = 8
DX = 8000.0


def _grid(ny: int, nx: int, dx: float, x0: float = -1.2e6, y0: float = -8e5, name: str = "g", projection=None) -> Grid:
    return Grid((ny, nx), y0 + dx * np.arange(ny), x0 + dx * np.arange(nx), Path(name), projection)


def _fine_of(coarse: Grid, k: int = FACTOR, name: str = "fine.nc") -> Grid:
    """The grid whose k × k blocks are exactly `coarse`'s cells."""
    dx = DX / k
    ny, nx = coarse.shape
    return _grid(ny * k, nx * k, dx, coarse.x[0] - DX / 2 + dx / 2, coarse.y[0] - DX / 2 + dx / 2, name)


def _bilinear(grid: Grid) -> np.ndarray:
    """A field whose mean over any rectangle is its value at the rectangle's centre."""
    yy, xx = np.meshgrid((grid.y + 8e5) / 1e4, (grid.x + 1.2e6) / 1e4, indexing="ij")
    return (100.0 + 3.0 * xx - 2.0 * yy + 0.5 * xx * yy).astype(np.float32)


@pytest.mark.parametrize("method", ["mean", "conservative"])
def test_fine_field_at_8x_matches_its_coarse_truth(method: str) -> None:
    coarse = _grid(6, 9, DX)
    fine = _fine_of(coarse)
    spec = Regrid(method=method)
    got = conform({"v": _bilinear(fine)}, {}, fine, coarse, spec, Path("fine.nc"))["v"]
    truth = _bilinear(coarse)
    assert got.shape == coarse.shape and got.dtype == np.float32
    # exact arithmetic gives the truth exactly (a bilinear field's cell mean is its centre value);
    # the fine values and the result are float32, so allow a few float32 ulps of ~100
    np.testing.assert_allclose(got, truth, rtol=4 * np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("method", ["mean", "conservative"])
def test_cells_below_the_valid_fraction_are_nan(method: str) -> None:
    coarse = _grid(2, 2, DX)
    fine = _fine_of(coarse)
    field = np.ones(fine.shape, np.float32)
    field[:2, :8] = np.nan  # cell (0, 0): 16 of 64 missing → valid fraction exactly 0.75
    field[8:10, :8] = np.nan
    field[10, 0] = np.nan  # cell (1, 0): 17 of 64 missing
    got = conform({"v": field}, {}, fine, coarse, Regrid(method=method, min_valid_fraction=0.75), Path("f.nc"))["v"]
    assert got[0, 0] == 1.0 and np.isnan(got[1, 0]) and got[0, 1] == 1.0 and got[1, 1] == 1.0


@pytest.mark.parametrize(("rule", "expected"), [("correlated", 2.0), ("independent", 2.0 / FACTOR)])
def test_uncertainty_of_a_cell_mean_follows_the_stated_rule(rule: str, expected: float) -> None:
    coarse = _grid(3, 3, DX)
    fine = _fine_of(coarse)
    value = _bilinear(fine)
    sigma = np.full(fine.shape, 2.0, np.float32)
    out = conform({"v": value, "s": sigma}, {"s": "v"}, fine, coarse, Regrid(uncertainty=rule), Path("f.nc"))
    np.testing.assert_allclose(out["s"], expected, rtol=1e-6)


def test_fields_on_the_ensemble_grid_are_untouched() -> None:
    grid = _grid(3, 4, DX)
    field = _bilinear(grid)
    out = conform({"v": field}, {}, grid, _grid(3, 4, DX, name="other"), Regrid(), Path("f.nc"))
    assert out["v"] is field


def test_a_projection_mismatch_names_both_grids() -> None:
    coarse = _grid(2, 2, DX, projection="EPSG:3031")
    fine = _fine_of(coarse)
    fine = Grid(fine.shape, fine.y, fine.x, Path("fine.nc"), "EPSG:3413")
    with pytest.raises(InputError, match=r"projection mismatch: .*fine\.nc.*EPSG:3413.*EPSG:3031"):
        conform({"v": _bilinear(fine)}, {}, fine, coarse, Regrid(), Path("fine.nc"))


# --- end to end: the reference case's observations at 8× the resolution -------------------------


def _refine_file(src: Path, dst: Path, k: int, shift: float = 0.0, crs: str | None = None) -> None:
    """Copy a NetCDF file with every (…, y, x) variable repeated k × k (same values on each block)."""
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w") as b:
        for name, dim in a.dimensions.items():
            b.createDimension(name, len(dim) * k if name in ("x", "y") else len(dim))
        for name, var in a.variables.items():
            var.set_auto_maskandscale(False)
            attrs = {n: var.getncattr(n) for n in var.ncattrs()}
            out = b.createVariable(name, var.dtype, var.dimensions, fill_value=attrs.pop("_FillValue", None))
            out.set_auto_maskandscale(False)
            out.setncatts(attrs)
            values = var[:]
            if name in ("x", "y"):
                d = values[1] - values[0]
                values = values[0] - d / 2 + d / (2 * k) + d / k * np.arange(len(values) * k) + shift
            else:
                for axis, dim in enumerate(var.dimensions):
                    if dim in ("x", "y"):
                        values = np.repeat(values, k, axis=axis)
                if crs is not None and var.ndim >= 2:
                    out.setncattr("grid_mapping", "crs")
            out[:] = values
        if crs is not None:
            b.createVariable("crs", "i4").setncattr("crs_wkt", crs)


def _refined_case(tmp_path: Path, compat: str, shift: float = 0.0, crs: str | None = None) -> Path:
    src = reference_inputs("small")
    root = tmp_path / "case"
    shutil.copytree(src / "ensemble", root / "ensemble")
    for stream in ("elev", "vel"):
        (root / "obs" / stream).mkdir(parents=True)
        for f in sorted((src / "obs" / stream).glob("*.nc")):
            _refine_file(f, root / "obs" / stream / f.name, FACTOR, shift, crs)
    cfg = yaml.safe_load((src.parent / "config.yaml").read_text())
    cfg["compat"] = compat
    cfg["observations"]["thickness"]["dir"] = "obs/elev"
    cfg["observations"]["velocity"]["dir"] = "obs/vel"
    cfg["observations"]["regrid"] = {"method": "mean", "min_valid_fraction": 0.75}
    cfg["ensemble"]["dir"] = "ensemble"
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root / "config.yaml"


@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_refined_observations_regrid_to_the_same_prepared_bits(tmp_path: Path, compat: str) -> None:
    """Each coarse value repeated on its 8 × 8 block averages back to itself exactly (a sum of 64
    equal float32 values divided by 64 is exact; so is √ of a float32's square), so `prepare` on
    the regridded observations must give the reference case's arrays bit for bit."""
    reference = load_config(reference_inputs("small").parent / "config.yaml").with_updates(compat=compat)
    refined = load_config(_refined_case(tmp_path, compat))
    want, got = prepare(reference, load_data(reference)), prepare(refined, load_data(refined))
    for name in ("y_obs", "sigma_obs", "F", "speed", "stream"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert (want.n_dhdt, want.n_vel) == (got.n_dhdt, got.n_vel)


def test_without_the_key_a_finer_grid_is_still_bad_input(tmp_path: Path, capsys) -> None:
    config = _refined_case(tmp_path, "fixed")
    cfg = yaml.safe_load(config.read_text())
    del cfg["observations"]["regrid"]
    config.write_text(yaml.safe_dump(cfg))
    assert main(["prepare", str(config), "--out", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid mismatch (shape)" in err[0] and "elev_antarctica_elevation_" in err[0]


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"shift": 1e8}, "no overlap"),
        ({"crs": 'PROJCS["WGS 84 / NSIDC Sea Ice Polar Stereographic North"]'}, "projection mismatch"),
    ],
)
def test_unusable_observation_grid_is_one_line_exit_2(tmp_path: Path, capsys, kw: dict, problem: str) -> None:
    config = _refined_case(tmp_path, "fixed", **kw)
    if "crs" in kw:  # the members state the south-polar projection
        for member in (config.parent / "ensemble").glob("*.nc"):
            with netCDF4.Dataset(member, "a") as ds:
                ds.createVariable("crs", "i4").setncattr("crs_wkt", 'PROJCS["WGS 84 / Antarctic Polar Stereographic"]')
                ds.variables["h"].setncattr("grid_mapping", "crs")
    out = tmp_path / "p.npz"
    assert main(["prepare", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0] and "elev_antarctica_elevation_" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("regrid", "key"),
    [({"min_valid_fraction": 0}, "observations.regrid.min_valid_fraction"),
     ({"method": "bilinear"}, "observations.regrid.method"),
     ({"uncertainty": "none"}, "observations.regrid.uncertainty"),
     ({"fraction": 0.5}, "observations.regrid.fraction")],
)
def test_bad_regrid_keys_name_the_key(tmp_path: Path, regrid: dict, key: str) -> None:
    cfg = yaml.safe_load((reference_inputs("small").parent / "config.yaml").read_text())
    cfg["observations"]["regrid"] = regrid
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match=rf"config\.yaml: .*'{re.escape(key)}'"):
        load_config(path)


def test_the_key_leaves_the_config_hash_of_configs_without_it() -> None:
    from fusion.config import config_hash

    cfg = load_config(reference_inputs("small").parent / "config.yaml")
    with_key = cfg.with_updates(observations={"regrid": {"method": "mean"}})
    assert config_hash(cfg) != config_hash(with_key)
    assert config_hash(cfg) == config_hash(with_key.with_updates(observations={"regrid": None}))
    # the hash as computed before the key existed: the dump without it
    data = cfg.model_dump(mode="json", exclude={"cache", "memory"})  # the remote-input keys are left out as well
    del data["observations"]["regrid"]
    for stream in ("thickness", "velocity"):  # and the product keys at their defaults (issue 35)
        for key in ("product", "crs", "fill_value", "group"):
            data["observations"][stream].pop(key, None)
    for section in (data["observations"]["thickness"], data["observations"]["velocity"], data["ensemble"], data["projection"]):
        del section["storage_options"]
    del data["likelihood"]  # so is the default likelihood section
    del data["inference"]["mass_matrix"]  # and the unset mass matrix
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config_hash(cfg) == hashlib.sha256(blob.encode()).hexdigest()
