"""Unit tests of the seed-stability check's pure parts (`harness.checks.stability`): the figures
across seeds, the gate, and E_post[w] from draws on a hand-built prepared case.

Standard deviations come from `statistics.stdev`, log-densities from `scipy.stats.norm.logpdf`;
none is read back from the module under test.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.noise import NoiseSettings
from harness.checks.stability import (
    StabilitySettings,
    max_sd_interval,
    posterior_weights,
    seed_list,
    seed_stability,
    stability_gates,
)
from harness.verdict import decide, sd_chi2

# three seeds, handed over out of order (parallel workers finish in any order)
WEIGHTS = {
    44: {"run1": 0.6, "run2": 0.1, "run10": 0.3},
    42: {"run1": 0.5, "run2": 0.3, "run10": 0.2},
    43: {"run10": 0.15, "run2": 0.45, "run1": 0.4},  # another key order: alignment is by label
}
BY_MEMBER = {m: [WEIGHTS[s][m] for s in (42, 43, 44)] for m in ("run1", "run2", "run10")}


# --- seed_stability ----------------------------------------------------------------------------


def test_sigma_and_mean_per_member_across_seeds() -> None:
    f = seed_stability(WEIGHTS)
    assert f["seeds"] == [42, 43, 44]
    assert sorted(f["members"]) == ["run1", "run10", "run2"]
    for m, values in BY_MEMBER.items():
        assert f["sd"][m] == pytest.approx(statistics.stdev(values), rel=1e-12), m
        assert f["mean"][m] == pytest.approx(statistics.fmean(values), rel=1e-12), m
    assert f["max_sd_member"] == "run2"  # [0.3, 0.45, 0.1] spreads most
    assert f["max_sd"] == pytest.approx(statistics.stdev(BY_MEMBER["run2"]), rel=1e-12)


def test_top_member_per_seed_and_how_often_the_seeds_agree() -> None:
    f = seed_stability(WEIGHTS)
    assert f["top_member_by_seed"] == {"42": "run1", "43": "run2", "44": "run1"}
    assert f["modal_top_member"] == "run1"
    assert f["top_agreement"] == pytest.approx(2 / 3, rel=1e-15)


def test_the_table_has_one_row_per_seed_in_seed_order() -> None:
    table = seed_stability(WEIGHTS)["table"]
    assert list(table.index) == [42, 43, 44]
    for m, values in BY_MEMBER.items():
        assert table[m].tolist() == values, m


def test_one_seed_has_no_spread_and_agrees_with_itself() -> None:
    f = seed_stability({7: {"run1": 0.25, "run2": 0.75}})
    assert f["sd"] == {"run1": 0.0, "run2": 0.0}
    assert f["max_sd"] == 0.0
    assert f["top_agreement"] == 1.0 and f["modal_top_member"] == "run2"


def test_identical_seeds_have_zero_spread() -> None:
    """Zero to rounding: the mean of three 0.7s is not 0.7 in binary, so σ is ~1e-16, not 0."""
    w = {"run1": 0.1, "run2": 0.2, "run3": 0.7}
    f = seed_stability({1: w, 2: dict(w), 3: dict(reversed(list(w.items())))})
    assert f["max_sd"] == pytest.approx(0.0, abs=1e-15) and f["top_agreement"] == 1.0
    assert f["modal_top_member"] == "run3"


def test_a_member_missing_under_a_seed_names_member_and_seed() -> None:
    with pytest.raises(ValueError, match=r"member labels differ between seeds") as err:
        seed_stability({1: {"run1": 0.5, "run3": 0.5}, 2: {"run1": 0.5, "run2": 0.5}})
    assert "'run2': [1]" in str(err.value) and "'run3': [2]" in str(err.value)


# --- stability_gates ---------------------------------------------------------------------------


def test_gate_record_of_the_largest_sigma() -> None:
    (g,) = stability_gates({"max_sd": 0.005}, 0.02)
    assert (g["figure"], g["comparison"], g["bound"], g["value"]) == ("max_sd", "≤", 0.02, 0.005)
    assert g["unit"] == "weight"
    assert g["margin"] == pytest.approx(0.015, abs=1e-15) and g["passed"]
    (bad,) = stability_gates({"max_sd": 0.03}, 0.02)
    assert bad["margin"] == pytest.approx(-0.01, abs=1e-15) and not bad["passed"]


def test_a_sigma_on_the_bound_passes() -> None:
    (g,) = stability_gates({"max_sd": 0.02}, 0.02)
    assert g["passed"] and g["margin"] == 0.0


def test_no_measured_sigma_no_gate() -> None:
    assert stability_gates({}, 0.02) == []
    assert stability_gates({"max_sd": math.nan}, 0.02) == []


def _table(sds: list[float], seeds: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(0.3 + rng.normal(size=(seeds, len(sds))) * sds, columns=[f"run{i}" for i in range(len(sds))])


def test_gate_record_of_the_largest_sigma_with_its_interval() -> None:
    table = _table([0.0005, 0.0001, 0.0])
    (g,) = stability_gates({}, 0.02, decide(max_sd_interval(table, 0.95), "≤", 0.02))
    assert (g["figure"], g["comparison"], g["bound"]) == ("max_sd", "≤", 0.02)
    assert g["value"] == pytest.approx(table.std(ddof=1).max(), rel=1e-12) and g["unit"] == "weight"
    assert g["interval"][0] < g["value"] < g["interval"][1] < 0.02
    assert g["passed"] and g["verdict"] == "pass" and g["margin_hw"] > 1
    (bad,) = stability_gates({}, 0.02, decide(max_sd_interval(_table([0.3, 0.0]), 0.95), "≤", 0.02))
    assert not bad["passed"] and bad["verdict"] == "fail" and bad["margin_hw"] < -1


def test_the_interval_is_simultaneous_over_members() -> None:
    """Each member's χ² interval at 1 − (1 − level)/members: wider than one member's alone."""
    table = _table([0.01, 0.01])
    both = max_sd_interval(table, 0.9)
    alone = sd_chi2(table["run0"].to_numpy(), 0.9)
    assert both.upper >= alone.upper * 1.01 and both.n == 5 and "Bonferroni over 2" in both.method


def test_extra_seeds_continue_after_the_first_batch() -> None:
    st = StabilitySettings(seeds=(7, 8, 9), max_seeds=9)
    assert seed_list(st) == [7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert st.plan().sizes() == [3, 6, 9]


# --- posterior_weights -------------------------------------------------------------------------

STREAM = np.array([VEL, THICK, VEL, THICK, VEL], dtype=np.int8)  # interleaved: labels, not position


def _prepared() -> Prepared:
    """Five points, three members; values exact in float32."""
    return Prepared(
        y_obs=np.array([1.5, -0.5, 2.0, 0.25, -1.0], dtype=np.float32),
        sigma_obs=np.array([0.5, 0.25, 1.0, 0.5, 0.75], dtype=np.float32),
        F=np.array([
            [1.0, -0.25, 2.5, 0.0, -1.5],
            [2.0, -1.0, 1.5, 0.5, 0.0],
            [1.5, 0.5, 3.0, -0.5, -0.5],
        ]),  # fmt: skip
        speed=np.array([120.0, 0.0, 40.0, 0.0, 300.0]),
        n_dhdt=2,
        n_vel=3,
        member_ids=("run1", "run2", "run10"),
        stream=STREAM,
    )


DRAWS = np.array([  # (D, 4): sigma_base_thick, sigma_base_vel, beta_thick, beta_vel
    [0.3, 0.8, 0.05, 0.01],
    [0.9, 0.2, 0.10, 0.002],
    [0.1, 1.5, 0.00, 0.03],
])  # fmt: skip


def _expected_weights(
    p: Prepared, draws: np.ndarray, alpha: tuple[float, float], inflation: float
) -> np.ndarray:
    """E_d[softmax_m(Σ_s α_s/N_s · Σ_{i∈s} log N(y_i; F_mi, σ²_tot,i))], point by point with scipy."""
    y, sd_obs, speed = p.y_obs.astype(np.float64), p.sigma_obs.astype(np.float64), p.speed
    w = np.zeros(p.n_members)
    for sb_t, sb_v, b_t, b_v in draws:
        scaled = np.zeros(p.n_members)
        for i, s in enumerate(STREAM):
            sb, beta = (sb_t, b_t) if s == THICK else (sb_v, b_v)
            var = sd_obs[i] ** 2 + (inflation**2 if s == VEL else 0.0) + sb**2 * (1 + beta * speed[i])
            n_s = int(np.sum(STREAM == s))
            scaled += alpha[s] / n_s * stats.norm.logpdf(y[i], p.F[:, i], math.sqrt(var))
        e = np.exp(scaled - scaled.max())
        w += e / e.sum()
    return w / len(draws)


def test_posterior_weights_average_the_members_softmax_over_draws() -> None:
    p = _prepared()
    w = posterior_weights(p, DRAWS)
    assert list(w) == ["run1", "run2", "run10"]
    expected = _expected_weights(p, DRAWS, (0.5, 0.5), 5.0)  # NoiseSettings() defaults
    np.testing.assert_allclose([w[m] for m in p.member_ids], expected, rtol=1e-10)
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-14)


def test_posterior_weights_follow_the_settings_they_are_given() -> None:
    p = _prepared()
    settings = NoiseSettings(alpha_thick=0.9, alpha_vel=0.1, velocity_inflation=1.0)
    w = posterior_weights(p, DRAWS, settings)
    expected = _expected_weights(p, DRAWS, (0.9, 0.1), 1.0)
    np.testing.assert_allclose([w[m] for m in p.member_ids], expected, rtol=1e-10)
    default = posterior_weights(p, DRAWS)
    assert abs(w["run1"] - default["run1"]) > 1e-3  # the settings change the answer


def test_one_draw_gives_that_draws_weights() -> None:
    p = _prepared()
    w = posterior_weights(p, DRAWS[1:2])
    expected = _expected_weights(p, DRAWS[1:2], (0.5, 0.5), 5.0)
    np.testing.assert_allclose([w[m] for m in p.member_ids], expected, rtol=1e-10)
