"""The harness check `perfect_model` on the bundled example: it passes FUSION's calibrated
default and turns red on the two planted defects (issue 34)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.checks import CheckContext
from harness.checks.perfect_model import run_check, summarize
from harness.paths import repo_root


def _run(tmp_path: Path, plant: str):
    root = repo_root()
    ctx = CheckContext(
        suite="quick", artifact_dir=tmp_path / (plant or "calibrated"), golden_dir=root / "golden",
        fixtures_dir=root / "fixtures", case="example", progress=lambda line: None,
    )  # fmt: skip
    return run_check(ctx, plant=plant)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory):
    import warnings

    from fusion.errors import DataWarning

    out = tmp_path_factory.mktemp("perfect_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the example's missing ERRY year, tested where it is raised
        return {plant: _run(out, plant) for plant in ("", "uncalibrated", "in_sample")}


def test_the_calibrated_default_passes_with_its_figure_and_table(outcomes) -> None:
    result = outcomes[""]
    assert result.status == "pass", result.messages
    fig = result.figures
    assert fig["n_members"] == 5 and fig["inside"] >= fig["inside_unweighted"] - 1
    assert fig["crps_ratio"] <= 1.0 and fig["relative_width"] > 0.0
    assert len(result.tables[0]["rows"]) == 5 and result.plots == ["perfect_model.png"]
    for g in result.gates:  # each with its interval over the held-out members
        assert g["n"] == 5 and g["interval"][0] <= g["value"] <= g["interval"][1]


@pytest.mark.parametrize("plant", ["uncalibrated", "in_sample"])
def test_a_planted_defect_turns_the_check_red(outcomes, plant: str) -> None:
    result = outcomes[plant]
    assert result.status == "fail", result.messages
    assert result.figures["temperature_median"] == {"thick": 1.0, "vel": 1.0}  # the sharpest weighting: the defect's mark
    assert result.figures["crps_ratio"] > outcomes[""].figures["crps_ratio"]


def test_the_binomial_gate_compares_with_the_unweighted_ensembles_own_rate() -> None:
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
