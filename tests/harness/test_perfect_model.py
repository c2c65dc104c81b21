"""The harness check `perfect_model` on the bundled example: FUSION's calibrated default passes its
CRPS gate and holds the coverage bound within its interval, the two planted defects turn it red
(issue 34); undecided adds whole noise draws over the members, the same bits locally and on dask,
and a rerun reads the stored draws back (issue 36). Cheap plans here (one or two draws); the
default plan's verdict on the example (pass at 6 draws) is the quick suite's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.checks import CheckContext
from harness.checks.perfect_model import run_check, summarize
from harness.gates import Gates, PerfectModelGate
from harness.paths import repo_root
from harness.sim.perfect_model import replicate_of

pytestmark = pytest.mark.long_module(seconds=22)  # its tests in all under ./dev test

ONE_DRAW = Gates(perfect_model=PerfectModelGate(first=5, batch=5, max_replicates=5))  # the example's 5 members
TWO_DRAWS = Gates(perfect_model=PerfectModelGate(first=5, batch=5, max_replicates=10))


def _run(folder: Path, plant: str, gates: Gates, scheduler: str | None = None):
    import warnings

    from fusion.errors import DataWarning

    root = repo_root()
    ctx = CheckContext(
        suite="quick", artifact_dir=folder, golden_dir=root / "golden", fixtures_dir=root / "fixtures",
        case="example", progress=lambda line: None, gates=gates, scheduler=scheduler,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the example's missing ERRY year, tested where it is raised
        return run_check(ctx, plant=plant)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("perfect_model")
    found = {plant: _run(out / plant, plant, ONE_DRAW) for plant in ("uncalibrated", "in_sample")}
    found[""] = _run(out / "calibrated", "", TWO_DRAWS)
    return found, out / "calibrated"


def _bits(result) -> list:
    return [(g["verdict"], g["looks"], float(g["value"]).hex(), *(float(x).hex() for x in g["interval"])) for g in result.gates]


def test_the_calibrated_default_passes_its_crps_gate_and_holds_the_coverage_bound(outcomes) -> None:
    result = outcomes[0][""]
    coverage, crps = result.gates
    assert crps["verdict"] == "pass" and crps["looks"] == [[5, "pass"]], result.messages
    fig = result.figures
    assert fig["n_members"] == 5 and fig["draws"] == 2 and fig["inside"] >= 2 * (fig["inside_unweighted"] - 1)
    assert coverage["bound"] == (fig["inside_unweighted"] - 1) / 5  # one member's share below the unweighted rate
    # two draws of five members cannot tell 3/5 from 2/5: extended to the cap, the bound inside
    assert coverage["verdict"] == "undecided" and coverage["looks"] == [[5, "undecided"], [10, "undecided"]]
    assert coverage["interval"][0] < coverage["bound"] < coverage["interval"][1] and coverage["needed"] > 10
    assert result.status == "undecided" and any("draws would decide" in m for m in result.messages)
    assert fig["crps_ratio"] <= 1.0 and fig["relative_width"] > 0.0
    table = result.tables[0]["rows"]
    assert len(table) == 5 and result.plots == ["perfect_model.png"] and all(row[4].endswith("/2") for row in table)


def test_draws_extend_by_whole_batches_and_a_rerun_reads_them_back(outcomes) -> None:
    assert [replicate_of(i, 5) for i in (0, 4, 5, 9)] == [(0, 0), (4, 0), (0, 1), (4, 1)]
    results, folder = outcomes
    stamps = sorted(folder.glob("replicates/r*/result.json"))
    assert len(stamps) == 10
    before = [p.stat().st_mtime_ns for p in stamps]
    again = _run(folder, "", TWO_DRAWS)
    assert [p.stat().st_mtime_ns for p in stamps] == before  # nothing recomputed
    assert _bits(again) == _bits(results[""])


def test_dask_gives_the_same_verdicts_and_bits(outcomes, tmp_path: Path) -> None:
    """The first draw copied from the local run, the second computed on a dask cluster."""
    import dask
    from distributed import LocalCluster

    results, folder = outcomes
    for i in range(5):
        shutil.copytree(folder / "replicates" / f"r{i:05d}", tmp_path / "out" / "replicates" / f"r{i:05d}")
    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}), LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        result = _run(tmp_path / "out", "", TWO_DRAWS, scheduler=cluster.scheduler_address)
    assert _bits(result) == _bits(results[""])


@pytest.mark.parametrize("plant", ["uncalibrated", "in_sample"])
def test_a_planted_defect_turns_the_check_red(outcomes, plant: str) -> None:
    result = outcomes[0][plant]
    assert result.status == "fail" and result.gates[1]["verdict"] == "fail", result.messages  # the CRPS ratio, at one draw
    assert result.figures["temperature_median"] == {"thick": 1.0, "vel": 1.0}  # the sharpest weighting: the defect's mark
    assert result.figures["crps_ratio"] > outcomes[0][""].figures["crps_ratio"]


def test_the_reported_binomial_p_compares_with_the_unweighted_ensembles_own_rate() -> None:
    def record(inside: bool, inside0: bool) -> dict:
        return {"inside": inside, "inside_unweighted": inside0, "crps": 1.0, "crps_unweighted": 1.0,
                "lower": 0.0, "upper": 1.0, "lower_unweighted": 0.0, "upper_unweighted": 2.0,
                "members_in_play": 3.0, "temperature": {"thick": 0.1, "vel": 0.01}, "confident": True}  # fmt: skip

    # 20 of 27 unweighted: 20 weighted is no evidence against; 12 is (p < 0.05)
    same = summarize([record(i < 20, i < 20) for i in range(27)], 0.05, 0.95)
    fewer = summarize([record(i < 12, i < 20) for i in range(27)], 0.05, 0.95)
    assert same["binomial_p"] > 0.5 and fewer["binomial_p"] < 0.05
    assert np.isclose(same["relative_width"], 0.5) and same["crps_skill"] == 0.0


@pytest.mark.full
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("noise_length", [0.0, 6.0])
def test_the_calibrated_default_holds_on_ensembles_without_a_true_member(seed: int, noise_length: float) -> None:
    """Issue 34's bar: 27 members differing by parameters and smooth biases, each held out as the
    truth, FUSION's own `run` on the rest: inside its 5–95 % range at least as often as the
    unweighted ensemble less one member, at most 0.8 × the unweighted ensemble's mean CRPS."""
    from harness.sim.ensembles import EnsembleDesign, design_noise, structural_ensemble
    from harness.sim.perfect_model import held_out

    design = EnsembleDesign(seed=seed, noise_length=noise_length)
    cfg, prepared, sle = structural_ensemble(design)
    records = [held_out(cfg, prepared, sle, k, design_noise(design, prepared, k)) for k in range(prepared.n_members)]
    fig = summarize(records, 0.05, 0.95)
    assert fig["inside"] >= fig["inside_unweighted"] - 1, fig
    assert fig["crps_ratio"] <= 0.8, fig


def test_the_likelihood_checks_out_of_sample_gates_judge_the_calibrated_default() -> None:
    from harness.checks.likelihood import _out_of_sample_gates, out_of_sample_table

    def row(inside: int, skill: float) -> dict:
        return {"inside": inside, "inside_unweighted": 23, "n_members": 27, "relative_width": 0.6,
                "crps_skill": skill, "members_in_play": 6.8, "temperature_median": {"thick": 1.0, "vel": 1e-4}}  # fmt: skip

    good = {"27 members, seed 0, independent": {"effective": row(3, 0.07), "calibrated": row(22, 0.5)}}
    assert all(g["passed"] for g in _out_of_sample_gates(good))
    for bad in (row(21, 0.5), row(23, -0.01)):
        gates = _out_of_sample_gates({"design": {"calibrated": bad}})
        assert not all(g["passed"] for g in gates)
    table = out_of_sample_table(good)
    assert "| 27 members, seed 0, independent | effective | 3/27 (23/27) |" in table
    assert "1 / 0.0001 |" in table
