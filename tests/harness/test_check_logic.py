"""The judging logic of the statistical parity and the convergence gate, on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from harness.testing import GOLDEN_DIR
from harness.checks.convergence import THRESHOLDS, diagnose, gate
from harness.testing.golden import read_table
from harness.checks.parity.statistical import statistical_parity

IDS = ("run1", "run2", "run3", "run4", "run5")


@pytest.fixture(scope="module")
def prototype() -> xr.DataTree:
    with xr.open_datatree(GOLDEN_DIR / "small" / "sampled_posterior.nc") as tree:
        return tree.load()


def as_fusion(
    trace: xr.DataTree, order: list[int] | None = None, shift: dict[str, float] | None = None
) -> xr.DataTree:
    """The prototype's draws dressed as a FUSION trace: `w` on a labelled `member` dim, optionally reordered/shifted."""
    post = trace["posterior"].to_dataset()[
        ["sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel", "w"]
    ]
    post = post.rename({"w_dim_0": "member"}).assign_coords(member=list(IDS))
    if order is not None:
        post = post.isel(member=order)
    for name, delta in (shift or {}).items():
        post[name] = post[name] + delta
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": trace["sample_stats"].to_dataset()})


def test_identical_draws_pass_and_members_align_by_label(prototype: xr.DataTree) -> None:
    summary = read_table(GOLDEN_DIR / "small" / "posterior_summary.csv")
    result, table = statistical_parity(as_fusion(prototype, order=[4, 3, 2, 1, 0]), prototype, summary, IDS)
    assert result.passed, result.messages
    w = table.set_index("quantity").loc["w[run1]"]
    assert w["delta"] == 0.0  # compared by label, though FUSION listed run1 last


def test_a_shift_beyond_the_bound_names_the_quantity_and_the_ratio(prototype: xr.DataTree) -> None:
    summary = read_table(GOLDEN_DIR / "small" / "posterior_summary.csv")
    result, table = statistical_parity(
        as_fusion(prototype, shift={"sigma_base_vel": 0.2}), prototype, summary, IDS
    )
    assert not result.passed and len(result.messages) == 1
    row = table.set_index("quantity").loc["sigma_base_vel"]
    assert row["tolerance"] == pytest.approx(4 * math.hypot(row["fusion_mcse"], row["prototype_mcse"]))
    assert result.messages[0].startswith(
        f"sigma_base_vel: |Δmean| {abs(row['delta']):.4g} > 4·√(mcse²+mcse²)"
    )
    assert f"{row['ratio']:.2f}× the bound" in result.messages[0]


def test_noise_means_are_read_from_the_summary_file(prototype: xr.DataTree) -> None:
    summary = read_table(GOLDEN_DIR / "small" / "posterior_summary.csv")
    summary.loc[summary["var"] == "beta_vel", "mean"] += 1.0  # a summary that disagrees with the draws
    result, _ = statistical_parity(as_fusion(prototype), prototype, summary, IDS)
    assert [m.split(":")[0] for m in result.messages] == ["beta_vel"]


GOOD = {
    "r_hat_max": 1.002,
    "r_hat_max_at": "beta_vel",
    "ess_bulk_per_chain_min": 250.0,
    "ess_bulk_min": 1000.0,
    "ess_bulk_min_at": "w[run2]",
    "ess_tail_per_chain_min": 180.0,
    "ess_tail_min": 720.0,
    "ess_tail_min_at": "sigma_base_thick",
    "divergences": 0,
    "transitions": 4000,
    "e_bfmi_min": 0.7,
    "e_bfmi_min_chain": 2,
    "chains": 4,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"r_hat_max": 1.0134}, "max R-hat 1.0134 > 1.01 (over by 0.0034) at beta_vel"),
        (
            {"ess_bulk_per_chain_min": 61.5, "ess_bulk_min": 246.0},
            "min bulk ESS 61.5 per chain < 100 (short by 38.5; 246.0 over 4 chains) at w[run2]",
        ),
        (
            {"ess_tail_per_chain_min": 99.9, "ess_tail_min": 399.6},
            "min tail ESS 99.9 per chain < 100 (short by 0.1; 399.6 over 4 chains) at sigma_base_thick",
        ),
        ({"divergences": 3}, "3 divergent transitions > 0 (0.07% of 4000 draws)"),
        ({"e_bfmi_min": 0.25}, "min E-BFMI 0.250 < 0.3 (short by 0.050) in chain 2"),
        ({"r_hat_max": math.nan}, "max R-hat nan > 1.01 (over by nan) at beta_vel"),
    ],
)
def test_each_figure_fails_alone_and_says_by_how_much(change: dict, message: str) -> None:
    assert gate(GOOD) == (True, [])
    assert gate({**GOOD, **change}) == (False, [message])


def test_thresholds_are_designs() -> None:
    t = THRESHOLDS
    assert (t.r_hat_max, t.ess_bulk_min, t.ess_tail_min, t.divergences_max, t.e_bfmi_min) == (1.01, 100, 100, 0, 0.3)
    assert gate({**GOOD, "r_hat_max": 1.01, "ess_tail_per_chain_min": 100.0, "e_bfmi_min": 0.3})[0]


def test_diagnose_labels_members_and_counts_divergences(prototype: xr.DataTree) -> None:
    trace = as_fusion(prototype)
    stats = trace["sample_stats"].to_dataset()
    diverging = np.zeros_like(stats["diverging"].values)
    diverging[1, 7] = True
    trace["sample_stats"] = xr.DataTree(stats.assign(diverging=(stats["diverging"].dims, diverging)))
    figures = diagnose(trace)
    assert figures["divergences"] == 1 and figures["chains"] == 2 and figures["draws"] == 300
    assert figures["per_variable"]["w"]["labels"] == [f"w[{m}]" for m in IDS]
    assert figures["ess_tail_min_at"] == "sigma_base_thick"
