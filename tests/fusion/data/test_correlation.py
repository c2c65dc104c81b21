"""Correlated errors: the fitted length recovers the truth, n_eff follows it, the FFT pair sum is
the brute-force one, and the synthetic generator's correlated errors are what it says.

The default generator (no `error_correlation`) stays bit-identical: the golden table
`harness/release_tests/test_golden.py::test_golden_table[prepared-example]` pins the sha256 of the
example's prepared arrays.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from fusion.data.correlation import (
    CorrelationFit,
    ErrorCorrelation,
    correlated_field,
    estimate_correlation,
    pair_correlation_sum,
)
from fusion.data.synthetic import SyntheticSpec, generate

SHAPE = (128, 128)


def _masked_field(length: float, seed: int) -> np.ndarray:
    field = correlated_field(SHAPE, ErrorCorrelation(length_cells=length), seed)
    field[np.random.default_rng(seed).random(SHAPE) < 0.5] = np.nan
    return field


@pytest.mark.parametrize("length", [3.0, 10.0])
def test_fitted_length_recovers_the_truth(length: float) -> None:
    estimates = [estimate_correlation(_masked_field(length, seed)).length_cells for seed in range(5)]
    assert np.median(estimates) == pytest.approx(length, rel=0.25), estimates


def test_n_eff_falls_as_the_length_grows_and_is_n_for_independent_noise() -> None:
    rng = np.random.default_rng(3)
    white = np.where(rng.random(SHAPE) < 0.5, rng.standard_normal(SHAPE), np.nan)
    independent = estimate_correlation(white)
    assert independent.n_eff_scale == pytest.approx(independent.n_points, rel=0.05)
    assert independent.n_eff_location == pytest.approx(independent.n_points, rel=0.1)
    short, long = (estimate_correlation(_masked_field(length, 1)) for length in (3.0, 10.0))
    assert independent.n_eff_location > short.n_eff_location > long.n_eff_location
    assert independent.n_eff_scale > short.n_eff_scale > long.n_eff_scale
    assert long.n_eff_location < long.n_eff_scale  # ρ ≤ 1 so ΣΣρ² ≤ ΣΣρ


def test_a_length_at_the_fits_bound_is_flagged_and_the_run_is_told() -> None:
    """Residuals with a trend across the field never level off within the variogram's lags: ℓ goes
    to its bound (10 × the longest lag), which the fit flags and `fusion run` warns about, since
    n_eff then follows from the bound. A length the data resolve is not flagged, nor white noise."""
    from fusion.data.prepared import THICK
    from fusion.inference.likelihood import StreamCorrelation

    rng = np.random.default_rng(4)
    rows = np.arange(SHAPE[0], dtype=float)[:, None] * np.ones(SHAPE)
    trend = np.where(rng.random(SHAPE) < 0.5, 0.05 * rows + 0.5 * rng.standard_normal(SHAPE), np.nan)
    trended = estimate_correlation(trend)
    assert trended.at_bound and trended.length_cells == pytest.approx(10 * min(SHAPE) / 3, rel=1e-6)
    assert not estimate_correlation(_masked_field(3.0, 0)).at_bound

    def stream(fit: CorrelationFit, n_eff: float) -> StreamCorrelation:
        return StreamCorrelation(THICK, 1000, fit.length_cells, None, "exponential", "estimate", n_eff, n_eff,
                                 lags_cells=(1.0, 42.0), at_bound=fit.at_bound)
    message = stream(trended, 14.0).bound_warning()
    assert message is not None and message.startswith("thick:") and "longest lag (42 cells)" in message
    assert "likelihood.correlation_length" in message
    assert stream(trended, 990.0).bound_warning() is None  # at the bound, but ρ negligible: n_eff ≈ N


def test_fft_pair_sum_equals_the_brute_force_sum() -> None:
    kept = np.random.default_rng(0).random((23, 31)) < 0.4
    fit = CorrelationFit("exponential", 4.0, None, None, 1.0, 0.2, 1.5, int(kept.sum()), 0.0, 0.0)
    rho = fit.correlation(squareform(pdist(np.argwhere(kept).astype(float))))
    for power in (1, 2):
        fft = pair_correlation_sum(kept, lambda d, p=power: fit.correlation(d) ** p, max_lag=40)
        assert fft == pytest.approx(float(np.sum(rho**power)), rel=1e-9)


def _velocity_residuals(root: Path, truth: dict, year_index: int) -> np.ndarray:
    """(VX − truth member's ua) / ERRX: the standardized observation error, NaN in gaps."""
    year = truth["years"][year_index]
    with netCDF4.Dataset(root / f"obs/vel/vel_Antarctica_ice_velocity_{year}.nc") as ds:
        vx = np.ma.filled(ds["VX"][:].astype(np.float64), np.nan)
        err = np.ma.filled(ds["ERRX"][:].astype(np.float64), np.nan)
    with netCDF4.Dataset(root / "ensemble" / truth["truth_member"]["file"]) as ds:
        ua = np.asarray(ds["ua"][year_index], dtype=np.float64)
    return (vx - ua) / err


def test_generator_errors_have_the_stated_length(tmp_path: Path) -> None:
    spec = SyntheticSpec(ny=100, nx=120, members=2, years=(2015, 2018), seed=4, fill_member=None,
                         member_nans=False, with_projection=False,
                         error_correlation=ErrorCorrelation(length_cells=4.0))  # fmt: skip
    truth = generate(tmp_path, spec)
    assert truth["args"]["error_correlation"]["length_cells"] == 4.0
    fit = estimate_correlation(_velocity_residuals(tmp_path, truth, 0), cell_size=truth["grid"]["dx"])
    assert fit.length_cells == pytest.approx(4.0, rel=0.3)
    assert fit.length == pytest.approx(fit.length_cells * truth["grid"]["dx"])
