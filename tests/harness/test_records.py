"""Gate records as each check returns them (its own gate function on figures shaped as it writes them), and headlines."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from fusion.diagnostics import THRESHOLDS
from harness.checks.agreement import agreement_gates
from harness.checks.coverage import coverage_gates
from harness.checks.convergence import convergence_gates
from harness.gates import Gates
from harness.checks.parity import parity_gates
from harness.report.records import headline
from harness.checks.sbc import SBCGate, sbc_gates
from harness.checks.stability import stability_gates

G = Gates()
CONVERGENCE = {
    "r_hat_max": 1.004,
    "ess_bulk_per_chain_min": 291.2,
    "ess_tail_per_chain_min": 176.5,
    "divergences": 0,
    "e_bfmi_min": 0.84,
    "per_variable": {"w": {"r_hat": [1.0]}},
}
SBC = {
    "generative": {
        "chi2_p": {"beta_vel": 0.57, "loglik": 0.74},
        "rank_w": 0.21,
        "ecdf_inside_band": {"beta_vel": True, "loglik": True},
        "failed_fraction": 0.03,
    },
    "tempered": {"chi2_p": {"loglik": 0.0}},
}
COVERAGE = {
    "generative": {"dense_clean": {"calibration_error": 0.004}},
    "physical": {"dense_clean": {"truth_first_fraction": 1.0, "calibration_error": 0.25}},
}
PARITY = {
    "prepared": {"passed": True, "F": "identical"},
    "plugin_weights": {"passed": True, "cells_different": 0},
    "statistical": {"passed": True, "max_ratio": 0.16},
    "impact": {"max_abs_weight_change": 6.9e-06},
}
AGREEMENT = {
    "max_weight_shift_sd": 0.91,
    "sd_ratio_min": 0.8,
    "sd_ratio_max": 1.3,
    "pareto_k": 7.0,
    "projection": {"weighted_mean_shift_sd": 0.2},
}
STABILITY = {"max_sd": 0.003, "top_agreement": 1.0}

GATES: dict[str, tuple[Callable[[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]] = {
    "convergence": (lambda f: convergence_gates(f, THRESHOLDS), CONVERGENCE),
    "sbc": (lambda f: sbc_gates(f["generative"], SBCGate()), SBC),
    "coverage": (lambda f: coverage_gates(f, G.coverage), COVERAGE),
    "parity": (lambda f: parity_gates(f, G.parity.stat_k), PARITY),
    "stability": (lambda f: stability_gates(f, G.stability.max_sd), STABILITY),
    "agreement": (lambda f: agreement_gates(f, G.agreement), AGREEMENT),
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("convergence", {"r_hat_max", "ess_bulk_per_chain_min", "ess_tail_per_chain_min", "divergences", "e_bfmi_min"}),
        ("sbc", {"largest rank non-uniformity w (χ²)", "ECDF outside the simultaneous band", "failed fits (fraction)"}),
        ("coverage", {"generative.dense_clean.calibration_error", "physical.dense_clean.truth_first"}),
        ("parity", {"bit-exact components differing (of 2)", "statistical: max |Δ| / (4·√(mcse² + mcse²))"}),
        ("stability", {"max_sd"}),
        (
            "agreement",
            {
                "max weight shift (NUTS sd)",
                "min sd ratio (Laplace/NUTS)",
                "max sd ratio (Laplace/NUTS)",
                "projection median shift (NUTS sd)",
            },
        ),
    ],
)
def test_every_gate_is_a_record_and_passes(name: str, expected: set[str]) -> None:
    fn, figures = GATES[name]
    found = fn(figures)
    assert {g["figure"] for g in found} == expected
    assert all(g["passed"] and g["margin"] >= 0 for g in found), found
    for g in found:  # structured: the bound is a number, the threshold text is rendered from it
        assert set(g) >= {"figure", "comparison", "bound", "value", "margin", "unit", "passed"}
        assert g["comparison"] in ("≤", "≥") and isinstance(g["bound"], float)
        assert g["threshold"].startswith(f"{g['comparison']} {g['bound']:g}")


@pytest.mark.parametrize(
    ("name", "path", "bad", "figure", "margin"),
    [
        ("convergence", ("r_hat_max",), 1.02, "r_hat_max", -0.01),
        ("sbc", ("generative", "rank_w"), 0.6, "largest rank non-uniformity w (χ²)", -0.1),
        (
            "coverage",
            ("generative", "dense_clean", "calibration_error"),
            0.08,
            "generative.dense_clean.calibration_error",
            -0.03,
        ),
        ("coverage", ("physical", "dense_clean", "truth_first_fraction"), 0.9, "physical.dense_clean.truth_first", -0.05),
        ("stability", ("max_sd",), 0.05, "max_sd", -0.03),
        ("agreement", ("sd_ratio_max",), 2.5, "max sd ratio (Laplace/NUTS)", -0.5),
    ],
)
def test_planted_red_figure_becomes_the_failing_headline(name, path, bad, figure, margin) -> None:
    fn, record = GATES[name]
    figures = copy.deepcopy(record)
    node = figures
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    head = headline("fail", fn(figures), [])
    assert head["figure"] == figure and not head["passed"]
    assert head["margin"] == pytest.approx(margin)


def test_parity_counts_components_that_differ() -> None:
    figures = {**PARITY, "prepared": {"passed": False, "F": "3 values differ"}}
    head = headline("fail", parity_gates(figures), [])
    assert (head["figure"], head["value"], head["passed"]) == ("bit-exact components differing (of 2)", 1, False)


def test_a_tightened_bound_moves_the_gate_not_the_figure() -> None:
    strict = agreement_gates(AGREEMENT, G.agreement.model_copy(update={"weight_shift_sd_max": 0.5}))
    shift = next(g for g in strict if g["figure"] == "max weight shift (NUTS sd)")
    assert (shift["bound"], shift["value"], shift["passed"]) == (0.5, 0.91, False)
    assert shift["margin"] == pytest.approx(-0.41)


def test_a_check_without_gates_headlines_its_first_message() -> None:
    head = headline("error", [], ["raised: ValueError: boom"])
    assert head == {
        "figure": "raised: ValueError: boom",
        "threshold": "",
        "value": None,
        "margin": None,
        "passed": False,
    }
