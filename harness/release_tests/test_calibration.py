"""Coverage and recovery (check 5): calibrated prediction from the generative form in every regime,
the true member first on physical data, and the tempered mixture's over-coverage measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.checks.coverage import (
    NOMINAL_1,
    NOMINAL_2,
    THRESHOLDS,
    coverage_curve,
    nominal,
    predictive_pit,
    run_check,
)
from harness.testing import check_context


def test_quick_suite_passes(tmp_path: Path) -> None:
    result = run_check(check_context(tmp_path, "quick"))
    assert result.status == "pass", result.messages
    a, b = result.figures["generative"], result.figures["physical"]
    assert a["dense_clean"]["calibration_error"] <= 0.05
    for name in (
        "dense_clean",
        "sparse_clean",
        "sparse_noisy",
    ):  # near nominal in every regime, not only the gated one
        assert a[name]["calibration_error"] < 0.1, name
    errors = [a[r]["recovery_error_identified"] for r in ("dense_clean", "sparse_clean", "sparse_noisy")]
    assert errors[0] < errors[2], errors  # less information, worse recovery
    assert b["dense_clean"]["truth_first_fraction"] >= 0.95
    assert b["dense_clean"]["coverage_1sigma"] > NOMINAL_1  # tempered mixture over-covers: a finding
    assert (tmp_path / result.plots[0]).stat().st_size > 1000
    assert any("over-covers" in m for m in result.messages)


def test_pit_and_coverage_are_exact_for_a_known_gaussian() -> None:
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.5, 3.0, 2000)
    values = rng.normal(0.0, sd)
    pit = predictive_pit(values[None, :], np.zeros((1, sd.size)), (sd**2)[None, :])
    np.testing.assert_allclose(pit[0], stats.norm.cdf(values / sd), rtol=1e-12)
    cov = coverage_curve(pit) / sd.size
    i1, i2 = THRESHOLDS.index(1.0), THRESHOLDS.index(2.0)
    assert abs(cov[i1] - NOMINAL_1) < 0.04 and abs(cov[i2] - NOMINAL_2) < 0.02
    assert nominal(1.0) == pytest.approx(NOMINAL_1, abs=1e-4)


def test_a_too_wide_predictive_is_caught() -> None:
    """Doubling the predictive sd over-covers by far more than the 0.05 gate."""
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, 4000)
    pit = predictive_pit(values[None, :], np.zeros((1, values.size)), np.full((1, values.size), 4.0))
    cov = coverage_curve(pit) / values.size
    err = abs(cov[THRESHOLDS.index(1.0)] - NOMINAL_1) + abs(cov[THRESHOLDS.index(2.0)] - NOMINAL_2)
    assert err > 0.2


def test_mixture_pit_weights_members() -> None:
    """With all weight on one member the mixture PIT is that member's Gaussian CDF."""
    centers = np.array([[0.0, 0.0], [10.0, 10.0]])
    w = np.array([[0.0, 1.0], [0.0, 1.0]])
    pit = predictive_pit(np.array([10.5, 9.0]), centers, np.ones((2, 2)), weights=w)
    np.testing.assert_allclose(pit, stats.norm.cdf([0.5, -1.0]))


@pytest.mark.full
def test_full_suite_passes(tmp_path: Path) -> None:
    result = run_check(check_context(tmp_path, "full"))
    assert result.status == "pass", result.messages
    assert result.figures["generative"]["dense_clean"]["replicates"] == 200
    assert result.figures["physical"]["dense_clean"]["replicates"] == 100
