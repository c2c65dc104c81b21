"""`harness capture` on a stand-in prototype: outputs, atomicity, bad input, and the driver's isolation.

Every capture here runs in an interpreter whose imports of `fusion`/`harness` are forbidden
(a `sitecustomize` guard on PYTHONPATH), so each passing capture also proves the driver and
the prototype side never import FUSION.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml

from fusion.data.synthetic import SyntheticSpec, generate
from fusion.diagnostics import THRESHOLDS
from harness.checks.parity.statistical import UNKNOWN_NO_STATS
from harness.cli import main

pytestmark = pytest.mark.long_module(seconds=22)  # its tests in all under ./dev test

STAND_IN = Path(__file__).with_name("stand_in_prototype.py")
GUARD = '''\
import sys
class _NoFusion:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fusion", "harness"):
            raise ImportError(f"import of {name} is forbidden on the prototype side")
        return None
sys.meta_path.insert(0, _NoFusion())
'''


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("capture-data")
    spec = SyntheticSpec(ny=6, nx=7, members=3, years=(2015, 2018), with_projection=False, fill_member=None, member_nans=False)
    generate(root, spec)
    (root / "config.yaml").write_text(
        "compat: prototype\nobservations:\n  thickness: {dir: obs/elev}\n  velocity: {dir: obs/vel}\nensemble: {dir: ensemble}\n"
    )
    rng = np.random.default_rng(3)
    post = xr.Dataset(
        {k: (("chain", "draw"), np.abs(rng.normal(0.4, 0.05, (2, 10)))) for k in ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")}
    )
    post.to_netcdf(root / "posterior.nc", group="posterior")
    post[["sigma_base_thick"]].to_netcdf(root / "posterior_lacking.nc", group="posterior")
    return root


def _guard(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    guard = tmp_path_factory.getbasetemp() / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    monkeypatch.setenv("PYTHONPATH", str(guard))
    for knob in ("STAND_IN_FAIL", "STAND_IN_SLEEP", "STAND_IN_ROUND"):
        monkeypatch.delenv(knob, raising=False)


@pytest.fixture(autouse=True)
def no_fusion_on_prototype_side(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    _guard(tmp_path_factory, monkeypatch)


@pytest.fixture(scope="module")
def sampled(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `--sample` capture (PyMC compiling and sampling in the prototype's interpreter is the
    slow part), read by every test of the sampled posterior."""
    out = tmp_path_factory.mktemp("capture-sample") / "case-s"
    with pytest.MonkeyPatch.context() as mp:
        _guard(tmp_path_factory, mp)
        assert _capture(dataset, out, "--sample", "--draws", "13", "--tune", "5", "--chains", "2") == 0
    return out


def _capture(dataset: Path, out: Path, *extra: str, prototype: Path = STAND_IN) -> int:
    return main(["capture", str(dataset / "config.yaml"), "--prototype", str(prototype), "--out", str(out), *extra])


def _no_trace_of(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_posterior_capture_holds_what_the_prototype_produced(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "case-a"
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc")) == 0
    ref = out / "reference"
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "capture.json", "capture.log", "case.yaml", "reference"]
    assert sorted(p.name for p in ref.iterdir()) == ["model_weights_table.csv", "posterior.nc", "prepared.npz"]
    # the stand-in read the files named by the config: its y_obs is last minus first elevation
    with netCDF4.Dataset(dataset / "obs/elev/elev_antarctica_elevation_2015.nc") as a, netCDF4.Dataset(
        dataset / "obs/elev/elev_antarctica_elevation_2018.nc"
    ) as b:
        diff = (np.ma.filled(b["height"][:], np.nan) - np.ma.filled(a["height"][:], np.nan)).astype(np.float32).reshape(-1)
    with np.load(ref / "prepared.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(["y_obs", "sigma_obs", "F", "speed", "n_dhdt", "n_vel", "member_ids"])
        np.testing.assert_array_equal(z["y_obs"], diff[np.isfinite(diff)])
        assert z["y_obs"].dtype == np.float32 and z["F"].dtype == np.float64
        assert list(z["member_ids"]) == ["run1", "run2", "run3"]  # from run01_…, run02_…, run03_…
        assert int(z["n_dhdt"]) == z["y_obs"].size and int(z["n_vel"]) == 0
    assert (ref / "posterior.nc").read_bytes() == (dataset / "posterior.nc").read_bytes()
    with open(ref / "model_weights_table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["model_id"] for r in rows) == ["run1", "run2", "run3"]
    assert abs(sum(float(r["weight"]) for r in rows) - 1) < 1e-12
    case = yaml.safe_load((out / "case.yaml").read_text())
    assert case == {"name": "case-a", "config": os.path.relpath(dataset / "config.yaml", out), "reference": "reference"}
    record = yaml.safe_load((out / "capture.json").read_text())
    assert record["prototype"]["sha256"] == hashlib.sha256(STAND_IN.read_bytes()).hexdigest()
    assert record["interpreter"]["packages"]["numpy"] == np.__version__
    assert record["settings"]["mode"] == "posterior"
    assert record["prototype_constants"]["OBS_THICKNESS_VAR"] == "height" and record["config_differs"] == {}
    assert len(record["inputs"]) == 11 and all(len(v) == 64 for v in record["inputs"].values())
    assert "stand-in: 4 elevation, 4 velocity, 3 model files" in (out / "capture.log").read_text()
    assert "case captured" in capsys.readouterr().out


def test_sample_capture_stores_the_sampled_posterior_twice(sampled: Path) -> None:
    out = sampled
    ref = out / "reference"
    with xr.open_dataset(ref / "sampled_posterior.nc", group="posterior") as a, xr.open_dataset(
        ref / "posterior.nc", group="posterior"
    ) as b:
        xr.testing.assert_identical(a.load(), b.load())
        assert (a.sizes["chain"], a.sizes["draw"]) == (2, 13)
    record = yaml.safe_load((out / "capture.json").read_text())
    assert record["settings"] == {"mode": "sample", "target_accept": 0.95, "draws": 13, "tune": 5, "chains": 2}


def test_sample_capture_keeps_every_group_the_prototypes_sampler_returned(sampled: Path) -> None:
    """`pm.sample`'s whole trace lands in both files, as PyMC wrote it: the sampler statistics too."""
    out = sampled
    record = yaml.safe_load((out / "capture.json").read_text())
    assert {"posterior", "sample_stats"} <= set(record["trace_groups"])
    for name in ("sampled_posterior.nc", "posterior.nc"):
        with xr.open_datatree(out / "reference" / name) as tree:
            assert sorted(tree.children) == sorted(record["trace_groups"])
            stats = tree["sample_stats"].to_dataset()
            assert {"diverging", "energy", "step_size"} <= set(stats.data_vars)
            assert stats["diverging"].dtype == bool and dict(stats.sizes) == {"chain": 2, "draw": 13}
            assert "inference_library" in tree["posterior"].attrs  # written by the sampler's own library
    # and the parity side reads the prototype's own diagnostics from it, not "unknown"
    from harness.cases.reference import read_posterior
    from harness.checks.parity.statistical import prototype_convergence

    figures, verdict = prototype_convergence(read_posterior(out / "reference" / "sampled_posterior.nc"), THRESHOLDS)
    assert isinstance(figures["divergences"], int) and isinstance(figures["e_bfmi_min"], float)
    assert verdict != UNKNOWN_NO_STATS


def test_posterior_capture_records_no_trace_groups(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "case-p"
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc")) == 0
    assert yaml.safe_load((out / "capture.json").read_text())["trace_groups"] is None


def test_a_prototype_constant_the_config_contradicts_is_recorded_and_warned(dataset: Path, tmp_path: Path, capsys) -> None:
    config = dataset / "other_var.yaml"
    config.write_text((dataset / "config.yaml").read_text().replace("{dir: obs/elev}", "{dir: obs/elev, var: surface}"))
    out = tmp_path / "case-w"
    argv = ["capture", str(config), "--prototype", str(STAND_IN), "--out", str(out), "--posterior", str(dataset / "posterior.nc")]
    assert main(argv) == 0
    assert "prototype OBS_THICKNESS_VAR is 'height' but the config says 'surface'" in capsys.readouterr().err
    record = yaml.safe_load((out / "capture.json").read_text())
    assert record["config_differs"] == {"OBS_THICKNESS_VAR": ["height", "surface"]}


def test_the_guard_stops_a_prototype_side_import_of_fusion(dataset: Path, tmp_path: Path, capsys) -> None:
    """Planted fault: a prototype that imports fusion must fail under the guard every test runs with."""
    planted = tmp_path / "imports_fusion.py"
    planted.write_text("import fusion\n" + STAND_IN.read_text())
    out = tmp_path / "case-g"
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc"), prototype=planted) == 2
    err = capsys.readouterr().err.strip()
    assert "import of fusion is forbidden" in err and len(err.splitlines()) == 1
    _no_trace_of(out)


def test_the_driver_rejects_a_table_that_does_not_read_back_bit_exact(dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STAND_IN_ROUND", "1")
    out = tmp_path / "case-r"
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc")) == 2
    assert "does not read back to the computed bits" in capsys.readouterr().err
    _no_trace_of(out)


@pytest.mark.parametrize("stage", ["load_and_prepare_data", "prepare_for_inference", "compute_model_weights"])
def test_a_prototype_failing_midway_leaves_nothing(dataset: Path, tmp_path: Path, capsys, monkeypatch, stage: str) -> None:
    monkeypatch.setenv("STAND_IN_FAIL", stage)
    out = tmp_path / "case-f"
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"prototype failed in {stage}(): RuntimeError: stand-in failure planted in {stage}" in err
    _no_trace_of(out)


def test_a_capture_stopped_midway_leaves_nothing_under_the_final_name(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "case-k"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the parent is harness itself
    env["STAND_IN_SLEEP"] = "60"
    cmd = [sys.executable, "-m", "harness.cli", "capture", str(dataset / "config.yaml"), "--prototype", str(STAND_IN),
           "--out", str(out), "--posterior", str(dataset / "posterior.nc")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".case-k.*/capture.log")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the capture ended before it could be stopped"
    time.sleep(1.0)  # the driver is inside the stand-in's load
    assert not out.exists()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    _no_trace_of(out)


def _missing_function(tmp: Path) -> Path:
    p = tmp / "no_run_mcmc.py"
    p.write_text(STAND_IN.read_text().replace("def run_mcmc(", "def run_sampler("))
    return p


def _missing_constant(tmp: Path) -> Path:
    p = tmp / "no_model_dir.py"
    p.write_text(STAND_IN.read_text().replace("MODEL_DIR", "ENSEMBLE_DIR"))
    return p


def _bare_python(tmp: Path) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "bare")], check=True)
    return str(tmp / "bare" / "bin" / "python")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("prototype missing", "prototype file not found"),
        ("function missing", "prototype has no function run_mcmc()"),
        ("constant missing", "prototype has no constant MODEL_DIR"),
        ("interpreter missing", "interpreter not found"),
        ("interpreter without numpy", "interpreter lacks the package numpy"),
        ("posterior lacking scalars", "posterior lacks sigma_base_vel, beta_thick, beta_vel"),
        ("bad config", "unknown key 'compatt'"),
        ("posterior and sample", "give exactly one of --posterior TRACE.nc or --sample"),
        ("out not empty", "case folder already exists and is not empty"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(dataset: Path, tmp_path: Path, capsys, case: str, expected: str) -> None:
    out = tmp_path / "case-b"
    config = dataset / "config.yaml"
    args = {"prototype": str(STAND_IN), "posterior": str(dataset / "posterior.nc"), "extra": []}
    if case == "prototype missing":
        args["prototype"] = str(tmp_path / "absent.py")
    elif case == "function missing":
        args["prototype"] = str(_missing_function(tmp_path))
    elif case == "constant missing":
        args["prototype"] = str(_missing_constant(tmp_path))
    elif case == "interpreter missing":
        args["extra"] = ["--python", str(tmp_path / "no-such-python")]
    elif case == "interpreter without numpy":
        args["extra"] = ["--python", _bare_python(tmp_path)]
    elif case == "posterior lacking scalars":
        args["posterior"] = str(dataset / "posterior_lacking.nc")
    elif case == "bad config":
        config = tmp_path / "bad.yaml"
        config.write_text((dataset / "config.yaml").read_text().replace("compat:", "compatt:"))
    elif case == "posterior and sample":
        args["extra"] = ["--sample"]
    elif case == "out not empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    argv = ["capture", str(config), "--prototype", args["prototype"], "--out", str(out), "--posterior", args["posterior"]]
    assert main(argv + args["extra"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    if case == "out not empty":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        _no_trace_of(out)


def test_an_empty_out_folder_is_filled(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "case-e"
    out.mkdir()
    assert _capture(dataset, out, "--posterior", str(dataset / "posterior.nc")) == 0
    assert (out / "_SUCCESS").is_file()


def test_driver_finds_local_string_constants_and_fails_naming_a_missing_one(tmp_path: Path) -> None:
    """The driver's own check (the parent's AST check aside): run it on a prototype without MODEL_DIR."""
    import json

    spec = {
        "prototype": str(_missing_constant(tmp_path)), "thickness_dir": "/a", "velocity_dir": "/b", "model_dir": "/c",
        "model_pattern": "*.nc", "mode": "sample", "posterior": None, "draws": 1, "tune": 0, "chains": 1,
        "target_accept": 0.9, "reference_dir": str(tmp_path), "result": str(tmp_path / "result.json"),
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    from harness.cases.capture import DRIVER

    done = subprocess.run([sys.executable, str(DRIVER), str(tmp_path / "spec.json")], capture_output=True, text=True)
    assert done.returncode == 3
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"ok": False, "kind": "prototype", "message": "prototype has no constant MODEL_DIR in load_and_prepare_data()"}
    shutil.rmtree(tmp_path)
