"""`sample`: DataTree layout, member labels, seeded reruns bit-identical, both samplers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from fusion.config import Config
from fusion.inference.parameters import PARAMS
from fusion.inference.posterior import MEMBER_VARS, member_logliks
from fusion.inference.sampling import sample
from tests.fusion.inference._factories import make_prepared

PREPARED = make_prepared(400, 4, seed=5)


def _config(sampler: str, **inference) -> Config:
    base = Config.model_validate(
        {"observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}}, "ensemble": {"dir": "."}}
    )
    settings = {"draws": 50, "tune": 50, "chains": 2, "cores": 1, "seed": 123, "sampler": sampler}
    settings.update(inference)
    return base.with_updates(inference=settings)


@pytest.fixture(scope="module", params=["pymc", "nutpie"])
def traces(request: pytest.FixtureRequest) -> tuple[str, xr.DataTree, xr.DataTree]:
    """Two runs with the same config, per sampler."""
    cfg = _config(request.param)
    return request.param, sample(cfg, PREPARED, progressbar=False), sample(cfg, PREPARED, progressbar=False)


def test_layout_and_member_labels(traces) -> None:
    sampler, trace, _ = traces
    assert isinstance(trace, xr.DataTree)
    post = trace["posterior"].to_dataset()
    for p in PARAMS:
        assert post[p].dims == ("chain", "draw")
        assert post[p].shape == (2, 50)
        assert np.all(post[p].values > 0)
    for name in MEMBER_VARS:
        assert post[name].dims == ("chain", "draw", "member")
        assert list(post[name]["member"].values) == list(PREPARED.member_ids)
    np.testing.assert_allclose(post["w"].sum("member").values, 1.0, rtol=1e-12)
    stats = trace["sample_stats"].to_dataset()
    assert stats["diverging"].dtype == bool and stats["diverging"].dims == ("chain", "draw")
    assert stats["energy"].dims == ("chain", "draw")
    assert trace["posterior"].attrs["fusion_sampler"] == sampler
    assert trace["posterior"].attrs["fusion_seed"] == 123
    # nutpie runs the fused kernel as a C callback with this nutpie; a silent fallback would show here
    expected = {"pymc": "pytensor", "nutpie": "fused-cfunc"}[sampler]
    assert trace["posterior"].attrs["fusion_density"] == expected


def test_rerun_with_the_same_seed_is_bit_identical(traces) -> None:
    _, first, second = traces
    for group in ("posterior", "sample_stats"):
        a, b = first[group].to_dataset(), second[group].to_dataset()
        for name in PARAMS if group == "posterior" else ("diverging", "energy"):
            assert a[name].values.tobytes() == b[name].values.tobytes(), f"{group}/{name}"
    assert first["posterior"]["w"].values.tobytes() == second["posterior"]["w"].values.tobytes()


def test_member_quantities_follow_each_draw(traces) -> None:
    """`w` at (chain c, draw d) is computed from that draw's parameters: no reshaping mix-up."""
    _, trace, _ = traces
    post = trace["posterior"].to_dataset()
    for c, d in [(0, 0), (0, 49), (1, 7), (1, 30)]:
        theta = {p: np.array([float(post[p].values[c, d])]) for p in PARAMS}
        one = member_logliks(PREPARED, theta)
        for name in MEMBER_VARS:
            np.testing.assert_allclose(post[name].values[c, d], one[name][0], rtol=1e-12, err_msg=name)


def test_a_different_seed_gives_different_draws() -> None:
    cfg = _config("pymc", draws=20, tune=20, chains=1)
    a = sample(cfg, PREPARED, progressbar=False)
    b = sample(cfg.with_updates(inference={"seed": 124}), PREPARED, progressbar=False)
    name = "sigma_base_vel"
    assert not np.array_equal(a["posterior"][name].values, b["posterior"][name].values)


def test_trace_survives_netcdf(tmp_path, traces) -> None:
    _, trace, _ = traces
    path = tmp_path / "trace.nc"
    trace.to_netcdf(path)
    back = xr.open_datatree(path)
    try:
        assert list(back["posterior"]["w"]["member"].values) == list(PREPARED.member_ids)
        assert back["posterior"]["w"].values.tobytes() == trace["posterior"]["w"].values.tobytes()
        assert "diverging" in back["sample_stats"].data_vars
    finally:
        back.close()


def test_c_callback_returns_the_fused_density() -> None:
    import ctypes

    from fusion.inference.fused_density import FusedDensity
    from fusion.inference.sampling import _c_callbacks

    density = FusedDensity(PREPARED)
    buf = density.packed()
    c_logp, c_expand = _c_callbacks()
    ptr = ctypes.c_void_p
    i64, u64 = ctypes.c_int64, ctypes.c_uint64
    logp_fn = ctypes.CFUNCTYPE(i64, u64, ptr, ptr, ptr, ptr)(c_logp.address)
    expand_fn = ctypes.CFUNCTYPE(i64, u64, u64, ptr, ptr, ptr)(c_expand.address)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.normal(-1.0, 1.0, 4)
        grad, value, out = np.empty(4), np.empty(1), np.empty(4)
        assert logp_fn(4, x.ctypes.data, grad.ctypes.data, value.ctypes.data, buf.ctypes.data) == 0
        expected_value, expected_grad = density.logp_grad(x)
        assert value[0] == expected_value
        np.testing.assert_array_equal(grad, expected_grad)
        assert expand_fn(4, 4, x.ctypes.data, out.ctypes.data, buf.ctypes.data) == 0
        np.testing.assert_allclose(out, np.exp(x), rtol=1e-15)
    bad = np.array([800.0, 0.0, 0.0, 0.0])  # exp overflows: the callback reports it instead of returning inf
    grad, value = np.empty(4), np.empty(1)
    assert logp_fn(4, bad.ctypes.data, grad.ctypes.data, value.ctypes.data, buf.ctypes.data) != 0
    assert logp_fn(3, bad.ctypes.data, grad.ctypes.data, value.ctypes.data, buf.ctypes.data) == -1


def test_python_callback_route_samples_the_same_posterior_shape() -> None:
    from fusion.inference.fused_density import FusedDensity
    from fusion.inference.sampling import _sample_fused_nutpie

    cfg = _config("nutpie", draws=30, tune=30)
    trace = _sample_fused_nutpie(FusedDensity(PREPARED), cfg.inference, progressbar=False, route="pyfunc")
    assert trace["posterior"].attrs["fusion_density"] == "fused-pyfunc"
    assert trace["posterior"]["sigma_base_vel"].shape == (2, 30)
    assert np.all(np.isfinite(trace["sample_stats"]["energy"].values))


@pytest.mark.parametrize(("compat", "mass_matrix", "expected"),
                         [("fixed", None, "low_rank"), ("prototype", None, "diag"), ("fixed", "diag", "diag")])
def test_nutpie_adapts_the_mass_matrix_the_config_asks_for(compat: str, mass_matrix: str | None, expected: str) -> None:
    """Under `compat: fixed` a low-rank mass matrix follows the σ_base_vel–β_vel ridge; the
    choice reaches nutpie (the draws differ) and the trace says which one ran."""
    cfg = _config("nutpie", draws=30, tune=30, chains=1, mass_matrix=mass_matrix).with_updates(compat=compat)
    assert cfg.inference.adaptation(compat) == expected
    trace = sample(cfg, PREPARED, progressbar=False)
    assert trace["posterior"].attrs["fusion_mass_matrix"] == expected
    other = sample(cfg.with_updates(inference={"mass_matrix": "low_rank" if expected == "diag" else "diag"}),
                   PREPARED, progressbar=False)
    assert not np.array_equal(trace["posterior"]["sigma_base_vel"].values, other["posterior"]["sigma_base_vel"].values)
