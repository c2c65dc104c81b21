"""plug_in_weights: bit-exact against the prototype, and its properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.data.prepared import Prepared, positional_stream
from fusion.inference.plugin import load_posterior, plug_in_weights, softmax_weights
from tests.helpers import REFERENCE_CASES, golden_case, reference_posterior


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_bit_exact_against_prototype_table(case: str) -> None:
    """Reference: golden/<case>/model_weights_table.csv (prototype compute_model_weights, floats as repr)."""
    prepared = Prepared.from_npz(golden_case(case) / "prepared.npz")
    weights, loglik = plug_in_weights(prepared, load_posterior(reference_posterior(case)))
    table = pd.read_csv(golden_case(case) / "model_weights_table.csv").set_index("model_id")
    for i, member in enumerate(prepared.member_ids):
        assert weights[i] == table.loc[member, "weight"], member
        assert loglik[i] == table.loc[member, "log_likelihood"], member


def test_two_dimensional_reduction_would_not_be_bit_exact() -> None:
    """Why the per-member loop stays: one 2-D sum reorders the reduction (DESIGN.md)."""
    prepared = Prepared.from_npz(golden_case("small") / "prepared.npz")
    post = load_posterior(reference_posterior("small"))
    _, loglik = plug_in_weights(prepared, post)
    from fusion.inference.plugin import posterior_means

    m = posterior_means(post)
    sm = np.where(prepared.stream == 0, m["sigma_base_thick"] * np.sqrt(1 + m["beta_thick"] * prepared.speed),
                  m["sigma_base_vel"] * np.sqrt(1 + m["beta_vel"] * prepared.speed))
    var = np.sqrt(prepared.sigma_obs**2 + sm**2) ** 2
    two_d = -0.5 * np.sum((prepared.y_obs - prepared.F) ** 2 / var + np.log(2 * np.pi * var), axis=1) / prepared.n_points
    np.testing.assert_allclose(two_d, loglik, rtol=1e-12)
    assert not np.array_equal(two_d, loglik)


def _prepared(residual_scale: np.ndarray, n: int, seed: int) -> Prepared:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n).astype(np.float32)
    F = y[None, :] + residual_scale[:, None] * rng.normal(size=(residual_scale.size, n))
    return Prepared(
        y_obs=y, sigma_obs=np.full(n, 0.5, np.float32), F=F, speed=np.abs(rng.normal(50, 10, n)),
        n_dhdt=n // 2, n_vel=n - n // 2, member_ids=tuple(f"run{i + 1}" for i in range(F.shape[0])),
        stream=positional_stream(n, n // 2), compat="prototype",
    )


POSTERIOR = {"sigma_base_thick": np.array([0.4]), "sigma_base_vel": np.array([0.5]),
             "beta_thick": np.array([0.05]), "beta_vel": np.array([0.02])}
scales = st.lists(st.floats(0.1, 3.0), min_size=2, max_size=7).map(np.array)


@settings(max_examples=40, deadline=None)
@given(scales, st.integers(0, 2**16))
def test_weights_sum_to_one_and_follow_residuals(scale: np.ndarray, seed: int) -> None:
    weights, loglik = plug_in_weights(_prepared(scale, 400, seed), POSTERIOR)
    assert np.all(weights >= 0) and abs(weights.sum() - 1) < 1e-12
    assert np.argmax(weights) == np.argmax(loglik)


@settings(max_examples=40, deadline=None)
@given(scales, st.integers(0, 2**16), st.randoms(use_true_random=False))
def test_permuting_members_permutes_weights(scale: np.ndarray, seed: int, rnd) -> None:
    p = _prepared(scale, 300, seed)
    order = list(range(p.n_members))
    rnd.shuffle(order)
    q = Prepared(y_obs=p.y_obs, sigma_obs=p.sigma_obs, F=p.F[order], speed=p.speed, n_dhdt=p.n_dhdt, n_vel=p.n_vel,
                 member_ids=tuple(p.member_ids[i] for i in order), stream=p.stream, compat=p.compat)
    w, _ = plug_in_weights(p, POSTERIOR)
    wq, _ = plug_in_weights(q, POSTERIOR)
    np.testing.assert_allclose(wq, w[order], rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=8).map(np.array), st.floats(-1e3, 1e3))
def test_adding_a_constant_to_every_loglik_leaves_weights(loglik: np.ndarray, shift: float) -> None:
    np.testing.assert_allclose(softmax_weights(loglik + shift), softmax_weights(loglik), rtol=1e-9, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 2**16))
def test_equal_noise_smallest_residuals_weigh_most(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 3.0, m)
    best = int(rng.integers(m))
    scale[best] = 0.05
    weights, _ = plug_in_weights(_prepared(scale, 2000, seed), POSTERIOR)
    assert np.argmax(weights) == best
