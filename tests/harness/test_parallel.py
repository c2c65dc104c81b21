"""Backends give the same replicates; local processes build the density callbacks once each; a killed
run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.sim as sim
from harness.paths import repo_root
from harness.checks.sbc import SBCSpec, run_sbc

REPO = repo_root()
SPEC = SBCSpec(n_replicates=16, draws=200, tune=200, seed=77)


def _key(outcome) -> list[tuple]:
    return [
        (r["index"], tuple(r["ranks"].values()), r["truth"]["loglik"], r["post_mean"]["sigma_base_vel"])
        for r in outcome.records
    ]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory):
    return run_sbc(SPEC, tmp_path_factory.mktemp("inproc"), workers=0, progress=lambda s: None, plots=False)


def test_dask_cluster_gives_the_same_replicates(in_process, tmp_path: Path) -> None:
    import dask
    from distributed import LocalCluster

    # the scheduler and the worker would otherwise leave a `dask-scratch-space` in the temporary folder
    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}), LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        out = run_sbc(
            SPEC, tmp_path, scheduler=cluster.scheduler_address, progress=lambda s: None, plots=False
        )
    assert out.figures["backend"].startswith("dask:")
    assert out.figures["fitted_replicates"] == SPEC.n_replicates
    assert _key(out) == _key(in_process)


def test_local_processes_compile_once_each_and_agree(in_process, tmp_path: Path) -> None:
    sim.shutdown_pools()
    out = run_sbc(SPEC, tmp_path, workers=2, chunk_size=2, progress=lambda s: None, plots=False)
    f = out.figures
    assert f["backend"] == "local:2"
    assert 1 <= f["worker_processes"] <= 2
    assert f["compilations"] == f["worker_processes"]  # callbacks built once per process, not per replicate
    assert _key(out) == _key(in_process)


def _stamped(folder: Path) -> list[Path]:
    return sorted(folder.glob("replicates/r*/_SUCCESS"))


def test_killed_run_resumes_without_refitting(tmp_path: Path) -> None:
    n, out_dir, log = 150, tmp_path / "run", tmp_path / "stderr.txt"
    cmd = [
        sys.executable,
        "-m",
        "harness.checks.sbc",
        "--out",
        str(out_dir),
        "--replicates",
        str(n),
        "--workers",
        "0",
        "--chunk-size",
        "4",
        "--no-plots",
    ]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(_stamped(out_dir)) < 40:
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
    done = _stamped(out_dir)
    assert 40 <= len(done) < n, "killed too late to test resuming"
    before = {p.parent.name: (p.parent / "result.json").stat().st_mtime_ns for p in done}

    out = run_sbc(SBCSpec(n_replicates=n), out_dir, workers=0, progress=lambda s: None, plots=False)
    f = out.figures
    assert f["reused_replicates"] == len(done)
    assert f["fitted_replicates"] == n - len(done)
    assert len(_stamped(out_dir)) == n
    after = {name: (out_dir / "replicates" / name / "result.json").stat().st_mtime_ns for name in before}
    assert after == before  # finished replicates were not rewritten
    assert json.loads((out_dir / "spec.json").read_text())["n_replicates"] == n
