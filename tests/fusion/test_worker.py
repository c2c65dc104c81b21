"""`fusion.worker.RunWorker`: the second process draws what this process would, byte for byte,
and is never needed for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data.prepare import prepare
from fusion.diagnostics import diagnose
from fusion.figures import FIGURE_FILES, draw_figures
from fusion.inference.parameters import PARAMS
from fusion.inference.sampling import sample
from fusion.projection import projection_summary
from fusion.worker import RunWorker
from tests.helpers import TinyCase, projection_dataset

pytestmark = pytest.mark.long_module(seconds=37)  # its tests in all under ./dev test


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory):
    """A projection, its summary, a real availability record and a short trace."""
    case = TinyCase(tmp_path_factory.mktemp("worker")).standard(members=3)
    cfg = load_config(case.config(compat="fixed")).with_updates(
        inference={"draws": 40, "tune": 40, "chains": 2, "cores": 1}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare(cfg, load_data(cfg))
        trace = sample(cfg, prepared, progressbar=False)
    proj = projection_dataset([50.0, 10.0, 30.0], [0.2, 0.5, 0.3], np.random.default_rng(0).normal(25, 2, (2, 40)))
    return proj, projection_summary(proj), prepared.availability, trace, prepared


def _pngs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FIGURE_FILES}


@pytest.mark.parametrize("begun", [True, False], ids=["availability begun early", "all at the end"])
def test_worker_draws_the_same_bytes_as_this_process(tmp_path: Path, inputs, begun: bool) -> None:
    """The same files, and drawn without the config's validation (pydantic, YAML) or the readers
    (netCDF4): the figures need the run's results only, and those imports would cost the worker
    about 0.3 s of CPU on the run's critical path."""
    proj, summary, availability, *_ = inputs
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    draw_figures(proj, summary, availability, here)
    with RunWorker() as worker:
        if begun:
            worker.begin_figures(availability)
            worker.begin_likelihood_figures({k: summary[k] for k in ("likelihood", "sensitivity") if k in summary})
        worker.draw_figures(proj, summary, availability, there)()
        loaded = set(worker._submit(eval, "list(__import__('sys').modules)").result())  # noqa: SLF001, S307
    assert _pngs(there) == _pngs(here)
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for data in _pngs(there).values())
    assert {"matplotlib.figure", "fusion.figures.projection", "fusion.figures.calibration"} <= loaded
    assert not {"pydantic", "yaml", "netCDF4", "fusion.config", "fusion.projection"} & loaded


def test_likelihood_figures_begun_on_other_inputs_are_drawn_again(tmp_path: Path, inputs) -> None:
    """`variogram.png` and `sensitivity.png` begun while sampling are kept only for the very
    `likelihood` and `sensitivity` the summary ends with."""
    proj, summary, availability, *_ = inputs
    final = {**summary, "likelihood": {"form": "effective", "streams": {}}}
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    draw_figures(proj, final, availability, here)
    with RunWorker() as worker:
        worker.begin_likelihood_figures({"likelihood": {"form": "tempered", "streams": {}}})
        worker.draw_figures(proj, final, availability, there)()
    assert _pngs(there) == _pngs(here)


def test_a_dead_worker_falls_back_to_this_process(tmp_path: Path, inputs) -> None:
    proj, summary, availability, *_ = inputs
    with RunWorker() as worker:
        worker.begin_figures(availability)
        pids = [p.pid for p in worker._pool._processes.values()]  # noqa: SLF001 - the test kills it
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)
        worker.draw_figures(proj, summary, availability, tmp_path)()
    here = tmp_path / "here"
    here.mkdir()
    draw_figures(proj, summary, availability, here)
    assert {name: (tmp_path / name).read_bytes() for name in FIGURE_FILES} == _pngs(here)


def test_worker_diagnoses_as_this_process(inputs) -> None:
    trace = inputs[3]
    with RunWorker() as worker:
        there = worker.diagnose(trace, PARAMS)
        everything = worker.diagnose(trace)
    assert there == diagnose(trace, PARAMS)
    assert everything == diagnose(trace)
    assert everything["var_names"] == [*PARAMS, "w"]


def test_the_worker_loads_plotting_and_statistics_but_not_the_model() -> None:
    """What the worker imports as it starts is what `fusion run` leaves out of its main process;
    the model (Numba) is the main process's, and would only delay the worker."""
    with RunWorker() as worker:
        loaded = set(worker._submit(eval, "list(__import__('sys').modules)").result())  # noqa: SLF001, S307
    assert {"matplotlib.figure", "matplotlib.backends.backend_agg", "arviz_stats.base", "scipy.stats"} <= loaded
    densities = {"fusion.inference.fused_kernel", "fusion.inference.fused_density", "fusion.inference.pymc_model"}
    assert not {"numba", "nutpie", "matplotlib.pyplot", "arviz_plots", *densities} & loaded


def test_the_worker_estimates_the_correlation_as_this_process_without_the_model(inputs) -> None:
    """The correlation estimate, which `likelihood.form: effective` waits for before sampling, runs
    in the worker without loading the model's Numba kernels first; the same result as here."""
    from fusion.inference.likelihood import stream_correlations

    prepared = inputs[4]
    with RunWorker(correlation=True) as worker:
        there = worker.correlate(prepared, 2.0, 3)()  # the tiny case has too few points for a variogram
        loaded = set(worker._submit(eval, "list(__import__('sys').modules)").result())  # noqa: SLF001, S307
    assert there == stream_correlations(prepared, 2.0, seed=3)
    assert "gstools" in loaded and not {"numba", "fusion.inference.fused_kernel"} & loaded


def test_the_worker_runs_blas_on_one_thread() -> None:
    """Its products are small and it shares the machine with the run's chains: OpenBLAS's idle
    threads would only spin (every BLAS library NumPy and SciPy loaded there)."""
    with RunWorker() as worker:
        info = worker._submit(eval, "__import__('threadpoolctl').threadpool_info()").result()  # noqa: SLF001, S307
    blas = [lib for lib in info if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


def test_a_dead_worker_diagnoses_here(inputs) -> None:
    trace = inputs[3]
    with RunWorker() as worker:
        os.kill(next(iter(worker._pool._processes.values())).pid, signal.SIGKILL)  # noqa: SLF001
        assert worker.diagnose(trace, PARAMS) == diagnose(trace, PARAMS)


def test_a_trace_without_divergence_record_fails_through_the_worker(inputs) -> None:
    trace = inputs[3]
    stats = trace["sample_stats"].to_dataset().drop_vars("diverging")
    broken = trace.copy()
    broken["sample_stats"] = xr.DataTree(stats)
    with RunWorker() as worker, pytest.raises(ValueError, match="divergences are unknown"):
        worker.diagnose(broken, PARAMS)


def test_a_run_that_stops_ends_the_worker_at_once() -> None:
    """An error or Ctrl-C in the run kills the worker instead of waiting for its imports and figures."""
    with pytest.raises(KeyboardInterrupt), RunWorker() as worker:
        process = next(iter(worker._pool._processes.values()))  # noqa: SLF001 - the test watches it
        raise KeyboardInterrupt
    process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL
    with RunWorker() as worker:
        process = next(iter(worker._pool._processes.values()))  # noqa: SLF001
    process.join(timeout=30)
    assert process.exitcode == 0  # a finished run lets it end by itself


def test_an_error_in_the_worker_is_raised_here(tmp_path: Path, inputs) -> None:
    proj, summary, availability, *_ = inputs
    with RunWorker() as worker, pytest.raises(KeyError, match="sle_mm"):
        worker.draw_figures(proj.drop_vars("sle_mm"), summary, availability, tmp_path)()


def test_fusion_run_leaves_matplotlib_and_arviz_stats_to_the_worker(tmp_path: Path) -> None:
    """In the main process of `fusion run`: no Matplotlib, no ArviZ plots or statistics, no GSTools,
    no dask `distributed` (`trace.nc` is written without it: fusion.tracefile.write_trace).
    (`dask.array` is loaded: xarray imports it at the first DataArray to learn that the data are
    no dask array, docs/performance/workarounds.md.)"""
    from fusion.data.synthetic import write_example

    config = write_example(tmp_path / "example")
    text = config.read_text().replace("draws: 1000", "draws: 40").replace("tune: 1000", "tune: 40")
    config.write_text(text.replace("chains: 4", "chains: 2"))
    script = textwrap.dedent(
        f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        from fusion.cli import main
        assert main(["run", {str(config)!r}, "--out", {str(tmp_path / "out")!r}, "--no-progress"]) == 0
        loaded = [m for m in ("matplotlib", "arviz_plots", "arviz_stats", "scipy.stats", "gstools", "distributed") if m in sys.modules]
        print("loaded:", loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert f"5%–95% range {summary['lower']:.1f}–{summary['upper']:.1f} mm" in done.stdout  # the answer, in one line
    assert "member weights calibrated by perfect_model" in done.stdout
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert set(FIGURE_FILES) <= {p.name for p in (tmp_path / "out").iterdir()}


def test_a_run_with_the_worker_writes_what_a_run_without_it_writes(tmp_path: Path) -> None:
    """`fusion run` splits the work after the draws between its two processes (the predictive
    check's PITs here, `perfect_model.png` with the calibration's CRPS and `variogram.png` begun
    early there): every result file is the one a library call without a worker writes."""
    from fusion.adequacy import FIT_FILES
    from fusion.data.synthetic import write_example
    from fusion.pipeline import run_to_dir

    config = write_example(tmp_path / "example")
    text = config.read_text().replace("draws: 1000", "draws: 40").replace("tune: 1000", "tune: 40")
    config.write_text(text.replace("chains: 4", "chains: 2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = run_to_dir(config, tmp_path / "alone", progressbar=False)
        with RunWorker(correlation=True) as worker:
            split = run_to_dir(config, tmp_path / "split", progressbar=False, worker=worker)
    names = [*FIGURE_FILES, *FIT_FILES, "summary.json", "weights.csv", "projection.csv"]
    assert json.loads((split / "summary.json").read_text())["calibration"]["held_out"]  # a calibrated run
    written = {name: (split / name).read_bytes() for name in names}
    assert written == {name: (alone / name).read_bytes() for name in names}


def test_worker_writes_fit_outputs_as_this_process(inputs) -> None:
    """fit.json's record and residuals.png (fusion.adequacy) from the worker: the same as here."""
    from fusion.adequacy import thin_draws
    from fusion.figures.adequacy import fit_outputs
    from fusion.inference.noise import NoiseSettings

    *_, trace, prepared = inputs
    theta, w = thin_draws(trace["posterior"], 20, prepared.member_ids)
    args = (prepared, theta, w, NoiseSettings(), 3)
    record, png = fit_outputs(*args)
    with RunWorker() as worker:
        there = worker.fit_outputs(*args)()
    assert there == (record, png) and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(record["streams"]) <= {"thick", "vel"} and record["pit_draws"] == theta.shape[0]


def test_the_worker_checks_the_fit_without_the_model(inputs) -> None:
    """`fusion run` hands the check the extra variances only (`ExtraVariance`): the same record
    as with the settings, and the worker never loads the model module (Numba) for it."""
    from fusion.adequacy import ExtraVariance, thin_draws
    from fusion.figures.adequacy import fit_outputs
    from fusion.inference.noise import NoiseSettings

    *_, trace, prepared = inputs
    theta, w = thin_draws(trace["posterior"], 20, prepared.member_ids)
    settings = NoiseSettings(velocity_inflation=3.0)
    with RunWorker() as worker:
        there = worker.fit_outputs(prepared, theta, w, ExtraVariance.of(settings), 3)()
        loaded = set(worker._submit(eval, "list(__import__('sys').modules)").result())  # noqa: SLF001, S307
    assert there == fit_outputs(prepared, theta, w, settings, 3)
    assert not {"numba", "fusion.inference.fused_kernel"} & loaded
