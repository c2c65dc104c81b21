"""Unit tests of the coverage check's pure parts (`harness.checks.coverage`): nominal mass, the
predictive PIT, coverage counts, the per-regime summary, the gates and the physical dataset.

Reference values come from scipy.stats (Gaussian CDFs, HalfNormal moments) or are counted by hand
in the test; none is read back from the module under test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA
from harness.checks.coverage import (
    NOMINAL_1,
    NOMINAL_2,
    THRESHOLDS,
    coverage_curve,
    coverage_gates,
    nominal,
    physical_dataset,
    predictive_pit,
    summarize_regime,
)
from harness.gates import CoverageGate

I1, I2 = THRESHOLDS.index(1.0), THRESHOLDS.index(2.0)


# --- nominal -----------------------------------------------------------------------------------


def test_nominal_is_the_gaussian_mass_within_k_sigma() -> None:
    ks = np.asarray(THRESHOLDS)
    expected = stats.norm.cdf(ks) - stats.norm.cdf(-ks)
    np.testing.assert_allclose(nominal(ks), expected, rtol=1e-14)
    assert nominal(ks).shape == ks.shape
    assert float(nominal(0.0)) == 0.0
    assert float(nominal(1.0)) == pytest.approx(NOMINAL_1, abs=5e-5)
    assert float(nominal(2.0)) == pytest.approx(NOMINAL_2, abs=5e-5)


def test_thresholds_run_from_half_to_two_and_a_half_sigma_in_tenths() -> None:
    assert len(THRESHOLDS) == 21
    assert THRESHOLDS[0] == 0.5 and THRESHOLDS[-1] == 2.5
    np.testing.assert_allclose(np.diff(THRESHOLDS), 0.1, atol=1e-12)


# --- predictive_pit ----------------------------------------------------------------------------


def test_pit_averages_the_gaussian_cdf_over_draws() -> None:
    """Two draws of variance 1 and 4: PIT = (Φ(z/1) + Φ(z/2)) / 2 per (member, point)."""
    values = np.array([[1.0, -0.5, 3.0], [0.0, 2.0, -1.0]])  # (M=2, H=3)
    centers = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    var = np.array([[1.0, 1.0, 1.0], [4.0, 4.0, 4.0]])  # (D=2, H)
    z = values - centers
    expected = (stats.norm.cdf(z / 1.0) + stats.norm.cdf(z / 2.0)) / 2.0
    pit = predictive_pit(values, centers, var)
    assert pit.shape == (2, 3)
    np.testing.assert_allclose(pit, expected, rtol=1e-13)


def test_pit_uses_each_points_own_variance() -> None:
    values = np.array([[1.0, 1.0]])
    var = np.array([[1.0, 9.0]])  # one draw; point 0 sd 1, point 1 sd 3
    pit = predictive_pit(values, np.zeros((1, 2)), var)
    np.testing.assert_allclose(pit[0], stats.norm.cdf([1.0, 1.0 / 3.0]), rtol=1e-13)


def test_pit_of_a_shared_value_row_broadcasts_over_members() -> None:
    """`values` (H,) is the same observation seen from every member's centre."""
    values = np.array([0.3, -1.2])
    centers = np.array([[0.0, 0.0], [1.0, -1.0], [-2.0, 2.0]])
    var = np.array([[0.25, 0.25]])
    pit = predictive_pit(values, centers, var)
    np.testing.assert_allclose(pit, stats.norm.cdf((values - centers) / 0.5), rtol=1e-13)


def test_mixture_pit_is_the_weighted_cdf_averaged_over_draws() -> None:
    """(1/D) Σ_d Σ_m w_dm Φ((v − c_m)/σ_d), summed here term by term."""
    values = np.array([0.4, 2.5, -1.0])
    centers = np.array([[0.0, 2.0, -1.5], [1.0, 3.0, 0.0]])  # (M=2, H=3)
    var = np.array([[1.0, 0.5, 2.0], [0.25, 1.0, 1.0], [4.0, 2.0, 0.5]])  # (D=3, H): D ≠ M
    w = np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]])  # (D, M): the weights change from draw to draw
    expected = np.zeros(3)
    for d in range(3):
        for m in range(2):
            expected += w[d, m] * stats.norm.cdf((values - centers[m]) / np.sqrt(var[d]))
    expected /= 3
    pit = predictive_pit(values, centers, var, weights=w)
    assert pit.shape == (3,)
    np.testing.assert_allclose(pit, expected, rtol=1e-13)


# --- coverage_curve ----------------------------------------------------------------------------


def test_coverage_counts_a_known_set_of_standard_scores() -> None:
    """PIT = Φ(z): the point is inside the ±kσ interval exactly when |z| ≤ k (no z sits on a threshold)."""
    z = np.array([-2.73, -2.05, -1.55, -1.04, -0.77, -0.32, 0.05, 0.48, 0.91, 1.27, 1.66, 2.21, 2.64])
    counts = coverage_curve(stats.norm.cdf(z))
    expected = [int(np.sum(np.abs(z) <= k)) for k in THRESHOLDS]
    assert counts.tolist() == expected
    # counted by hand: |z| ≤ 0.5 → {0.05, 0.32, 0.48}; ≤ 1 → also 0.77, 0.91; ≤ 2 → also 1.04, 1.27,
    # 1.55, 1.66; ≤ 2.5 → all but 2.64 and 2.73
    assert counts[THRESHOLDS.index(0.5)] == 3
    assert counts[I1] == 5
    assert counts[I2] == 9
    assert counts[-1] == 11


def test_coverage_curve_pools_every_member_and_point() -> None:
    pit = np.array([[0.5, 0.8, 0.99], [0.01, 0.3, 0.6]])  # |2p − 1| = 0, .6, .98, .98, .4, .2
    counts = coverage_curve(pit, thresholds=(0.5, 1.0, 2.0, 2.5))
    # nominal masses 0.383, 0.683, 0.954, 0.988
    assert counts.tolist() == [2, 4, 4, 6]
    assert coverage_curve(pit.ravel(), thresholds=(0.5, 1.0, 2.0, 2.5)).tolist() == [2, 4, 4, 6]


# --- summarize_regime --------------------------------------------------------------------------


def _covered(n_held: int, c1: int, c2: int) -> list[int]:
    counts = [min(j, n_held) for j in range(len(THRESHOLDS))]
    counts[I1], counts[I2] = c1, c2
    return counts


def _regime(n_held: int, c1: int, c2: int, abs_error: dict[str, float], sd: float, divergences: int,
            r_hat: float, **physical: Any) -> dict[str, Any]:
    return {
        "n_train": 4 * n_held,
        "n_held": n_held,
        "covered": _covered(n_held, c1, c2),
        "recovery": {p: {"abs_error": abs_error[p], "sd": sd} for p in PARAMS},
        "convergence": {"divergences": divergences, "r_hat_max": r_hat},
        **physical,
    }


def _records(**physical: Any) -> list[dict[str, Any]]:
    """Two replicates (indices 11 and 5, the worst one second) and a decoy regime with other numbers."""
    err_b = {"sigma_base_thick": 0.1, "sigma_base_vel": 0.2, "beta_thick": 5.0, "beta_vel": 0.02}
    err_a = {"sigma_base_thick": 0.3, "sigma_base_vel": 0.4, "beta_thick": 7.0, "beta_vel": 0.04}
    decoy = _regime(50, 1, 2, err_a, 9.0, 9, 2.0, truth_rank=4, truth_weight=0.0)
    b = _regime(30, 20, 28, err_b, 0.1, 3, 1.01, **{k: v[0] for k, v in physical.items()})
    a = _regime(10, 7, 10, err_a, 0.3, 0, math.nan, **{k: v[1] for k, v in physical.items()})
    return [
        {"index": 11, "regimes": {"dense_clean": b, "sparse_noisy": decoy}},
        {"index": 5, "regimes": {"dense_clean": a, "sparse_noisy": decoy}},
    ]


def test_summary_pools_the_coverage_of_every_replicate() -> None:
    s = summarize_regime(_records(), "dense_clean", "generative")
    c1, c2 = (20 + 7) / 40, (28 + 10) / 40
    assert s["replicates"] == 2 and s["held_out_values"] == 40
    assert s["coverage_1sigma"] == pytest.approx(c1, rel=1e-15)
    assert s["coverage_2sigma"] == pytest.approx(c2, rel=1e-15)
    assert s["calibration_error"] == pytest.approx(abs(c1 - 0.6827) + abs(c2 - 0.9545), rel=1e-12)
    pooled = (np.array(_covered(30, 20, 28)) + np.array(_covered(10, 7, 10))) / 40
    assert list(s["curve"]) == [str(k) for k in THRESHOLDS]
    np.testing.assert_allclose(list(s["curve"].values()), pooled, rtol=1e-15)


def test_summary_names_the_worst_replicate_by_its_index() -> None:
    """Per replicate: 11 has |20/30 − .6827| + |28/30 − .9545| = 0.037,
    5 has |0.7 − .6827| + |1 − .9545| = 0.063."""
    s = summarize_regime(_records(), "dense_clean", "generative")
    assert s["worst_replicate"] == 5
    worst = abs(0.7 - 0.6827) + abs(1.0 - 0.9545)
    assert s["worst_replicate_calibration_error"] == pytest.approx(worst, rel=1e-12)


def test_summary_states_recovery_in_prior_units() -> None:
    """Mean |error| over replicates over the HalfNormal prior's sd; contraction 1 − E[sd²]/Var(prior)."""
    s = summarize_regime(_records(), "dense_clean", "generative")
    mean_err = {"sigma_base_thick": 0.2, "sigma_base_vel": 0.3, "beta_thick": 6.0, "beta_vel": 0.03}
    for p in PARAMS:
        prior = stats.halfnorm(scale=PRIOR_SIGMA[p])
        rec = s["recovery"][p]
        assert rec["mean_abs_error"] == pytest.approx(mean_err[p], rel=1e-12), p
        assert rec["mean_abs_error_over_prior_sd"] == pytest.approx(mean_err[p] / prior.std(), rel=1e-12), p
        assert rec["contraction"] == pytest.approx(1 - (0.1**2 + 0.3**2) / 2 / prior.var(), rel=1e-12), p
    # β_thick is never identified (it multiplies speed 0), so the headline leaves it out
    identified = ("sigma_base_thick", "sigma_base_vel", "beta_vel")
    expected = np.mean([mean_err[p] / stats.halfnorm(scale=PRIOR_SIGMA[p]).std() for p in identified])
    assert s["recovery_error_identified"] == pytest.approx(expected, rel=1e-12)


def test_summary_counts_divergent_fits_and_skips_a_missing_r_hat() -> None:
    s = summarize_regime(_records(), "dense_clean", "generative")
    assert s["fits_with_divergences"] == 1
    assert s["r_hat_max_worst"] == 1.01
    assert "truth_first_fraction" not in s


def test_physical_summary_ranks_the_true_member_and_judges_only_sigma_base() -> None:
    s = summarize_regime(
        _records(truth_rank=(1, 2), truth_weight=(0.8, 0.4)), "dense_clean", "physical"
    )
    assert s["truth_first_fraction"] == 0.5
    assert s["truth_rank_counts"] == {"1": 1, "2": 1}
    assert s["truth_weight_mean"] == pytest.approx(0.6, rel=1e-15)
    expected = np.mean([m / stats.halfnorm(scale=PRIOR_SIGMA[p]).std()
                        for p, m in (("sigma_base_thick", 0.2), ("sigma_base_vel", 0.3))])
    assert s["recovery_error_identified"] == pytest.approx(expected, rel=1e-12)


# --- coverage_gates ----------------------------------------------------------------------------


def _figures(error: float | None, first: float | None) -> dict[str, Any]:
    return {
        "generative": {"dense_clean": {} if error is None else {"calibration_error": error}},
        "physical": {"dense_clean": {} if first is None else {"truth_first_fraction": first}},
    }


def test_gates_state_bound_value_and_margin() -> None:
    generative, physical = coverage_gates(_figures(0.03, 0.9), CoverageGate())
    assert generative["figure"] == "generative.dense_clean.calibration_error"
    assert (generative["comparison"], generative["bound"], generative["value"]) == ("≤", 0.05, 0.03)
    assert generative["margin"] == pytest.approx(0.02, abs=1e-15) and generative["passed"]
    assert physical["figure"] == "physical.dense_clean.truth_first"
    assert (physical["comparison"], physical["bound"], physical["value"]) == ("≥", 0.95, 0.9)
    assert physical["margin"] == pytest.approx(-0.05, abs=1e-15) and not physical["passed"]


def test_a_value_on_the_bound_passes_and_a_tighter_gate_fails_it() -> None:
    (on_bound, _) = coverage_gates(_figures(0.05, 1.0), CoverageGate())
    assert on_bound["passed"] and on_bound["margin"] == 0.0
    tight = coverage_gates(_figures(0.05, 1.0), CoverageGate(max_calibration_error=0.04, min_truth_first=1.0))
    assert [g["passed"] for g in tight] == [False, True]
    assert tight[0]["bound"] == 0.04


def test_an_unmeasured_figure_has_no_gate() -> None:
    assert [g["figure"] for g in coverage_gates(_figures(0.01, None), CoverageGate())] == [
        "generative.dense_clean.calibration_error"
    ]
    assert [g["figure"] for g in coverage_gates(_figures(math.nan, 0.97), CoverageGate())] == [
        "physical.dense_clean.truth_first"
    ]
    assert coverage_gates({}, CoverageGate()) == []


# --- physical_dataset --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def physical() -> Prepared:
    return physical_dataset(seed=7, truth_member=2, members=3, grid=(6, 8))


def test_physical_dataset_is_prepared_by_fusion_under_compat_fixed(physical: Prepared) -> None:
    p = physical
    assert isinstance(p, Prepared) and p.compat == "fixed"
    assert p.n_members == 3 and len(p.member_ids) == 3 and len(set(p.member_ids)) == 3
    assert p.F.shape == (3, p.n_points) and p.n_points > 0
    assert p.n_dhdt == int(np.sum(p.stream == THICK)) > 0
    assert p.n_vel == int(np.sum(p.stream == VEL)) > 0
    assert p.n_dhdt + p.n_vel == p.n_points
    assert np.all(np.isfinite(p.y_obs)) and np.all(p.sigma_obs > 0)


def test_the_true_member_made_the_observations(physical: Prepared) -> None:
    """Standardised misfit Σ((y − F_m)/σ)² is smallest for the member the data were drawn from."""
    p = physical
    misfit = np.sum(((p.y_obs - p.F) / p.sigma_obs) ** 2, axis=1)
    assert int(np.argmin(misfit)) == 2, misfit
    other = physical_dataset(seed=7, truth_member=0, members=3, grid=(6, 8))
    misfit0 = np.sum(((other.y_obs - other.F) / other.sigma_obs) ** 2, axis=1)
    assert int(np.argmin(misfit0)) == 0, misfit0


def test_physical_dataset_is_a_function_of_its_seed(physical: Prepared) -> None:
    again = physical_dataset(seed=7, truth_member=2, members=3, grid=(6, 8))
    for name in ("y_obs", "sigma_obs", "F", "speed", "stream"):
        np.testing.assert_array_equal(getattr(again, name), getattr(physical, name), err_msg=name)
    assert again.member_ids == physical.member_ids
    other = physical_dataset(seed=8, truth_member=2, members=3, grid=(6, 8))
    assert not np.array_equal(other.y_obs, physical.y_obs)
