"""Seed stability (check 6): weights across subsample seeds, aligned by member label."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import CheckContext
from harness.testing import check_context
from harness.checks.stability import StabilitySettings, run_check, seed_stability


def _ctx(tmp_path: Path) -> CheckContext:
    return check_context(tmp_path, case="example")


def test_bundled_example_is_seed_stable(tmp_path: Path) -> None:
    result = run_check(_ctx(tmp_path))
    assert result.status == "pass", result.messages
    f = result.figures
    # decided on its interval (seeds added in batches while undecided), not on the point estimate
    assert f["verdict"] == "pass" and f["max_sd"] <= f["max_sd_interval"][1] < StabilitySettings().max_sd
    assert len(f["seeds"]) in StabilitySettings().plan().sizes() and f["looks"][-1] == [len(f["seeds"]), "pass"]
    assert f["top_agreement"] == 1.0
    assert len(list(tmp_path.glob("seeds/seed*/_SUCCESS"))) == len(f["seeds"])
    assert (tmp_path / result.plots[0]).stat().st_size > 1000
    # a stricter gate fails on the same weights, without refitting (the gate is not part of the key)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("seeds/seed*/result.json")}
    strict = run_check(_ctx(tmp_path), replace(StabilitySettings(), max_sd=f["max_sd"] / 2))
    assert strict.status == "fail" and "across" in strict.messages[0] and strict.gates[0]["verdict"] == "fail"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.full
def test_the_verdict_on_the_bundled_example_holds_across_base_seeds(tmp_path: Path) -> None:
    """Five different first batches of seeds (and so five extension paths): one verdict, decided."""
    verdicts = set()
    for base in (42, 142, 242, 342, 442):
        settings = replace(StabilitySettings(), seeds=tuple(range(base, base + 5)))
        verdicts.add(run_check(_ctx(tmp_path / str(base)), settings).status)
    assert verdicts == {"pass"}


def test_weights_align_by_label_not_position() -> None:
    a = {"run1": 0.5, "run2": 0.3, "run10": 0.2}
    b = {"run10": 0.2, "run1": 0.4, "run2": 0.4}  # same members, another order
    f = seed_stability({1: a, 2: b})
    assert f["sd"]["run10"] == 0.0
    assert f["sd"]["run1"] == pytest.approx(0.0707107, rel=1e-5)
    assert f["modal_top_member"] == "run1"


def test_a_member_missing_under_one_seed_is_an_error() -> None:
    with pytest.raises(ValueError, match="run3"):
        seed_stability({1: {"run1": 0.5, "run3": 0.5}, 2: {"run1": 0.5, "run2": 0.5}})


def test_figures_do_not_depend_on_the_order_seeds_finished_in() -> None:
    """Parallel seeds finish in any order; the σ and mean must be the same bits (0.1+0.2+0.3 is order-sensitive)."""
    weights = {42: {"run1": 0.1, "run2": 0.9}, 43: {"run1": 0.2, "run2": 0.8}, 44: {"run1": 0.3, "run2": 0.7}}
    in_order = seed_stability(weights)
    reversed_order = seed_stability(dict(reversed(list(weights.items()))))
    for key in ("seeds", "mean", "sd", "max_sd", "top_member_by_seed"):
        assert in_order[key] == reversed_order[key], key
