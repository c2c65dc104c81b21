"""The vectorised model equals the prototype's per-member loop form: log-density, gradient and `w`."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import ancestors

from fusion.data.prepared import Prepared
from fusion.inference.fused_density import FusedDensity
from fusion.inference.noise import NoiseSettings, stream_blocks
from fusion.inference.parameters import PARAMS
from fusion.inference.pymc_model import build_loop_model, build_model
from fusion.inference.posterior import member_logliks
from tests.helpers import golden_case
from tests.fusion.inference._factories import make_prepared

RTOL = 1e-9
SETTINGS = {
    "default": NoiseSettings(),
    "uneven": NoiseSettings(alpha_thick=0.3, alpha_vel=0.7, velocity_inflation=2.0),
    "no_inflation": NoiseSettings(alpha_thick=0.5, alpha_vel=0.5, velocity_inflation=0.0),
}


def _cases() -> dict[str, Prepared]:
    return {
        "fixed": make_prepared(300, 4, seed=1, compat="fixed"),
        "prototype": make_prepared(300, 4, seed=2, compat="prototype"),
        "only_velocity": make_prepared(120, 3, seed=3, thick_fraction=0.0),
        "reference_small": Prepared.from_npz(golden_case("small") / "prepared.npz"),
    }


CASES = _cases()


def _value_fn(model, outs):
    """Compile `outs` as a function of the model's (log-transformed) value variables."""
    graph = model.replace_rvs_by_values(outs)
    return model.compile_fn(graph, inputs=model.value_vars, point_fn=True, mode=MODE)


def _random_points(model, rng: np.random.Generator, k: int) -> list[dict[str, np.ndarray]]:
    """Points on the unconstrained (log) scale, spread over where the posterior and prior live."""
    return [{v.name: np.asarray(rng.normal(-1.5, 1.2)) for v in model.value_vars} for _ in range(k)]


MODE = "FAST_COMPILE"  # the graphs are tiny; compiling each with Numba would dominate the test time
COMBOS = [(case, "default") for case in CASES] + [("prototype", "uneven"), ("fixed", "no_inflation")]


@pytest.mark.parametrize(("case", "setting"), COMBOS)
def test_logp_and_gradient_match_the_loop_form(case: str, setting: str) -> None:
    prepared, settings = CASES[case], SETTINGS[setting]
    fast, loop = build_model(prepared, settings), build_loop_model(prepared, settings)
    assert [v.name for v in fast.value_vars] == [v.name for v in loop.value_vars]
    logp_f, logp_l = fast.compile_logp(mode=MODE), loop.compile_logp(mode=MODE)
    dlogp_f, dlogp_l = fast.compile_dlogp(mode=MODE), loop.compile_dlogp(mode=MODE)
    for point in _random_points(fast, np.random.default_rng(7), 6):
        np.testing.assert_allclose(logp_f(point), logp_l(point), rtol=RTOL, atol=0)
        np.testing.assert_allclose(dlogp_f(point), dlogp_l(point), rtol=RTOL, atol=0)


def test_potential_alone_matches_sum_of_logl_scaled() -> None:
    """The potential is Σ_m logL_scaled[m], not just equal up to a constant."""
    prepared = CASES["fixed"]
    fast, loop = build_model(prepared), build_loop_model(prepared)
    pot_f = _value_fn(fast, [fast["joint_loglik"]])
    scaled = _value_fn(loop, [loop["logL_scaled"]])
    for point in _random_points(fast, np.random.default_rng(3), 4):
        np.testing.assert_allclose(pot_f(point)[0], np.sum(scaled(point)[0]), rtol=RTOL, atol=0)


@pytest.mark.parametrize("case", ["fixed", "prototype", "reference_small"])
def test_member_quantities_from_draws_match_the_loop_deterministics(case: str) -> None:
    prepared = CASES[case]
    settings = SETTINGS["uneven"]
    loop = build_loop_model(prepared, settings)
    names = ["w", "logL_thick", "logL_vel", "logL_scaled"]
    fn = _value_fn(loop, [loop[n] for n in names])
    rng = np.random.default_rng(11)
    theta = {p: np.abs(rng.normal(0.0, 0.5, 25)) + 1e-3 for p in PARAMS}
    fast = member_logliks(prepared, theta, settings)
    for d in range(25):
        point = {f"{p}_log__": np.log(theta[p][d]) for p in PARAMS}
        for name, value in zip(names, fn(point)):
            np.testing.assert_allclose(fast[name][d], value, rtol=RTOL, atol=1e-300, err_msg=name)
    np.testing.assert_allclose(fast["w"].sum(axis=1), 1.0, rtol=1e-12)


def test_draws_are_chunked_without_changing_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import fusion.inference.posterior as posterior

    prepared = CASES["fixed"]
    theta = {p: np.linspace(0.05, 0.9, 40) for p in PARAMS}
    whole = member_logliks(prepared, theta)
    monkeypatch.setattr(posterior, "_CHUNK_ELEMENTS", prepared.n_points * 7)  # chunks of 7 draws
    chunked = member_logliks(prepared, theta)
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name])


def test_member_quantities_have_the_same_bits_whatever_blas_threads_are_set() -> None:
    """The per-stream products run on one BLAS thread inside `member_logliks`, so the caller's
    thread count does not reach the bits (on 4,808 × 12 thickness products OpenBLAS's two
    threads round differently from one)."""
    from threadpoolctl import threadpool_limits

    prepared = make_prepared(12000, 12, seed=5)
    rng = np.random.default_rng(1)
    theta = {p: rng.uniform(0.1, 1.0, 300) for p in PARAMS}
    with threadpool_limits(limits=2, user_api="blas"):
        two = member_logliks(prepared, theta)
    with threadpool_limits(limits=1, user_api="blas"):
        one = member_logliks(prepared, theta)
    for name in two:
        assert two[name].tobytes() == one[name].tobytes(), name


@pytest.mark.parametrize(("n_points", "n_members"), [(1200, 27), (700, 4)])
def test_a_draw_has_the_same_bits_whichever_draws_share_the_call(n_points: int, n_members: int) -> None:
    """Each product has one shape per case (the last one padded), so a draw's member quantities
    do not depend on the other draws of the call: `fusion run` weighs its thinned draws before the
    trace's and expects the same rows (unpadded, some of these draws computed in a product of
    fewer rows round differently than among all 600)."""
    prepared = make_prepared(n_points, n_members, seed=3)
    rng = np.random.default_rng(4)
    theta = {p: rng.uniform(0.05, 1.0, 600) for p in PARAMS}
    whole = member_logliks(prepared, theta)
    for rows in (np.arange(3), np.sort(rng.choice(600, 20, replace=False)), np.arange(250, 550)):
        part = member_logliks(prepared, {p: v[rows] for p, v in theta.items()})
        for name in whole:
            assert part[name].tobytes() == whole[name][rows].tobytes(), (name, rows.size)


def test_groups_merge_only_identical_points_and_keep_totals() -> None:
    prepared = CASES["fixed"]
    merged = stream_blocks(prepared, NoiseSettings())
    plain = stream_blocks(prepared, NoiseSettings(), merge=False)
    thick = merged[0]
    assert thick.sigma_obs2.size == 3 < thick.n_points  # three σ values, speed 0: three groups
    for a, b in zip(merged, plain):
        assert a.n_points == b.n_points == int(b.count.sum()) == int(a.count.sum())
        np.testing.assert_allclose(a.s2.sum(), b.s2.sum(), rtol=1e-13)


def test_vectorised_graph_holds_no_members_by_points_array() -> None:
    """O(N) per gradient: no constant in the potential's graph has M·N entries (or more than N)."""
    prepared = make_prepared(500, 6, seed=4)
    model = build_model(prepared)
    constants = [v for v in ancestors([model.potentiallogp]) if isinstance(v, Constant)]
    assert constants
    assert max(int(np.size(c.data)) for c in constants) <= prepared.n_points
    loop = build_loop_model(prepared)
    loop_constants = [v for v in ancestors([loop.potentiallogp]) if isinstance(v, Constant)]
    assert sum(int(np.size(c.data)) for c in loop_constants) >= prepared.n_members * prepared.n_points


def test_priors_are_the_designed_half_normals() -> None:
    model = build_model(CASES["fixed"])
    assert [rv.name for rv in model.free_RVs] == list(PARAMS)
    for rv, scale in zip(model.free_RVs, (0.5, 0.6, 0.1, 0.1)):
        assert rv.owner.op.name == "halfnormal"
        assert float(pt.as_tensor(rv.owner.inputs[-1]).eval()) == pytest.approx(scale)
    assert [p.name for p in model.potentials] == ["joint_loglik"]


#: Enough single points (> 32 lanes × 32 rows per stream) for full and partial lane blocks, and
#: products of 32 and 64 variances (one lane, two lanes) that overflow at the far points below.
_FUSED_CASES = {**CASES, "many_points": make_prepared(4000, 2, seed=4)}


@pytest.mark.parametrize("case", _FUSED_CASES)
def test_fused_density_matches_the_pymc_model(case: str) -> None:
    """The hand-written value and gradient nutpie samples equal PyMC's, including far from the
    posterior where chunked products leave the float range and the kernel falls back to logs."""
    prepared = _FUSED_CASES[case]
    settings = SETTINGS["uneven"]
    model = build_model(prepared, settings)
    logp, dlogp = model.compile_logp(mode=MODE), model.compile_dlogp(mode=MODE)
    fused = FusedDensity(prepared, settings)
    rng = np.random.default_rng(5)
    points = [rng.normal(-1.5, 1.2, 4) for _ in range(5)]
    points += [np.array([12.0, 14.0, 9.0, 11.0]), np.full(4, -12.0)]
    # products overflow (of two lanes; of one lane and two lanes), yet the priors do not swamp the logs
    points += [np.array([0.0, 4.0, 0.0, 0.0]), np.array([0.0, 9.0, 0.0, 0.0])]
    for x in points:
        point = {v.name: x[i] for i, v in enumerate(model.value_vars)}
        value, grad = fused.logp_grad(x)
        np.testing.assert_allclose(value, logp(point), rtol=RTOL, atol=0)
        np.testing.assert_allclose(grad, dlogp(point), rtol=RTOL, atol=0)


def test_fused_density_packs_into_one_buffer() -> None:
    from fusion.inference.fused_kernel import logp_grad, unpack

    fused = FusedDensity(CASES["prototype"])
    data, bounds, consts, prior = unpack(fused.packed())
    x = np.array([-0.7, -0.4, -2.0, -2.5])
    grad = np.empty(4)
    value = logp_grad(x, data, bounds, consts, prior, grad)
    expected_value, expected_grad = fused.logp_grad(x)
    assert value == expected_value
    np.testing.assert_array_equal(grad, expected_grad)
