"""`fusion export`: the posterior container and the FACTS component file, field by field, and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fusion.cli import main
from fusion.data.synthetic import write_example
from fusion.io import SUCCESS
from fusion.pipeline import run_to_dir
from tests.fusion import facts_standin

pytestmark = pytest.mark.filterwarnings("ignore::fusion.errors.DataWarning")
PARAMS = ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")


def test_export_lists_the_models_parameters_in_order() -> None:
    from fusion import export
    from fusion.inference import parameters

    assert export.PARAMS == parameters.PARAMS == PARAMS


def _config(root: Path, method: str) -> Path:
    config = root / "example" / "config.yaml"
    if not config.is_file():
        write_example(root / "example")
    text = config.read_text().replace("draws: 1000", "draws: 150").replace("tune: 1000", "tune: 150")
    text = text.replace("chains: 4", "chains: 2").replace("sampler: nutpie", f"sampler: nutpie\n  method: {method}")
    # tempered: the example's weights stay spread over members (under the default `effective`
    # its truth member takes them all), so exports drawn with different seeds differ
    text = text.replace("output:", "likelihood: {form: tempered}\noutput:")
    out = config.parent / f"config-{method}.yaml"
    out.write_text(text)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    return {m: run_to_dir(_config(root, m), root / f"run-{m}", progressbar=False) for m in ("nuts", "laplace")}


def _export(capsys, *args: str) -> tuple[int, str]:
    code = main(["export", *map(str, args)])
    return code, capsys.readouterr().err


# --- posterior container --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nuts", "laplace"])
def test_posterior_container_means_and_cov_are_the_draws(runs, tmp_path: Path, capsys, method: str) -> None:
    out = tmp_path / "posterior.json"
    assert _export(capsys, runs[method], "--format", "posterior", "--out", out)[0] == 0
    doc = json.loads(out.read_text())  # json alone reads it back
    assert set(doc) == {"mean", "cov", "samples", "provenance"} and doc["samples"] is None
    with xr.open_datatree(runs[method] / "trace.nc") as tree:
        post = tree["posterior"].to_dataset().load()
    members = list(pd.read_csv(runs[method] / "projection.csv")["member_id"])
    names = [*PARAMS, *(f"w[{m}]" for m in members)]
    assert doc["cov"]["kind"] == "dense" and doc["cov"]["names"] == names == list(doc["mean"])
    columns = [post[p] for p in PARAMS] + [post["w"].sel(member=m, drop=True) for m in members]
    for name, col in zip(names, columns, strict=True):
        assert doc["mean"][name] == pytest.approx(float(col.mean()), rel=1e-12, abs=1e-15)
    matrix = np.array(doc["cov"]["matrix"])
    assert matrix.shape == (len(names), len(names))
    for i, a in enumerate(columns):  # xarray's own covariance over (chain, draw), sample normalisation
        for j, b in enumerate(columns):
            expected = float(xr.cov(a.stack(s=("chain", "draw")), b.stack(s=("chain", "draw")), dim="s", ddof=1))
            assert matrix[i, j] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_posterior_container_provenance(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "posterior.json"
    main(["export", str(runs["laplace"]), "--format", "posterior", "--out", str(out)])
    prov = json.loads(out.read_text())["provenance"]
    meta = json.loads((runs["laplace"] / "run_metadata.json").read_text())
    with xr.open_datatree(runs["laplace"] / "trace.nc") as tree:
        root = dict(tree.attrs)
    assert prov["method"] == "laplace" and prov["sampler"] == "L-BFGS-B"
    assert prov["forward_model_id"] == root["forward_model_id"] == "fusion.noise_model"
    assert prov["forward_model_hash"] == root["forward_model_hash"] and len(prov["forward_model_hash"]) == 64
    assert prov["obs_ops_used"] == ["dhdt", "dvdt"]
    assert prov["n_iter"] == meta["diagnostics"]["n_iter"] > 0
    assert prov["converged"] is True and prov["diagnostics"]["method"] == "laplace"
    assert prov["seed"] == 42 and prov["config_hash"] == meta["config_hash"] == root["config_hash"]
    assert prov["fusion_version"] == root["fusion_version"]
    some_input = next(p for p in prov["input_sha256"] if p.endswith("run01.nc"))
    assert prov["input_sha256"][some_input] == hashlib.sha256(Path(some_input).read_bytes()).hexdigest()


def test_posterior_samples_flag_adds_every_draw(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "posterior.json"
    assert _export(capsys, runs["nuts"], "--format", "posterior", "--out", out, "--samples")[0] == 0
    doc = json.loads(out.read_text())
    matrix = np.array(doc["samples"]["matrix"])
    assert doc["samples"]["names"] == doc["cov"]["names"]
    assert matrix.shape == (2 * 150, len(doc["cov"]["names"]))
    np.testing.assert_allclose(matrix.mean(axis=0), list(doc["mean"].values()), rtol=1e-12)
    nuts = json.loads((runs["nuts"] / "run_metadata.json").read_text())
    assert doc["provenance"]["n_iter"] == 2 * (150 + 150) and doc["provenance"]["sampler"] == nuts["config"]["inference"]["sampler"]


# --- FACTS component file -------------------------------------------------------------------


def test_facts_file_layout(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ais.nc"
    code, _ = _export(capsys, runs["nuts"], "--format", "facts", "--out", out, "--samples", 500, "--scenario", "ssp585")
    assert code == 0
    with xr.open_dataset(out) as ds:
        slc = ds["sea_level_change"]
        assert slc.dims == ("samples", "years", "locations") and slc.dtype == np.float32
        assert slc.attrs["units"] == "mm"
        assert ds["years"].dtype == np.int32 and ds["years"].values.tolist() == list(range(2020, 2101, 10))
        assert ds["samples"].dtype == np.int64 and ds.sizes["samples"] == 500
        assert ds["locations"].dtype == np.int64 and ds["locations"].values.tolist() == [-1]
        for name in ("lat", "lon"):
            assert ds[name].dims == ("locations",) and ds[name].dtype == np.float32
        for key in ("description", "history", "source", "scenario", "baseyear"):
            assert ds.attrs[key]
        assert ds.attrs["scenario"] == "ssp585" and ds.attrs["baseyear"] == "2015"
    with netCDF4.Dataset(out) as nc:
        assert nc.variables["sea_level_change"].filters()["zlib"] is True


def test_facts_2100_slice_is_the_runs_weighted_distribution(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ais.nc"
    n = 4000
    main(["export", str(runs["nuts"]), "--format", "facts", "--out", str(out), "--samples", str(n), "--seed", "3"])
    table = pd.read_csv(runs["nuts"] / "projection.csv")
    summary = json.loads((runs["nuts"] / "summary.json").read_text())
    with xr.open_dataset(out) as ds:
        x = ds["sea_level_change"].sel(years=2100, locations=-1).values
    member_sle = table["sle_mm"].to_numpy().astype(np.float32)
    assert np.isin(x, member_sle).all()  # each sample is one member's sle_mm, exactly
    # member frequencies against the mixture weights, to Monte-Carlo error
    freq = np.array([(x == s).mean() for s in member_sle])
    w = table["weight"].to_numpy() / table["weight"].sum()
    assert np.all(np.abs(freq - w) <= 4 * np.sqrt(w * (1 - w) / n) + 1e-12)
    # sample quantiles against summary.json's: inside the weighted CDF's Monte-Carlo band
    order = np.argsort(table["sle_mm"].to_numpy())
    cum = np.cumsum(w[order])
    sle_sorted = table["sle_mm"].to_numpy()[order]
    for key, q in (("lower", summary["lower_q"]), ("median", 0.5), ("upper", summary["upper_q"])):
        band = 4 * np.sqrt(q * (1 - q) / n)
        lo = sle_sorted[np.searchsorted(cum, max(q - band, 0.0))]
        hi = sle_sorted[min(np.searchsorted(cum, min(q + band, 1.0)), len(cum) - 1)]
        assert lo <= summary[key] <= hi
        assert np.float32(lo) <= np.quantile(x, q, method="inverted_cdf") <= np.float32(hi)


def test_facts_export_is_seeded_and_bit_reproducible(runs, tmp_path: Path, capsys) -> None:
    paths = [tmp_path / f"{i}.nc" for i in range(3)]
    for path, seed in zip(paths, (5, 5, 6), strict=True):
        main(["export", str(runs["laplace"]), "--format", "facts", "--out", str(path), "--samples", "300", "--seed", str(seed)])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[2]) as b:
        assert not np.array_equal(a["sea_level_change"].values, b["sea_level_change"].values)


def test_facts_baseyear_and_years(runs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ais.nc"
    code, _ = _export(capsys, runs["nuts"], "--format", "facts", "--out", out, "--samples", 200,
                      "--years", "2030:2090:30", "--baseyear", 2030)
    assert code == 0
    with xr.open_dataset(out) as ds:
        assert ds["years"].values.tolist() == [2030, 2060, 2090] and ds.attrs["baseyear"] == "2030"
        assert np.all(ds["sea_level_change"].sel(years=2030).values == 0.0)
        assert np.all(ds["sea_level_change"].sel(years=2090).values > 0.0)  # the synthetic members all lose ice


def test_facts_files_total_in_a_facts_like_consumer(runs, tmp_path: Path, capsys) -> None:
    """FACTS' totaling step, as its `WorkflowTotaler` runs it (tests/fusion/facts_standin.py):
    two exports read, formatted, summed and written; the total file keeps the one global
    location, the canonical dimension order and every sample, and holds the float32 sums."""
    paths = []
    for method in ("nuts", "laplace"):
        paths.append(tmp_path / method / "ais.nc")
        main(["export", str(runs[method]), "--format", "facts", "--out", str(paths[-1]), "--samples", "400"])
    totaler = facts_standin.WorkflowTotaler("fusion-test", paths, 2020, 2100, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the years and their step are the ones FACTS was asked for
        totaler.get_projections()
    totaler.format_projections()
    totaler.total_projections()
    totaler.write_totaled_projections(tmp_path / "total.nc")
    totaler.combined_ds.close()
    with xr.open_dataset(paths[0]) as a, xr.open_dataset(paths[1]) as b, xr.open_dataset(tmp_path / "total.nc") as t:
        expected = (a["sea_level_change"] + b["sea_level_change"]).astype(np.float32)
        assert t["sea_level_change"].dims == ("samples", "years", "locations")
        assert t.sizes == {"samples": 400, "years": 9, "locations": 1}
        np.testing.assert_array_equal(t["sea_level_change"].values, expected.values)
        assert t["lat"].dims == ("locations",) and t["lat"].dtype == np.float32
        assert t["sea_level_change"].attrs["units"] == "mm"


# --- bad input: one line, exit 2, nothing written -------------------------------------------


def _unfinished(runs, tmp_path: Path) -> Path:
    copy = tmp_path / "unfinished"
    shutil.copytree(runs["nuts"], copy)
    (copy / SUCCESS).unlink()
    return copy


def _foreign(runs, tmp_path: Path) -> Path:
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / SUCCESS).write_text("")
    (folder / "result.json").write_text("{}")
    return folder


@pytest.mark.parametrize(
    ("make_run", "extra", "message"),
    [
        (_unfinished, ("--format", "facts"), "unfinished run folder"),
        (_unfinished, ("--format", "posterior"), "unfinished run folder"),
        (_foreign, ("--format", "posterior"), "not a `fusion run` folder"),
        (None, ("--format", "facts", "--years", "2020-2100"), "expected START:END:STEP"),
        (None, ("--format", "facts", "--years", "2100:2020:10"), "END ≥ START"),
        (None, ("--format", "facts", "--years", "2020:2100:7"), "END = START"),
        (None, ("--format", "facts", "--years", "2020:2150:10"), "member run1: year 2110 outside"),
        (None, ("--format", "facts", "--baseyear", "1900"), "baseyear 1900 outside"),
        (None, ("--format", "facts", "--samples", "0"), "--samples 0"),
        (None, ("--format", "facts", "--samples", "many"), "whole number"),
        (None, ("--format", "posterior", "--samples", "10"), "takes no number"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(runs, tmp_path, capsys, make_run, extra, message) -> None:
    run = make_run(runs, tmp_path) if make_run else runs["nuts"]
    out = tmp_path / "out" / "export.file"
    code, err = _export(capsys, run, *extra, "--out", out)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not out.exists() and not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_unwritable_out_is_one_line_exit_2(runs, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for fmt in ("posterior", "facts"):
        code, err = _export(capsys, runs["nuts"], "--format", fmt, "--out", blocker / "x.out", "--samples" if fmt == "posterior" else "--seed", *([] if fmt == "posterior" else ["1"]))
        assert code == 2 and err.count("\n") == 1 and "cannot be written" in err and str(blocker) in err
    code, err = _export(capsys, runs["nuts"], "--format", "facts", "--out", tmp_path)
    assert code == 2 and "is a folder" in err


def test_changed_projection_input_is_refused(runs, tmp_path: Path, capsys) -> None:
    meta = json.loads((runs["nuts"] / "run_metadata.json").read_text())
    target = Path(next(p for p in meta["input_files"] if p.endswith("forward/run02.nc")))
    saved = target.read_bytes()
    try:
        with netCDF4.Dataset(target, "a") as nc:
            nc.variables["totig"][-1] = nc.variables["totig"][-1] * 0.5
        code, err = _export(capsys, runs["nuts"], "--format", "facts", "--out", tmp_path / "x.nc", "--samples", 10)
    finally:
        target.write_bytes(saved)
    assert code == 2 and "changed since the run" in err and "run02.nc" in err
    assert not (tmp_path / "x.nc").exists()


# --- the run folder both methods write (what the exports read) ------------------------------


@pytest.mark.parametrize("method", ["nuts", "laplace"])
def test_every_run_output_exists_and_names_its_method(runs, method: str) -> None:
    from fusion.pipeline import OUTPUT_FILES

    run = runs[method]
    assert all((run / name).is_file() for name in (*OUTPUT_FILES, SUCCESS))
    meta = json.loads((run / "run_metadata.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert meta["method"] == summary["method"] == method
    with xr.open_datatree(run / "trace.nc") as tree:
        assert tree.attrs["method"] == tree["posterior"].attrs["fusion_method"] == method
    weights = pd.read_csv(run / "weights.csv")
    assert weights["posterior_mean"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["nuts", "laplace"])
def test_trace_follows_the_arviz_schema_with_provenance(runs, method: str) -> None:
    run = runs[method]
    meta = json.loads((run / "run_metadata.json").read_text())
    with xr.open_datatree(run / "trace.nc") as tree:
        assert {"posterior", "sample_stats", "observed_data", "constant_data"} <= set(tree.children)
        obs = tree["observed_data"].to_dataset()
        const = tree["constant_data"].to_dataset()
        assert list(obs.data_vars) == ["y_obs"] and obs["y_obs"].dtype == np.float32
        assert {"sigma_obs", "speed", "stream", "F"} <= set(const.data_vars)
        assert const["F"].dims == ("member", "point")
        assert const["member"].values.tolist() == meta["prepared"]["member_ids"]
        assert obs.sizes["point"] == const.sizes["point"] == meta["prepared"]["n_points"]
        assert int((const["stream"] == 0).sum()) == meta["prepared"]["n_dhdt"]
        attrs = dict(tree.attrs)
    assert attrs["fusion_version"] == meta["fusion_version"]
    assert attrs["config_hash"] == meta["config_hash"]
    assert json.loads(attrs["input_sha256"]) == meta["input_files"]
    assert attrs["forward_model_hash"] == meta["forward_model"]["hash"]
    import fusion.inference.fused_density
    import fusion.inference.fused_kernel
    import fusion.inference.noise
    import fusion.inference.posterior
    import fusion.inference.pymc_model

    inference = fusion.inference
    digest = hashlib.sha256()
    for mod in (inference.noise, inference.pymc_model, inference.fused_kernel, inference.fused_density, inference.posterior):
        digest.update(f"{mod.__name__}:{hashlib.sha256(Path(mod.__file__).read_bytes()).hexdigest()}\n".encode())
    assert attrs["forward_model_hash"] == digest.hexdigest()


def test_facts_export_of_an_unseen_case(tmp_path: Path, capsys) -> None:
    """A dataset the other tests never saw (8 members, another seed and grid), run with Laplace."""
    from dataclasses import replace

    from fusion.data.synthetic import EXAMPLE_SPEC, generate

    generate(tmp_path / "case", replace(EXAMPLE_SPEC, ny=24, nx=28, members=8, seed=20261128))
    text = (_config(tmp_path, "laplace")).read_text()  # the example's config, pointed at the new data
    (tmp_path / "case" / "config.yaml").write_text(text)
    run = run_to_dir(tmp_path / "case" / "config.yaml", tmp_path / "run", progressbar=False)
    out = tmp_path / "unseen.nc"
    assert main(["export", str(run), "--format", "facts", "--out", str(out), "--samples", "2000"]) == 0
    table = pd.read_csv(run / "projection.csv")
    with xr.open_dataset(out) as ds:
        assert ds["sea_level_change"].dims == ("samples", "years", "locations")
        x = ds["sea_level_change"].sel(years=2100, locations=-1).values
    assert len(table) == 8 and np.isin(x, table["sle_mm"].to_numpy().astype(np.float32)).all()
    freq = np.array([(x == np.float32(s)).mean() for s in table["sle_mm"]])
    w = table["weight"].to_numpy()
    assert np.all(np.abs(freq - w) <= 4 * np.sqrt(w * (1 - w) / x.size) + 1e-12)


def test_laplace_run_without_a_gaussian_is_one_line_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    """A planted density with a saddle at its stationary point: the run stops, nothing is written."""
    from fusion.inference import laplace

    class Saddle:
        def __init__(self, density) -> None:
            pass

        def logp_grad(self, x):
            sign = np.array([-1.0, -1.0, -1.0, 1.0])
            x = np.asarray(x) - np.log([0.5, 0.6, 0.1, 0.1])  # stationary exactly at the start point
            return float(np.sum(sign * x * x)), 2.0 * sign * x

    monkeypatch.setattr(laplace, "_CallbackDensity", Saddle)
    config = _config(tmp_path, "laplace")
    code = main(["run", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: {config}") and "not negative definite" in err[-1]
    assert not (tmp_path / "run").exists()
