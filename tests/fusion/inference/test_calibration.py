"""The member temperature's inner perfect-model test (fusion.inference.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.inference.calibration import (
    calibrate,
    crps,
    held_out_weights,
    member_contrasts,
    temperatures,
)

MEMBERS = tuple(f"run{i + 1}" for i in range(15))


def _line_ensemble(spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Members on a line: SLE grows with a parameter the contrasts see through `spread`, plus
    a structural misfit that no member shares (so the nearest member is never the truth)."""
    rng = np.random.default_rng(seed)
    param = np.linspace(0.0, 1.0, len(MEMBERS))
    sle = 100.0 * param + rng.normal(0.0, 5.0, param.size)
    d2 = (param[:, None] - param[None, :]) ** 2
    structural = rng.normal(0.0, 1.0, d2.shape)
    contrasts = -0.5 * spread * (d2 * 400.0 + np.abs(structural + structural.T))
    return contrasts, sle


def test_held_out_weights_leave_the_truth_out_and_sum_to_one() -> None:
    contrasts, _ = _line_ensemble(1.0)
    w = held_out_weights(contrasts, 0.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert np.all(np.diag(w) == 0.0)
    flat = held_out_weights(contrasts, 0.0)
    np.testing.assert_allclose(flat[~np.eye(len(MEMBERS), dtype=bool)], 1.0 / (len(MEMBERS) - 1))
    inside = held_out_weights(contrasts, 0.5, leave_out=False)
    assert np.all(np.diag(inside) > 0.0)


def test_the_chosen_temperature_reaches_the_unweighted_coverage_and_is_the_sharpest_confident() -> None:
    contrasts, sle = _line_ensemble(1.0)
    cal = calibrate(contrasts, sle, MEMBERS)
    grid = [r["temperature"] for r in cal.grid]
    assert cal.confident and cal.temperature in grid
    assert cal.coverage >= cal.coverage_unweighted
    rows = {r["temperature"]: r for r in cal.grid}
    softer = [lam for lam in grid if lam <= cal.temperature]
    assert all(rows[lam]["coverage"] >= cal.coverage_unweighted - 1e-12 for lam in softer)
    sharper = [lam for lam in grid if lam > cal.temperature]
    # the next sharper λ fails somewhere at or below it (else it would have been chosen)
    if sharper:
        nxt = min(sharper)
        assert rows[nxt]["coverage"] < cal.coverage_unweighted
    assert cal.relative_width is not None and cal.relative_width < 1.0  # sharper than the ensemble
    assert len(cal.held_out) == len(MEMBERS) and cal.record()["temperature"] == cal.temperature


def test_scoring_the_truth_among_its_own_candidates_picks_the_sharpest_temperature() -> None:
    """The planted defect of `perfect_model`: in-sample, every λ covers the truth (it is a candidate)."""
    contrasts, sle = _line_ensemble(1.0)
    proper = calibrate(contrasts, sle, MEMBERS)
    planted = calibrate(contrasts, sle, MEMBERS, leave_out=False)
    assert planted.temperature == 1.0 > proper.temperature


def test_a_fixed_temperature_is_used_and_judged() -> None:
    contrasts, sle = _line_ensemble(1.0)
    cal = calibrate(contrasts, sle, MEMBERS, fixed=1.0)
    assert cal.method == "fixed" and cal.temperature == 1.0
    assert cal.coverage < cal.coverage_unweighted and not cal.confident


def test_no_confident_temperature_falls_back_to_equal_weights_and_says_so() -> None:
    # contrasts that favour the member farthest in SLE: weighting moves the range away from the truth
    _, sle = _line_ensemble(1.0)
    contrasts = np.abs(sle[:, None] - sle[None, :]) * 50.0
    cal = calibrate(contrasts, sle, MEMBERS, grid=(1.0, 0.1))  # a grid stopping short of equal weights
    assert not cal.confident and cal.temperature == 0.0
    assert cal.message is not None and "equal weights used" in cal.message
    assert cal.coverage == cal.coverage_unweighted


def test_the_grid_reaches_all_but_equal_weights_whatever_the_contrasts_scale() -> None:
    for scale in (1e-3, 1.0, 1e4):
        contrasts, _ = _line_ensemble(scale)
        grid = temperatures(contrasts)
        assert grid[0] == 1.0 and all(a > b for a, b in zip(grid, grid[1:]))
        w = held_out_weights(contrasts, grid[-1])
        np.testing.assert_allclose(w[~np.eye(len(MEMBERS), dtype=bool)], 1.0 / (len(MEMBERS) - 1), rtol=0.12)


def test_too_few_members_use_equal_weights() -> None:
    cal = calibrate(np.zeros((2, 2)), np.array([1.0, 2.0]), ("run1", "run2"))
    assert cal.temperature == 0.0 and not cal.confident and "too few" in cal.message


def test_crps_is_the_weighted_mixture_score() -> None:
    """ArviZ's weighted estimator against the definition E|X − y| − ½E|X − X′| of a discrete mixture."""
    rng = np.random.default_rng(3)
    sle = rng.normal(100, 40, 9)
    w = rng.dirichlet(np.ones(9), size=4)
    truth = rng.normal(100, 40, 4)
    got = crps(sle, w, truth)
    want = [
        np.sum(row * np.abs(sle - y)) - 0.5 * np.sum(row[:, None] * row[None, :] * np.abs(sle[:, None] - sle[None, :]))
        for row, y in zip(w, truth, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_member_contrasts_rank_the_member_nearest_the_pseudo_truth_first(example_prepared) -> None:
    """Without noise, member k is its own best fit: the diagonal of L holds each row's maximum."""
    from fusion.inference.noise import NoiseSettings

    prepared = example_prepared
    theta = np.array([0.5, 0.5, 0.05, 0.05])
    L = member_contrasts(prepared, theta, NoiseSettings(), seed=0, noise=np.zeros(prepared.F.shape))
    assert np.array_equal(np.argmax(L, axis=1), np.arange(prepared.n_members))
    noisy = member_contrasts(prepared, theta, NoiseSettings(), seed=1)
    assert noisy.shape == L.shape and not np.allclose(noisy, L)
    again = member_contrasts(prepared, theta, NoiseSettings(), seed=1)
    assert np.array_equal(noisy, again)


@pytest.fixture(scope="module")
def example_prepared(tmp_path_factory):
    from fusion.config import load_config
    from fusion.data.load import load_data
    from fusion.data.prepare import prepare
    from fusion.data.synthetic import write_example

    config = write_example(tmp_path_factory.mktemp("example"))
    cfg = load_config(config)
    with pytest.warns(Warning):
        data = load_data(cfg)
    return prepare(cfg, data, progress=False)
