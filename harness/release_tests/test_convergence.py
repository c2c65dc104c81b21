"""The convergence gate on FUSION's own sampler, and on the prototype's reference trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import fusion.diagnostics
from fusion.diagnostics import Thresholds
from fusion.inference.parameters import PARAMS
from harness.checks import convergence
from harness.cases.data import CaseData
from harness.testing import GOLDEN_DIR, check_context
from harness.checks.convergence import SETTINGS, THRESHOLDS, _case_config, decide, diagnose, gate, sample_trace
from harness.gates import Gates


def test_fusion_sampler_passes_gate(case_data: Callable[[str], CaseData]) -> None:
    """compat: fixed on the small reference case, 4 chains × 1,000 draws: every figure within DESIGN.md's gate."""
    data = case_data("small")
    cfg = _case_config(data.case)
    assert cfg.inference.draws == SETTINGS["draws"] and cfg.compat == "fixed"
    figures = diagnose(sample_trace(cfg, data.prepared_fixed))
    passed, messages = gate(figures)
    assert passed, "\n".join(messages)
    assert figures["chains"] == 4 and figures["var_names"][-1] == "w"


def test_prototype_reference_trace_fails_gate() -> None:
    """A finding, kept as a test: the prototype's own 2 × 300-draw trace would not pass the gate.

    Figures from golden/small/sampled_posterior.nc (arviz-stats 1.3): R-hat of beta_vel 1.0102,
    bulk ESS of sigma_base_thick 121.7 (60.8 per chain), tail ESS 86.0 (43.0 per chain).
    """
    with xr.open_datatree(GOLDEN_DIR / "small" / "sampled_posterior.nc") as tree:
        figures = diagnose(tree.load())
    passed, messages = gate(figures)
    assert not passed
    assert figures["r_hat_max_at"] == "beta_vel" and figures["r_hat_max"] == pytest.approx(1.0102, abs=1e-4)
    assert any(m.startswith("max R-hat 1.0102 > 1.01 (over by 0.0002) at beta_vel") for m in messages), (
        messages
    )
    assert any("min bulk ESS 60.8 per chain < 100 (short by 39.2" in m for m in messages), messages
    assert figures["divergences"] == 0 and figures["e_bfmi_min"] >= THRESHOLDS.e_bfmi_min


def test_one_vocabulary_the_harness_gate_is_fusions() -> None:
    """No second implementation: the harness's names are FUSION's own functions and thresholds."""
    assert convergence.diagnose is fusion.diagnostics.diagnose
    assert convergence.gate is fusion.diagnostics.gate
    assert convergence.THRESHOLDS == Thresholds() == fusion.diagnostics.THRESHOLDS


def planted(draws: int, shift: float, chains: int = 4) -> xr.DataTree:
    """Independent normal draws, chain 0 of `sigma_base_vel` shifted by `shift`: R-hat grows with it
    (measured, seed 0: shift 0.31 at 1,000 draws → 1.011; 0.15 at 2,000 → 1.003; 1.5 → 1.21)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(PARAMS), chains, draws))
    x[1, 0] += shift
    dims, coords = ("chain", "draw"), {"chain": np.arange(chains), "draw": np.arange(draws)}
    post = xr.Dataset({p: (dims, x[i]) for i, p in enumerate(PARAMS)}, coords=coords)
    stats = xr.Dataset(
        {"energy": (dims, rng.standard_normal((chains, draws))), "diverging": (dims, np.zeros((chains, draws), bool))},
        coords=coords,
    )
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def _hair_then_fine(draws: int) -> xr.DataTree:
    """A run that misses R-hat by a hair at 1,000 draws and mixes when sampled longer."""
    return planted(draws, 0.31 if draws <= 1000 else 0.15)


def test_borderline_miss_samples_longer_then_passes() -> None:
    first = diagnose(_hair_then_fine(1000))
    assert 1.01 < first["r_hat_max"] < 1.015 and not gate(first)[0]  # the plant does miss, by a hair
    decision = decide(_hair_then_fine, 1000)
    assert decision.passed and decision.messages == []
    assert [a["draws"] for a in decision.attempts] == [1000, 2000]
    assert decision.attempts[0]["messages"][0].startswith("max R-hat 1.01")
    assert "sampled longer: 2000 draws per chain → passes" in (decision.note() or "")


def test_non_converging_run_fails_at_once_with_todays_message() -> None:
    calls: list[int] = []

    def stuck(draws: int) -> xr.DataTree:
        calls.append(draws)
        return planted(draws, 1.5)

    decision = decide(stuck, 1000)
    assert not decision.passed and calls == [1000]  # far outside the noise: no resampling
    assert decision.messages == gate(diagnose(planted(1000, 1.5)))[1]
    assert decision.messages[0].startswith("max R-hat 1.21") and decision.messages[0].endswith("at sigma_base_vel")


def test_retries_are_bounded_and_can_be_turned_off() -> None:
    calls: list[int] = []

    def always_a_hair(draws: int) -> xr.DataTree:
        calls.append(draws)
        return planted(draws, 0.31)  # R-hat 1.011–1.013 at every length: always borderline

    decision = decide(always_a_hair, 1000, Thresholds(borderline_retries=2))
    assert not decision.passed and calls == [1000, 2000, 4000]
    calls.clear()
    assert not decide(always_a_hair, 1000, Thresholds(borderline_retries=0)).passed and calls == [1000]


def test_convergence_check_reports_that_it_sampled_longer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convergence, "sample_trace", lambda cfg, prepared: _hair_then_fine(cfg.inference.draws))
    ctx = check_context(tmp_path, case="small")
    result = convergence.run_check(ctx)
    assert result.status == "pass", result.messages
    assert [a["draws"] for a in result.figures["attempts"]] == [1000, 2000]
    assert any("sampled longer" in m for m in result.messages)
    assert result.provenance["draws"] == 2000
    strict = convergence.run_check(
        check_context(tmp_path, case="small", gates=Gates(convergence=Thresholds(borderline_retries=0)))
    )
    assert strict.status == "fail" and strict.messages[0].startswith("max R-hat 1.01")
