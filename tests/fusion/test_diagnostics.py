"""Sampler diagnostics, the convergence gate and weight stability across seeds, on hand-made draws."""

from __future__ import annotations

import math
import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fusion.diagnostics import (
    THRESHOLDS,
    Thresholds,
    borderline,
    convergence_gate,
    diagnose,
    weight_stability,
)
from fusion.errors import ConvergenceWarning
from fusion.inference.parameters import PARAMS


def _trace(draws: np.ndarray, energy: np.ndarray, diverging: np.ndarray | None = None) -> xr.DataTree:
    """draws: (4 params, chains, draws)."""
    chains, n = draws.shape[1:]
    coords = {"chain": np.arange(chains), "draw": np.arange(n)}
    post = xr.Dataset({p: (("chain", "draw"), draws[i]) for i, p in enumerate(PARAMS)}, coords=coords)
    div = np.zeros((chains, n), dtype=bool) if diverging is None else diverging
    dims = ("chain", "draw")
    stats = xr.Dataset({"energy": (dims, energy), "diverging": (dims, div)}, coords=coords)
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def _good(rng: np.random.Generator, chains: int = 4, n: int = 500) -> xr.DataTree:
    return _trace(np.abs(rng.normal(size=(4, chains, n))) + 0.1, rng.normal(size=(chains, n)))


def test_figures_match_arviz_stats_and_pass_the_gate() -> None:
    trace = _good(np.random.default_rng(0))
    d = diagnose(trace, PARAMS)
    rhat = azs.rhat(trace, var_names=list(PARAMS)).to_dataset()
    ess = azs.ess(trace, var_names=list(PARAMS), method="tail").to_dataset()
    assert d["r_hat_max"] == max(float(rhat[p]) for p in PARAMS)
    assert d["ess_tail_min"] == min(float(ess[p]) for p in PARAMS)
    assert d["divergences"] == 0 and d["chains"] == 4 and d["draws"] == 500
    assert d["e_bfmi_min"] > 0.3 and d["ess_bulk_min"] > THRESHOLDS.ess_bulk_min * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert convergence_gate(d) == {}


def test_each_failing_figure_warns_with_its_threshold() -> None:
    rng = np.random.default_rng(1)
    chains, n = 4, 300
    draws = np.abs(rng.normal(size=(4, chains, n))) + 0.1
    draws[1] += np.arange(chains)[:, None] * 3.0  # chains disagree: R-hat
    draws[2] = np.cumsum(rng.normal(size=(chains, n)), axis=1)  # random walk: low ESS
    energy = np.cumsum(rng.normal(size=(chains, n)), axis=1)  # slowly drifting energy: low E-BFMI
    diverging = np.zeros((chains, n), dtype=bool)
    diverging[0, :3] = True
    d = diagnose(_trace(draws, energy, diverging), PARAMS)
    assert d["divergences"] == 3
    assert d["r_hat_max_at"] in {"sigma_base_vel", "beta_thick"}
    with pytest.warns(ConvergenceWarning) as record:
        failures = convergence_gate(d)
    assert set(failures) == {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences_max", "e_bfmi_min"}
    text = " | ".join(str(w.message) for w in record)
    for needle in ("R-hat", "> 1.01", "bulk ESS", "per chain < 100", "tail ESS", "divergent", "E-BFMI", "< 0.3"):
        assert needle in text, needle
    assert len(record) == 5
    assert failures["ess_bulk_min"]["threshold"] == 100


def test_undefined_figures_fail_and_quiet_mode_does_not_warn() -> None:
    d = diagnose(_good(np.random.default_rng(2)), PARAMS)
    d = {**d, "r_hat_max": float("nan")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        failures = convergence_gate(d, warn=False)
    assert list(failures) == ["r_hat_max"]
    assert "nan" in failures["r_hat_max"]["message"]


def test_a_weight_pinned_in_every_draw_passes_but_chains_stuck_apart_fail() -> None:
    """A member weight of exactly 1 in every draw of every chain (the `effective` form on a case
    whose data single one member out) has R-hat 0/0: the chains agree exactly, so it is 1 and the
    element is listed as constant. Chains each stuck on their own value still fail."""
    rng = np.random.default_rng(5)
    trace = _good(rng)
    post = trace["posterior"].to_dataset()
    w = np.zeros((4, 500, 3))
    w[..., 1] = 1.0
    pinned = post.assign(w=(("chain", "draw", "member"), w)).assign_coords(member=["run1", "run2", "run3"])
    d = diagnose(xr.DataTree.from_dict({"posterior": pinned, "sample_stats": trace["sample_stats"].to_dataset()}))
    assert d["constant"] == ["w[run1]", "w[run2]", "w[run3]"]
    assert math.isfinite(d["r_hat_max"]) and d["r_hat_max"] < 1.01
    assert convergence_gate(d, warn=False) == {}
    stuck = w.copy()
    stuck[0, :, 1], stuck[0, :, 0] = 0.0, 1.0  # chain 0 puts the weight on run1, the others on run2
    apart = post.assign(w=(("chain", "draw", "member"), stuck)).assign_coords(member=["run1", "run2", "run3"])
    d = diagnose(xr.DataTree.from_dict({"posterior": apart, "sample_stats": trace["sample_stats"].to_dataset()}))
    assert d["constant"] == ["w[run3]"]
    assert "r_hat_max" in convergence_gate(d, warn=False) and d["r_hat_max_at"] in ("w[run1]", "w[run2]")


def test_ess_threshold_scales_with_chains() -> None:
    d = diagnose(_good(np.random.default_rng(3), chains=2, n=150), PARAMS)
    assert d["ess_bulk_min"] < 400  # would fail at four chains ...
    failures = convergence_gate({**d, "ess_bulk_per_chain_min": 125.0, "ess_tail_per_chain_min": 125.0}, warn=False)
    assert "ess_bulk_min" not in failures and "ess_tail_min" not in failures  # ... passes at 2 × 100


def test_a_trace_without_a_divergence_record_is_an_error() -> None:
    trace = _good(np.random.default_rng(4))
    stats = trace["sample_stats"].to_dataset().drop_vars("diverging")
    bare = xr.DataTree.from_dict({"posterior": trace["posterior"].to_dataset(), "sample_stats": stats})
    with pytest.raises(ValueError, match="no sample_stats.diverging"):
        diagnose(bare)


def test_thresholds_from_a_config_mapping_reject_unknown_keys_and_bad_values() -> None:
    assert Thresholds.from_mapping({"r_hat_max": 1.02, "divergences_max": 1}) == Thresholds(
        r_hat_max=1.02, divergences_max=1
    )
    with pytest.raises(ValueError, match=r"cfg.yaml: unknown key\(s\) \['rhat'\]"):
        Thresholds.from_mapping({"rhat": 1.02}, "cfg.yaml")
    for bad in ({"r_hat_max": "x"}, {"divergences_max": 0.5}, {"e_bfmi_min": -1}, {"ess_bulk_min": True}):
        with pytest.raises(ValueError, match="must be a non-negative"):
            Thresholds.from_mapping(bad)


def test_borderline_only_when_every_miss_is_within_its_margin() -> None:
    d = diagnose(_good(np.random.default_rng(5)), PARAMS)
    assert not borderline(d)  # a passing run is not borderline
    assert borderline({**d, "r_hat_max": 1.012})  # over by 0.002 ≤ 0.005
    assert not borderline({**d, "r_hat_max": 1.2})  # a genuine failure
    assert borderline({**d, "ess_tail_per_chain_min": 85.0})  # short by 15 % ≤ 20 %
    assert not borderline({**d, "ess_tail_per_chain_min": 50.0})
    assert not borderline({**d, "r_hat_max": 1.012, "divergences": 1})  # a divergence never is
    assert not borderline({**d, "r_hat_max": float("nan")})


def _weights(order: list[str], values: dict[str, float]) -> pd.Series:
    return pd.Series([values[m] for m in order], index=order)


def test_stability_aligns_members_by_label_not_position() -> None:
    a = {"run1": 0.5, "run2": 0.3, "run10": 0.2}
    b = {"run1": 0.45, "run2": 0.35, "run10": 0.2}
    c = {"run1": 0.6, "run2": 0.1, "run10": 0.3}
    order_b, order_c = ["run10", "run2", "run1"], ["run2", "run10", "run1"]
    runs = [
        _weights(["run1", "run2", "run10"], a),
        pd.DataFrame({"member_id": order_b, "posterior_mean": [b[m] for m in order_b]}),
        xr.DataArray([c[m] for m in order_c], dims="member", coords={"member": order_c}),
    ]
    s = weight_stability(runs)
    assert list(s.table.index) == ["run1", "run2", "run10"]
    for m in a:
        expected = np.std([a[m], b[m], c[m]], ddof=1)
        assert s.sd[m] == pytest.approx(expected, rel=1e-12)
        assert s.table.loc[m, "run_1"] == b[m]
    assert s.top_members == ("run1", "run1", "run1")
    assert s.top_agreement == 1.0
    assert s.max_sd == pytest.approx(max(s.sd))


def test_stability_takes_posterior_w_and_reports_top_disagreement() -> None:
    members = ["run1", "run2"]
    w1 = xr.DataArray(
        np.tile([0.7, 0.3], (2, 5, 1)), dims=("chain", "draw", "member"), coords={"member": members}
    )
    w2 = {"run2": 0.6, "run1": 0.4}
    s = weight_stability([w1, w2])
    assert s.top_members == ("run1", "run2")
    assert s.top_agreement == 0.5
    assert s.sd["run1"] == pytest.approx(np.std([0.7, 0.4], ddof=1))


def test_stability_rejects_different_member_sets() -> None:
    with pytest.raises(ValueError, match="missing .*run3"):
        weight_stability([{"run1": 0.5, "run3": 0.5}, {"run1": 0.5, "run2": 0.5}])
    with pytest.raises(ValueError, match="at least two"):
        weight_stability([{"run1": 1.0}])
