"""What SBC and coverage fit is FUSION's own density: a replicate's `Prepared` carries its residuals
exactly, grouped points merge in `stream_blocks`, both forms and every planted bug equal the
density written out with SciPy, and the callbacks are built once per process whatever the variant."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import harness.sim as sim
from fusion.data.prepared import THICK, VEL
from fusion.inference import fused_kernel, noise
from fusion.inference.fused_density import FusedDensity
from fusion.inference.noise import NoiseSettings, squared_residuals, stream_blocks
from harness.checks.sbc import SBCSpec, run_sbc

GENERATIVE = NoiseSettings(tempered=False)
VARIANTS = [sim.CORRECT, sim.WRONG_PRIOR_SCALE, sim.DROPPED_THICK_TERM, sim.DROPPED_LOGNORM_TERM]


def _points(rng: np.random.Generator, k: int = 5) -> list[np.ndarray]:
    return [sim.draw_prior(rng) + 1e-3 for _ in range(k)]


def _logp(density: FusedDensity, theta: np.ndarray) -> float:
    return density.logp_grad(np.log(theta))[0]


def _prior_logp(theta: np.ndarray, scales=sim.CORRECT.prior_sigma) -> float:
    # HalfNormal log-density plus the log-transform's Jacobian (log θ), as PyMC's logp has it
    return float(sum(stats.halfnorm.logpdf(t, scale=s) + np.log(t) for t, s in zip(theta, scales)))


def _scipy_logp(variant: sim.ModelVariant, theta: np.ndarray, r: np.ndarray, design: sim.Design) -> float:
    """The generative form written out per member and point, with each planted bug applied by hand."""
    sd = np.sqrt(sim.sigma_tot2(theta, design))
    per_point = stats.norm.logpdf(r, 0.0, sd)  # (M, N)
    if variant.drop == "lognorm":
        per_point = -0.5 * np.square(r / sd)
    if variant.drop == "thick_stream":
        per_point = per_point[:, design.stream == VEL]
    return _prior_logp(theta, variant.prior_sigma) + float(per_point.sum())


def test_replicate_prepared_carries_the_residuals_exactly() -> None:
    design = sim.sbc_design(30, 40, 3, seed=1)
    r = sim.simulate_residuals(sim.draw_prior(np.random.default_rng(2)), design, np.random.default_rng(3))
    np.testing.assert_array_equal(squared_residuals(design.prepared(r)), np.square(r))
    held_in = np.arange(0, design.n_points, 3)
    sub = design.prepared(r, held_in)
    np.testing.assert_array_equal(squared_residuals(sub), np.square(r[:, held_in]))
    np.testing.assert_array_equal(noise.sigma_obs_squared(sub), design.sigma_obs2[held_in])


def test_grouped_design_merges_in_stream_blocks() -> None:
    """σ_obs² from float32 σ gives equal keys: each (σ_obs, speed) level is one merged group."""
    design = sim.sbc_design(40, 40, 2, seed=4, levels=(4, 5))
    blocks = stream_blocks(design.prepared(np.ones((2, design.n_points))), GENERATIVE)
    assert [b.s2.size for b in blocks] == [4, 5]
    assert [b.count.sum() for b in blocks] == [40, 40]
    assert [b.scale for b in blocks] == [1.0, 1.0]  # generative form: every point counted once


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_fitted_density_is_the_generative_form_written_out(variant: sim.ModelVariant) -> None:
    """Σ_m Σ_i log N(r_mi | 0, σ_tot,i) plus priors, from FUSION's density on a grouped design."""
    design = sim.sbc_design(30, 40, 3, seed=1)
    rng = np.random.default_rng(2)
    theta = sim.draw_prior(rng)
    r = sim.simulate_residuals(theta, design, rng)
    density = variant.density(design.prepared(r), GENERATIVE)
    s2, n_obs = np.square(r).sum(axis=0), np.full(design.n_points, 3.0)
    for th in [theta, *_points(rng, 3)]:
        direct = _scipy_logp(variant, th, r, design)
        assert _logp(density, th) == pytest.approx(direct, rel=1e-10)
        if variant is sim.CORRECT:
            assert sim.loglik_draws(th, design, s2, n_obs) == pytest.approx(
                direct - _prior_logp(th), rel=1e-12
            )


@pytest.mark.parametrize("variant", VARIANTS[1:], ids=lambda v: v.name)
def test_planted_bugs_keep_value_and_gradient_consistent(variant: sim.ModelVariant) -> None:
    """A variant changes inputs, not the kernel: its gradient is still the value's derivative."""
    design = sim.sbc_design(20, 20, 2, seed=6)
    rng = np.random.default_rng(7)
    prepared = design.prepared(rng.normal(0.0, 2.0, (2, design.n_points)))
    bad, good = variant.density(prepared, GENERATIVE), sim.CORRECT.density(prepared, GENERATIVE)
    for th in _points(rng, 3):
        x = np.log(th)
        value, grad = bad.logp_grad(x)
        assert abs(value - good.logp_grad(x)[0]) > 1e-6
        h = 1e-6
        numeric = [(bad.logp_grad(x + h * e)[0] - bad.logp_grad(x - h * e)[0]) / (2 * h) for e in np.eye(4)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_correct_variant_is_the_production_density() -> None:
    """The harness's density of a dataset is `fusion run`'s, bit for bit, in both forms."""
    design = sim.sbc_design(30, 40, 3, seed=8)
    prepared = design.prepared(np.random.default_rng(9).normal(0.0, 2.0, (3, design.n_points)))
    for settings in (NoiseSettings(), GENERATIVE):
        np.testing.assert_array_equal(
            sim.CORRECT.density(prepared, settings).packed(), FusedDensity(prepared, settings).packed()
        )
    tempered = [b.scale for b in stream_blocks(prepared, NoiseSettings())]
    assert tempered == [0.5 / 30, 0.5 / 40]


def test_dropping_a_stream_with_no_points_changes_nothing() -> None:
    design = sim.sbc_design(30, 40, 3, seed=8)
    prepared = design.prepared(np.ones((3, design.n_points)), np.flatnonzero(design.stream == VEL))
    density = FusedDensity(prepared, GENERATIVE)
    np.testing.assert_array_equal(density.with_stream_constants(THICK, scale=0.0).packed(), density.packed())


def test_simulated_residuals_have_the_model_variance() -> None:
    design = sim.sbc_design(10, 10, 4000, seed=8)
    theta = np.array([0.4, 0.7, 0.05, 0.08])
    r = sim.simulate_residuals(theta, design, np.random.default_rng(9))
    var = sim.sigma_tot2(theta, design)
    # mean of r²/σ² over 4000 members per point: ~N(1, √(2/4000))
    z = (np.square(r).mean(axis=0) / var - 1.0) / np.sqrt(2.0 / 4000)
    assert np.abs(z).max() < 4.5
    assert abs(r.mean()) < 5 * np.sqrt(var.mean() / r.size)


def test_callbacks_built_once_for_many_replicates_and_every_variant(tmp_path) -> None:
    """One build of the C callbacks in this process for 16 replicates of two variants: each
    replicate and each planted bug only brings another data buffer."""
    fused_kernel.c_callbacks.cache_clear()
    before = sim.compile_count()
    for variant in (sim.CORRECT, sim.WRONG_PRIOR_SCALE):
        out = run_sbc(
            SBCSpec(n_replicates=8, draws=100, tune=100, variant=variant),
            tmp_path / variant.name,
            workers=0,
            progress=lambda s: None,
            plots=False,
        )
        assert out.figures["fitted_replicates"] == 8
    assert before == 0
    assert sim.compile_count() == 1
