"""Check `agreement`: Laplace against NUTS passes on a bundled case and fails on a planted MAP shift."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fusion.inference.laplace import fit_laplace, sample_laplace
from fusion.inference.fused_density import FusedDensity
from harness.checks import agreement
from harness.checks import CHECK_NAMES, CheckContext
from harness.gates import AgreementGate
from harness.registry import spec
from harness.testing import check_context

pytestmark = pytest.mark.filterwarnings("ignore::fusion.errors.DataWarning")


def _ctx(tmp_path: Path, case: str = "small") -> CheckContext:
    return check_context(tmp_path / case, case=case)


def _shifted_laplace(cfg, prepared):
    """The planted fault: the Gaussian's mode moved by two of its posterior sd in every parameter."""
    from fusion.pipeline import likelihood_inputs

    cfg = cfg.with_updates(inference={"method": "laplace"})
    settings, points = likelihood_inputs(cfg, prepared)
    fit = fit_laplace(FusedDensity(points, settings))
    return sample_laplace(cfg, points, fit=dataclasses.replace(fit, mode=fit.mode + 2.0 * fit.sd), settings=settings)


def test_agreement_is_registered() -> None:
    assert "agreement" in CHECK_NAMES and spec("agreement").module == "harness.checks.agreement"


def test_laplace_agrees_with_nuts_on_the_small_case(tmp_path: Path) -> None:
    result = agreement.run_check(_ctx(tmp_path))
    assert result.status == "pass", result.messages
    assert (tmp_path / "small" / "agreement.png").stat().st_size > 0
    weights = result.figures["weights"]
    assert len(weights) == len(result.figures["members"]) > 1
    for row in weights.values():  # the gate's own inequalities, recomputed from the reported moments
        assert abs(row["laplace_mean"] - row["nuts_mean"]) <= row["nuts_sd"]
        assert 0.5 <= row["laplace_sd"] / row["nuts_sd"] <= 2.0
    assert set(result.figures["noise_parameters"]) == {"sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel"}
    assert np.isfinite(result.figures["pareto_k"])


def test_a_map_shifted_by_two_sd_turns_it_red(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(agreement.OPS, "laplace", _shifted_laplace)
    result = agreement.run_check(_ctx(tmp_path))
    assert result.status == "fail"
    assert any("NUTS sd away" in m for m in result.messages), result.messages


def test_projection_gate_fails_when_the_weighted_median_moves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the example (projection inputs), the same planted shift also moves the projection median.
    Under `tempered`: the default `effective` pins the example's weight on its true member in both
    fits, so no shift of the noise parameters moves the median there."""
    monkeypatch.setitem(agreement.OPS, "laplace", _shifted_laplace)
    load = agreement._load
    monkeypatch.setattr(agreement, "_load", lambda name, ctx: dataclasses.replace(
        load(name, ctx), cfg=load(name, ctx).cfg.with_updates(likelihood={"form": "tempered"})))
    result = agreement.run_check(_ctx(tmp_path, "example"))
    assert result.status == "fail"
    assert any(m.startswith("projection median of Σ w·SLE") for m in result.messages), result.messages
    proj = result.figures["projection"]
    assert proj["weighted_mean_shift_sd"] == pytest.approx(
        abs(proj["weighted_mean_median_laplace"] - proj["weighted_mean_median_nuts"])
        / max(proj["weighted_mean_sd_nuts"], AgreementGate().projection_sd_floor_mm)
    )
