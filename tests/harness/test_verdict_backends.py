"""A sequential verdict on real fits: the same seeds give the same looks, verdict and bits in
this process, on local worker processes and on a dask cluster; an extended run reuses the
replicates it already has (the result store)."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.sim as sim
from harness.checks.coverage import REGIMES, CoverageSpec, calibration_decision
from harness.verdict import Decision, Plan

# small and fast: dense_clean only, 60 + 60 points, short chains
SPEC = CoverageSpec(setting="generative", n_replicates=4, regimes=REGIMES[:1], n_thick=60, n_vel=60,
                    draws=150, tune=150, predictive_draws=100, seed=91)
# a bound on the estimate's edge: the first look is undecided, so the run extends
PLAN = Plan(first=4, batch=4, cap=8, alpha=0.05)
BOUND = 0.08


def _bits(d: Decision) -> tuple:
    iv = d.interval
    return d.verdict, d.looks, iv.estimate.hex(), iv.lower.hex(), iv.upper.hex(), iv.n


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[Decision, Path]:
    folder = tmp_path_factory.mktemp("inproc")
    decision, _ = calibration_decision(SPEC, folder, PLAN, BOUND, workers=0, progress=lambda s: None)
    assert [verdict for _, verdict in decision.looks] == ["undecided", "pass"]  # the run did extend
    return decision, folder


def test_local_processes_give_the_same_verdict_and_bits(in_process, tmp_path: Path) -> None:
    sim.shutdown_pools()
    decision, _ = calibration_decision(SPEC, tmp_path, PLAN, BOUND, workers=2, progress=lambda s: None)
    assert _bits(decision) == _bits(in_process[0])


def test_dask_cluster_gives_the_same_verdict_and_bits(in_process, tmp_path: Path) -> None:
    import dask
    from distributed import LocalCluster

    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}), LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        decision, result = calibration_decision(SPEC, tmp_path / "out", PLAN, BOUND,
                                                scheduler=cluster.scheduler_address, progress=lambda s: None)
    assert _bits(decision) == _bits(in_process[0])


def test_an_extended_run_reuses_the_stored_replicates(in_process) -> None:
    decision, folder = in_process
    stamped = sorted(folder.glob("replicates/r*/_SUCCESS"))
    assert len(stamped) == decision.interval.n
    again, result = calibration_decision(SPEC, folder, PLAN, BOUND, workers=0, progress=lambda s: None)
    assert result["reused_replicates"] == decision.interval.n  # nothing refitted
    assert _bits(again) == _bits(decision)
