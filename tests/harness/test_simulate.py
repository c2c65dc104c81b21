"""The data-swappable graph SBC and coverage fit: same density as the production model and as the
generative form written out per member and point; planted bugs really change it; one compile."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import harness.sim as sim
from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.model import build_model as production_model
from harness.sbc import SBCSpec, run_sbc


def _prepared(n: int = 120, m: int = 4, seed: int = 3) -> Prepared:
    rng = np.random.default_rng(seed)
    stream = np.where(rng.random(n) < 0.4, THICK, VEL).astype(np.int8)
    speed = np.where(stream == VEL, rng.gamma(2.0, 150.0, n), 0.0)
    sigma = np.where(stream == THICK, rng.choice([0.5, 2.0], n), rng.uniform(0.5, 9.0, n)).astype(np.float32)
    y = rng.normal(0.0, 3.0, n).astype(np.float32)
    F = y[None, :] + rng.normal(0.0, 1.5, (m, n))
    return Prepared(
        y_obs=y,
        sigma_obs=sigma,
        F=F,
        speed=speed,
        n_dhdt=int((stream == THICK).sum()),
        n_vel=int((stream == VEL).sum()),
        member_ids=tuple(f"run{i + 1}" for i in range(m)),
        stream=stream,
    )


def _points(rng: np.random.Generator, k: int = 5) -> list[np.ndarray]:
    return [sim.draw_prior(rng) + 1e-3 for _ in range(k)]


def _graph_logp(variant: sim.ModelVariant, inputs: dict[str, np.ndarray]):
    model = sim.build_model(variant)
    with model:
        pm.set_data({k: v for k, v in inputs.items() if k in {d.name for d in model.data_vars}})
    fn = model.compile_logp()
    return lambda theta: float(fn({f"{p}_log__": np.log(t) for p, t in zip(sim.PARAMS, theta)}))


def _prior_logp(theta: np.ndarray, scales=sim.CORRECT.prior_sigma) -> float:
    # HalfNormal log-density plus the log-transform's Jacobian (log θ), as PyMC's logp has it
    return float(sum(stats.halfnorm.logpdf(t, scale=s) + np.log(t) for t, s in zip(theta, scales)))


def test_tempered_graph_equals_the_production_model() -> None:
    """Same logp at random points: the SBC's tempered form is FUSION's model, not a lookalike."""
    p = _prepared()
    design = sim.design_from_prepared(p)
    s2 = np.square(p.y_obs - p.F).sum(axis=0)
    n_obs = np.full(p.n_points, float(p.n_members))
    ours = _graph_logp(sim.CORRECT, sim.fit_inputs(design, s2, n_obs, sim.tempered_coef(design, n_obs)))
    prod = production_model(p).compile_logp()
    for theta in _points(np.random.default_rng(0)):
        want = float(prod({f"{q}_log__": np.log(t) for q, t in zip(sim.PARAMS, theta)}))
        assert ours(theta) == pytest.approx(want, rel=1e-9)  # summation order differs (groups merged there)


def test_generative_graph_is_the_per_member_gaussian_sum() -> None:
    """Σ_m Σ_i log N(r_mi | 0, σ_tot,i): from S2 (graph, NumPy) and written out with SciPy."""
    design = sim.sbc_design(30, 40, 3, seed=1)
    rng = np.random.default_rng(2)
    theta = sim.draw_prior(rng)
    r = sim.simulate_residuals(theta, design, rng)
    n_obs = np.full(design.n_points, 3.0)
    s2 = np.square(r).sum(axis=0)
    graph = _graph_logp(sim.CORRECT, sim.fit_inputs(design, s2, n_obs))
    for th in [theta, *_points(rng, 3)]:
        sd = np.sqrt(sim.sigma_tot2(th, design))
        direct = stats.norm.logpdf(r, 0.0, sd).sum()
        assert sim.loglik_draws(th, design, s2, n_obs) == pytest.approx(direct, rel=1e-12)
        assert graph(th) - _prior_logp(th) == pytest.approx(direct, rel=1e-10)


def test_grouped_points_keep_the_density() -> None:
    """Summing S2 within groups sharing (σ_obs, speed) is exact, held-out points included."""
    design = sim.sbc_design(40, 40, 2, seed=4, levels=(4, 5))
    flat = sim.Design(design.sigma_obs2, design.speed, design.stream, design.n_members)
    rng = np.random.default_rng(5)
    s2 = rng.gamma(2.0, 3.0, design.n_points)
    n_obs = np.where(rng.random(design.n_points) < 0.8, 2.0, 0.0)
    s2[n_obs == 0] = 0.0
    grouped = sim.fit_inputs(design, s2, n_obs)
    assert grouped["s2"].size == 9
    a, b = _graph_logp(sim.CORRECT, grouped), _graph_logp(sim.CORRECT, sim.fit_inputs(flat, s2, n_obs))
    for th in _points(rng):
        assert a(th) == pytest.approx(b(th), rel=1e-12)


@pytest.mark.parametrize("variant", [sim.WRONG_PRIOR_SCALE, sim.DROPPED_THICK_TERM, sim.DROPPED_LOGNORM_TERM])
def test_planted_bugs_change_the_density(variant: sim.ModelVariant) -> None:
    design = sim.sbc_design(20, 20, 2, seed=6)
    rng = np.random.default_rng(7)
    inputs = sim.fit_inputs(design, rng.gamma(2.0, 3.0, design.n_points), np.full(design.n_points, 2.0))
    good, bad = _graph_logp(sim.CORRECT, inputs), _graph_logp(variant, inputs)
    diffs = [abs(good(th) - bad(th)) for th in _points(rng)]
    assert min(diffs) > 1e-6


def test_simulated_residuals_have_the_model_variance() -> None:
    design = sim.sbc_design(10, 10, 4000, seed=8)
    theta = np.array([0.4, 0.7, 0.05, 0.08])
    r = sim.simulate_residuals(theta, design, np.random.default_rng(9))
    var = sim.sigma_tot2(theta, design)
    # mean of r²/σ² over 4000 members per point: ~N(1, √(2/4000))
    z = (np.square(r).mean(axis=0) / var - 1.0) / np.sqrt(2.0 / 4000)
    assert np.abs(z).max() < 4.5
    assert abs(r.mean()) < 5 * np.sqrt(var.mean() / r.size)


def test_one_compilation_for_many_replicates(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Compile once, then only swap data: 24 replicates, exactly one `compile_pymc_model` call."""
    import nutpie

    calls: list[int] = []
    real = nutpie.compile_pymc_model

    def counting(model, **kw):
        calls.append(1)
        return real(model, **kw)

    monkeypatch.setattr(nutpie, "compile_pymc_model", counting)
    monkeypatch.setattr(sim.variants, "_COMPILED", {})
    before = sim.compile_count()
    out = run_sbc(
        SBCSpec(n_replicates=24, draws=200, tune=200),
        tmp_path,
        workers=0,
        progress=lambda s: None,
        plots=False,
    )
    assert out.figures["fitted_replicates"] == 24
    assert len(calls) == 1
    assert sim.compile_count() - before == 1
