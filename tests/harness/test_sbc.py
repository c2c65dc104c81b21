"""Rank statistics: thinning, jittered PITs, the χ² and ECDF-band tests' size and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.checks.sbc import SBCGate, fit_problems
from harness.sim.ranks import ecdf_band, jittered_pit, shape_of, thin_indices, uniformity


def test_thinning_keeps_about_one_draw_per_effective_sample() -> None:
    idx = thin_indices(2, 500, 100.0)
    assert idx.size == 2 * 50  # step ⌈1000/100⌉ = 10 per chain
    assert np.all(np.diff(idx[:50]) == 10) and idx[50] == 500
    assert thin_indices(2, 500, 5000.0).size == 1000  # antithetic chains: ESS > draws, keep all
    assert thin_indices(2, 500, float("nan")).size == 2  # undefined ESS: one draw per chain


def test_jittered_pit_is_uniform_whatever_each_fits_draw_count() -> None:
    rng = np.random.default_rng(0)
    n_thinned = rng.integers(20, 400, 5000)
    ranks = rng.integers(0, n_thinned + 1)  # uniform ranks 0..L_i
    pit = jittered_pit(ranks, n_thinned, seed=1)
    assert stats.kstest(pit, "uniform").pvalue > 0.01


def test_tests_hold_their_size_under_the_null() -> None:
    """Uniform ranks reject at about the nominal rate (here α = 0.1 for one quantity, two tests)."""
    gate = SBCGate(alpha=0.1, n_simulations=2000)
    rng = np.random.default_rng(2)
    rejects = [uniformity(rng.uniform(size=(200, 1)), ["q"], gate)["q"]["reject"] for _ in range(300)]
    rate = float(np.mean(rejects))
    assert 0.02 < rate < 0.16, rate


@pytest.mark.parametrize(
    ("a", "b", "word"),
    [(0.6, 0.6, "∪-shaped"), (2.5, 2.5, "∩-shaped"), (1.6, 0.8, "piled high"), (0.8, 1.6, "piled low")],
)
def test_tests_catch_departures_and_name_them(a: float, b: float, word: str) -> None:
    pit = np.random.default_rng(3).beta(a, b, size=(400, 1))
    res = uniformity(pit, ["q"], SBCGate(n_simulations=2000))["q"]
    assert res["reject"]
    assert word in shape_of(res)


def test_band_is_arvizs_simultaneous_band() -> None:
    from arviz_stats.ecdf_utils import ecdf_pit

    x, lo, hi = ecdf_band(100, 0.99, 500)
    x2, _, lo2, hi2 = ecdf_pit(np.linspace(0, 1, 100), 0.99, 500, rng=np.random.default_rng(214))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(hi, hi2)
    assert np.all(lo <= x + 1e-12) and np.all(hi >= x - 1e-12)


def test_every_failing_figure_is_named() -> None:
    where = {"r_hat_max_at": "loglik", "ess_bulk_min_at": "beta_vel", "ess_tail_min_at": "beta_vel"}
    common = {**where, "chains": 2, "transitions": 1000, "e_bfmi_min_chain": 1}
    ok = {
        **common, "r_hat_max": 1.01, "ess_bulk_min": 300.0, "ess_tail_min": 200.0, "ess_bulk_per_chain_min": 150.0,
        "ess_tail_per_chain_min": 100.0, "divergences": 0, "e_bfmi_min": 0.8,
    }
    assert fit_problems({"convergence": ok}, SBCGate()) == []
    bad = {
        **common, "r_hat_max": float("nan"), "ess_bulk_min": 10.0, "ess_tail_min": 5.0, "ess_bulk_per_chain_min": 5.0,
        "ess_tail_per_chain_min": 2.5, "divergences": 2, "e_bfmi_min": 0.1,
    }
    problems = " ".join(fit_problems({"convergence": bad}, SBCGate()))
    for words in ("R-hat nan", "bulk ESS 5.0 per chain < 25", "tail ESS 2.5 per chain < 25", "2 divergent", "E-BFMI 0.100"):
        assert words in problems, words


@pytest.mark.parametrize("chains", [1, 2, 4])
@pytest.mark.parametrize("ess", [0.5, 13.0, 99.9, 250.0, 1e4, float("nan"), 0.0])
def test_thin_indices_keep_every_step_th_draw_of_each_chain(chains: int, ess: float) -> None:
    """ArviZ's `thin` at our factor keeps draws 0, step, 2·step, … of each chain (factor ⌈draws/ESS⌉)."""
    draws = 501
    step = max(1, math.ceil(chains * draws / ess)) if math.isfinite(ess) and ess > 0 else draws
    want = [c * draws + i for c in range(chains) for i in range(0, draws, step)]
    assert thin_indices(chains, draws, ess).tolist() == want
