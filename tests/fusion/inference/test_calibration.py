"""The member temperatures' inner perfect-model test (fusion.inference.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.inference.calibration import (
    PATH,
    calibrate,
    crps,
    held_out_weights,
    member_contrasts,
    temperature_grid,
)

MEMBERS = tuple(f"run{i + 1}" for i in range(15))


def _line_ensemble(scale: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(contrasts (2, 1, M, M), SLE): members on a line, SLE growing with a parameter that the
    first stream sees (plus a structural misfit no member shares), the second stream seeing only
    structural noise unrelated to the SLE."""
    rng = np.random.default_rng(seed)
    param = np.linspace(0.0, 1.0, len(MEMBERS))
    sle = 100.0 * param + rng.normal(0.0, 5.0, param.size)
    d2 = (param[:, None] - param[None, :]) ** 2
    structural = rng.normal(0.0, 1.0, d2.shape)
    informative = -0.5 * scale * (d2 * 400.0 + np.abs(structural + structural.T))
    noise = rng.normal(0.0, 1.0, d2.shape)
    uninformative = -0.5 * scale * 200.0 * np.abs(noise + noise.T)
    return np.stack([informative, uninformative])[:, None], sle


def test_held_out_weights_leave_the_truth_out_and_sum_to_one() -> None:
    contrasts, _ = _line_ensemble()
    c = contrasts[0, 0]
    w = held_out_weights(c, 0.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert np.all(np.diag(w) == 0.0)
    flat = held_out_weights(c, 0.0)
    np.testing.assert_allclose(flat[~np.eye(len(MEMBERS), dtype=bool)], 1.0 / (len(MEMBERS) - 1))
    assert np.all(np.diag(held_out_weights(c, 0.5, leave_out=False)) > 0.0)


def test_the_chosen_temperatures_reach_the_unweighted_coverage_and_are_sharper_than_the_ensemble() -> None:
    contrasts, sle = _line_ensemble()
    cal = calibrate(contrasts, sle, MEMBERS)
    assert cal.confident and cal.message is None
    assert cal.coverage >= cal.coverage_unweighted
    assert cal.relative_width is not None and cal.relative_width < 1.0
    assert len(cal.held_out) == len(MEMBERS) and cal.weights.shape == (len(MEMBERS), len(MEMBERS))
    record = cal.record()
    assert record["temperature"] == {"thick": cal.temperature[0], "vel": cal.temperature[1]}
    # the path through the choice: κ = 1 is the choice itself
    at_one = next(r for r in record["grid"] if r["factor"] == 1.0)
    assert at_one["coverage"] == pytest.approx(cal.coverage)


def test_the_stream_that_informs_the_projection_keeps_the_sharper_temperature() -> None:
    contrasts, sle = _line_ensemble()
    thick, vel = calibrate(contrasts, sle, MEMBERS).temperature
    assert thick > vel


def test_scoring_the_truth_among_its_own_candidates_picks_sharper_temperatures() -> None:
    """The planted defect of `perfect_model`: in-sample every pair covers the truth (it is a
    candidate), so the narrowest pair of the whole grid is taken."""
    contrasts, sle = _line_ensemble()
    proper = calibrate(contrasts, sle, MEMBERS)
    planted = calibrate(contrasts, sle, MEMBERS, leave_out=False)
    assert planted.coverage == 1.0 and planted.temperature[0] == 1.0
    assert planted.relative_width < proper.relative_width


def test_a_fixed_temperature_is_used_on_every_stream_and_judged() -> None:
    contrasts, sle = _line_ensemble()
    cal = calibrate(contrasts, sle, MEMBERS, fixed=1.0)
    assert cal.method == "fixed" and cal.temperature == (1.0, 1.0)
    assert cal.coverage < cal.coverage_unweighted and not cal.confident


def test_the_grid_reaches_all_but_equal_weights_whatever_the_contrasts_scale() -> None:
    for scale in (1e-3, 1.0, 1e4):
        contrasts, _ = _line_ensemble(scale)
        c = contrasts[0, 0]
        rows = c[~np.eye(len(MEMBERS), dtype=bool)].reshape(len(MEMBERS), -1)
        grid = temperature_grid(rows)
        assert grid[0] == 1.0 and all(a > b for a, b in zip(grid, grid[1:]))
        w = held_out_weights(c, grid[-1])
        np.testing.assert_allclose(w[~np.eye(len(MEMBERS), dtype=bool)], 1.0 / (len(MEMBERS) - 1), rtol=0.12)
    assert 1.0 in PATH


def test_too_few_members_use_equal_weights() -> None:
    cal = calibrate(np.zeros((2, 1, 2, 2)), np.array([1.0, 2.0]), ("run1", "run2"))
    assert cal.temperature == (0.0, 0.0) and not cal.confident and "too few" in cal.message


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


def test_member_contrasts_rank_the_member_nearest_the_pseudo_truth_first(example_prepared) -> None:
    """Without noise, member k is its own best fit in each stream: the diagonal holds each row's
    maximum; the streams' contrasts add up to the whole form's."""
    from fusion.inference.noise import NoiseSettings

    prepared = example_prepared
    theta = np.array([0.5, 0.5, 0.05, 0.05])
    L = member_contrasts(prepared, theta, NoiseSettings(), seed=0, noise=np.zeros(prepared.F.shape))
    assert L.shape == (2, 1, prepared.n_members, prepared.n_members)
    for s in range(2):
        assert np.array_equal(np.argmax(L[s, 0], axis=1), np.arange(prepared.n_members))
    noisy = member_contrasts(prepared, theta, NoiseSettings(), seed=1, draws=3)
    assert noisy.shape == (2, 3, prepared.n_members, prepared.n_members) and not np.allclose(noisy[:, :1], L)
    assert np.array_equal(noisy, member_contrasts(prepared, theta, NoiseSettings(), seed=1, draws=3))


def test_weighted_quantile_rows_follow_weighted_quantile() -> None:
    from fusion.projection import weighted_quantile, weighted_quantile_rows

    rng = np.random.default_rng(5)
    values = rng.normal(size=12)
    weights = rng.dirichlet(np.ones(12), size=30)
    weights[0] = 1.0 / 12  # a q landing on a step
    q = [0.05, 0.5, 0.95]
    rows = weighted_quantile_rows(values, weights, q)
    np.testing.assert_array_equal(rows, np.array([weighted_quantile(values, w, q) for w in weights]))
