"""`prepare(..., scheduler=ADDR)` / `--scheduler`: the row blocks on a dask cluster (two worker
processes on 127.0.0.1), the same bits as in this process; a bad or unreachable scheduler is one
line, exit 2."""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest

from fusion.config import load_config
from fusion.data.cluster import connect
from fusion.data.load import RowField, load_data
from fusion.data.prepare import _Work, model_intervals, prepare
from fusion.data.synthetic import SyntheticSpec, generate, write_example
from fusion.errors import ConvergenceWarning, DataWarning, InputError
from tests.fusion.data.test_prepare_chunks import _same_bits
from tests.helpers import reference_inputs

pytestmark = pytest.mark.long_module(seconds=24)  # its tests in all under ./dev test


@contextlib.contextmanager
def local_cluster(scratch: Path, **kw):
    """A LocalCluster on 127.0.0.1 with its scratch space in `scratch` and its HTTP server on a free
    port (the scheduler serves one even without a dashboard, by default on 8787, which another
    cluster on the machine may hold)."""
    import dask
    from distributed import LocalCluster

    environ = dict(os.environ)  # a nanny sets MALLOC_TRIM_THRESHOLD_ & co. in this process too
    try:
        with dask.config.set({"temporary-directory": str(scratch)}), LocalCluster(
            host="127.0.0.1", dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, **kw
        ) as cluster:
            yield cluster
    finally:
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory):
    """Two single-threaded worker processes: each reads its blocks from the files itself."""
    with local_cluster(tmp_path_factory.mktemp("dask"), n_workers=2, threads_per_worker=1, processes=True) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gaps, an all-fill rmse year (the median fill), a missing ERRY, member NaNs; subsampled below."""
    root = tmp_path_factory.mktemp("awkward")
    spec = SyntheticSpec(ny=23, nx=17, members=4, years=(2015, 2021), seed=3, elev_gap_years=(2017,),
                         elev_no_rmse_years=(2018,), vel_missing_err_years=(2019,))
    generate(root / "ex", spec)
    config = root / "ex" / "config.yaml"
    config.write_text(write_example(root / "example").read_text())
    return config


def _load(cfg, lazy: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the missing ERRY, tested in test_prepare_chunks
        return load_data(cfg, lazy=lazy)


@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_cluster_gives_the_local_bits_with_a_subsample(scheduler: str, awkward: Path, compat: str) -> None:
    cfg = load_config(awkward).with_updates(compat=compat, inference={"subsample": {"size": 500, "seed": 5}})
    whole = prepare(cfg, _load(cfg, lazy=False))
    assert whole.meta["subsampled"] and whole.meta["n_total_before_subsample"] > 500
    data = _load(cfg, lazy=True)
    local = prepare(cfg, data, chunk_rows=5)
    on_cluster = prepare(cfg, data, chunk_rows=5, scheduler=scheduler)
    _same_bits(whole, local)
    _same_bits(whole, on_cluster)
    assert on_cluster.meta == whole.meta


@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_cluster_gives_the_prototype_reference_bits(scheduler: str, compat: str) -> None:
    """The reference case with the prototype's subsample, by blocks of 9 rows."""
    cfg = load_config(reference_inputs("subsample").parent / "config.yaml").with_updates(compat=compat)
    _same_bits(prepare(cfg, load_data(cfg)), prepare(cfg, load_data(cfg, lazy=True), chunk_rows=9, scheduler=scheduler))


def test_workers_get_paths_not_fields(awkward: Path) -> None:
    """What goes to the workers once is smaller than one observation field: they read the rows."""
    cfg = load_config(awkward)
    data = _load(cfg, lazy=True)
    assert all(isinstance(t.height, RowField) for t in data.thickness)
    assert all(isinstance(v.vx, RowField) and isinstance(v.err_x, RowField) for v in data.velocity)
    work = _Work(cfg, data, model_intervals(data.members[0].times), [], None)
    field_bytes = data.grid.shape[0] * data.grid.shape[1] * 4
    eager = _Work(cfg, _load(cfg, lazy=False), work.intervals, [], None)
    assert len(pickle.dumps(eager)) > 10 * field_bytes  # the eager load holds every field
    assert len(pickle.dumps(work)) < len(pickle.dumps(eager)) - 10 * field_bytes


def test_an_input_error_on_a_worker_reaches_the_client_whole(scheduler: str, awkward: Path, tmp_path: Path) -> None:
    """A member file that breaks after loading fails on the worker as the same one-line InputError."""
    root = awkward.parent
    cfg = load_config(awkward)
    data = _load(cfg, lazy=True)
    victim = data.members[1].path
    saved = victim.read_bytes()
    try:
        victim.write_bytes(b"not a netcdf file")
        with pytest.raises(InputError, match="not a readable NetCDF file") as err:
            prepare(cfg, data, chunk_rows=5, scheduler=scheduler)
    finally:
        victim.write_bytes(saved)
    assert err.value.path == victim and str(err.value).startswith(str(root))


def test_cli_prepare_on_the_cluster_writes_the_same_arrays(scheduler: str, tmp_path: Path) -> None:
    from fusion.cli import main

    config = reference_inputs("subsample").parent / "config.yaml"
    whole, chunked = tmp_path / "whole.npz", tmp_path / "cluster.npz"
    assert main(["prepare", str(config), "--out", str(whole)]) == 0
    assert main(["prepare", str(config), "--out", str(chunked), "--scheduler", scheduler]) == 0
    with np.load(whole) as a, np.load(chunked) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name


def test_fusion_run_prepares_on_the_cluster_with_the_same_results(scheduler: str, tmp_path: Path) -> None:
    from fusion.cli import main

    config = write_example(tmp_path / "example")
    text = config.read_text().replace("draws: 1000", "draws: 40").replace("tune: 1000", "tune: 40")
    config.write_text(text.replace("chains: 4", "chains: 1"))
    outs = {"here": tmp_path / "here", "cluster": tmp_path / "cluster"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DataWarning)
        assert main(["run", str(config), "--out", str(outs["here"]), "--no-progress"]) == 0
        assert main(["run", str(config), "--out", str(outs["cluster"]), "--no-progress",
                     "--chunk-rows", "7", "--scheduler", scheduler]) == 0
    for name in ("weights.csv", "projection.csv"):
        assert (outs["here"] / name).read_bytes() == (outs["cluster"] / name).read_bytes(), name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("nonsense:::", "not a dask scheduler address"),
        ("foo://host:8786", "not a dask scheduler address"),
        ("tcp://127.0.0.1:notaport", "not a dask scheduler address"),
        ("unreachable", "cannot reach the dask scheduler"),
    ],
)
def test_bad_or_unreachable_scheduler_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, why: str
) -> None:
    from fusion.cli import main

    if address == "unreachable":
        address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there: refused at once
    config = reference_inputs("small").parent / "config.yaml"
    out = tmp_path / "prepared.npz"
    assert main(["prepare", str(config), "--out", str(out), "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --scheduler {address}: {why}"), err
    assert list(tmp_path.iterdir()) == []


def test_a_scheduler_without_workers_is_bad_input(tmp_path: Path) -> None:
    with local_cluster(tmp_path / "dask", n_workers=0, processes=True) as cluster:
        with pytest.raises(InputError, match="the scheduler has no workers"):
            with connect(cluster.scheduler_address, timeout=0.5):
                pass
