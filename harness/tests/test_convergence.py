"""The convergence gate on FUSION's own sampler, and on the prototype's reference trace."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import xarray as xr

from harness.testing import GOLDEN_DIR
from harness.convergence import SETTINGS, THRESHOLDS, _case_config, diagnose, gate, sample_trace
from harness.cases import CaseData


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
    assert figures["divergences"] == 0 and figures["e_bfmi_min"] >= THRESHOLDS["e_bfmi_min"]


def test_gate_agrees_with_fusion_diagnostics(case_data: Callable[[str], CaseData]) -> None:
    """The harness computes its figures itself; on the same trace they equal FUSION's `sampler_diagnostics`."""
    from fusion.diagnostics import sampler_diagnostics

    data = case_data("small")
    trace = sample_trace(_case_config(data.case), data.prepared_fixed)
    params = ["sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel"]
    ours, theirs = diagnose(trace, params), sampler_diagnostics(trace, params)
    for key in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "e_bfmi_min"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-12), key
