"""Gates and headlines read from each check's figures and thresholds (shapes as the checks write them)."""

from __future__ import annotations

import pytest

from harness.records import gates, headline

CONVERGENCE = (
    {
        "r_hat_max": 1.004,
        "ess_bulk_per_chain_min": 291.2,
        "ess_tail_per_chain_min": 176.5,
        "divergences": 0,
        "e_bfmi_min": 0.84,
        "per_variable": {"w": {"r_hat": [1.0]}},
    },
    {
        "r_hat_max": "≤ 1.01",
        "ess_bulk": "≥ 100 per chain",
        "ess_tail": "≥ 100 per chain",
        "divergences": "≤ 0",
        "e_bfmi": "≥ 0.3 every chain",
    },
)
SBC = (
    {
        "generative": {
            "chi2_p": {"beta_vel": 0.57, "loglik": 0.74},
            "ecdf_inside_band": {"beta_vel": True, "loglik": True},
            "failed_fraction": 0.03,
        },
        "tempered": {"chi2_p": {"loglik": 0.0}},
    },
    {"alpha_per_test": 0.001, "max_failed_fraction": 0.05, "per_fit": {"rhat_max": 1.05}},
)
COVERAGE = (
    {
        "generative": {"dense_clean": {"calibration_error": 0.004}},
        "physical": {"dense_clean": {"truth_first_fraction": 1.0, "calibration_error": 0.25}},
    },
    {
        "generative_dense_clean_max_calibration_error": 0.05,
        "physical_dense_clean_min_truth_first": 0.95,
        "nominal_1sigma": 0.6827,
    },
)
PARITY = (
    {
        "prepared": {"passed": True, "F": "identical"},
        "plugin_weights": {"passed": True, "cells_different": 0},
        "statistical": {"passed": True, "max_ratio": 0.16},
        "impact": {"max_abs_weight_change": 6.9e-06},
    },
    {"prepared": "bit-exact: ...", "statistical": "|Δmean| ≤ 4·√(...)"},
)
AGREEMENT = (
    {
        "max_weight_shift_sd": 0.91,
        "sd_ratio_min": 0.8,
        "sd_ratio_max": 1.3,
        "pareto_k": 7.0,
        "projection": {"weighted_mean_shift_sd": 0.2},
    },
    {
        "weight_shift": "|E_L[w] − E_N[w]| ≤ 1 NUTS sd, every member",
        "sd_ratio": "sd_L/sd_N in [0.5, 2.0], every member",
        "projection": "medians within 1 NUTS sd",
        "pareto_k": "reported; ≤ 0.7 would make the Gaussian a reliable proposal",
    },
)
STABILITY = ({"max_sd": 0.003, "top_agreement": 1.0}, {"max_sd": 0.02, "subsample_size": 2000, "n_seeds": 5})


@pytest.mark.parametrize(
    ("name", "record", "expected"),
    [
        (
            "convergence",
            CONVERGENCE,
            {"r_hat_max", "ess_bulk_per_chain_min", "ess_tail_per_chain_min", "divergences", "e_bfmi_min"},
        ),
        ("sbc", SBC, {"min χ² p (beta_vel)", "ECDF outside the simultaneous band", "failed fits (fraction)"}),
        (
            "coverage",
            COVERAGE,
            {"generative.dense_clean.calibration_error", "physical.dense_clean.truth_first"},
        ),
        (
            "parity",
            PARITY,
            {"bit-exact components differing (of 2)", "statistical: max |Δ| / (4·√(mcse² + mcse²))"},
        ),
        ("stability", STABILITY, {"max_sd"}),
        (
            "agreement",
            AGREEMENT,
            {
                "max weight shift (NUTS sd)",
                "min sd ratio (Laplace/NUTS)",
                "max sd ratio (Laplace/NUTS)",
                "projection median shift (NUTS sd)",
            },
        ),
    ],
)
def test_every_gate_is_read_and_passes(name: str, record: tuple, expected: set[str]) -> None:
    found = gates(name, *record)
    assert {g["figure"] for g in found} == expected
    assert all(g["passed"] and g["margin"] >= 0 for g in found), found


@pytest.mark.parametrize(
    ("name", "record", "path", "bad", "figure", "margin"),
    [
        ("convergence", CONVERGENCE, ("r_hat_max",), 1.02, "r_hat_max", -0.01),
        ("sbc", SBC, ("generative", "chi2_p", "loglik"), 0.0004, "min χ² p (loglik)", -0.0006),
        (
            "coverage",
            COVERAGE,
            ("generative", "dense_clean", "calibration_error"),
            0.08,
            "generative.dense_clean.calibration_error",
            -0.03,
        ),
        (
            "coverage",
            COVERAGE,
            ("physical", "dense_clean", "truth_first_fraction"),
            0.9,
            "physical.dense_clean.truth_first",
            -0.05,
        ),
        ("stability", STABILITY, ("max_sd",), 0.05, "max_sd", -0.03),
        ("agreement", AGREEMENT, ("sd_ratio_max",), 2.5, "max sd ratio (Laplace/NUTS)", -0.5),
    ],
)
def test_planted_red_figure_becomes_the_failing_headline(name, record, path, bad, figure, margin) -> None:
    import copy

    figures = copy.deepcopy(record[0])
    node = figures
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    head = headline("fail", gates(name, figures, record[1]), [])
    assert head["figure"] == figure and not head["passed"]
    assert head["margin"] == pytest.approx(margin)


def test_parity_counts_components_that_differ() -> None:
    figures = {**PARITY[0], "prepared": {"passed": False, "F": "3 values differ"}}
    head = headline("fail", gates("parity", figures, PARITY[1]), [])
    assert (head["figure"], head["value"], head["passed"]) == (
        "bit-exact components differing (of 2)",
        1,
        False,
    )


def test_a_check_without_numeric_bounds_headlines_its_first_message() -> None:
    head = headline("error", gates("agreement", {"x": "text"}, {"x": "by eye"}), ["raised: ValueError: boom"])
    assert head == {
        "figure": "raised: ValueError: boom",
        "threshold": "",
        "value": None,
        "margin": None,
        "passed": False,
    }
