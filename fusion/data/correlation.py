"""Spatially correlated observation errors: draw them (synthetic truth) and estimate them (data).

Real dh/dt and velocity residuals are correlated over tens of km, so N kept pixels carry far
fewer than N independent pieces of evidence (DESIGN.md, "Likelihood forms and correlated
errors"). This module holds the two halves issue 19 builds on: a seeded Gaussian random field
with a stated covariance (GSTools `SRF`), and a fitted covariance model of standardized
residuals (GSTools `vario_estimate` + `fit_variogram`) with the effective number of independent
points among the kept ones. GSTools is imported inside the functions: `fusion run`'s start-up
time is budgeted and most runs never touch this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import gstools

__all__ = ["ErrorCorrelation", "CorrelationFit", "correlated_field", "estimate_correlation", "pair_correlation_sum"]

CovarianceModel = Literal["exponential", "matern"]
MODELS: tuple[str, ...] = ("exponential", "matern")
NEGLIGIBLE = 1e-6  # |ρ| below this is dropped from the pair sums (a truncation, stated in the result)


@dataclass(frozen=True)
class ErrorCorrelation:
    """A stationary, isotropic error covariance on the grid, lengths in cells.

    `length_cells` is GSTools' `len_scale`: for `exponential` the e-folding length ℓ,
    ρ(h) = exp(−h/ℓ); for `matern` (smoothness `nu`) GSTools' scaled form, ρ(h) =
    2^{1−ν}/Γ(ν)·(√ν h/ℓ)^ν·K_ν(√ν h/ℓ).
    """

    model: CovarianceModel = "exponential"
    length_cells: float = 5.0
    nu: float = 1.5

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"error correlation model {self.model!r}: choose one of {', '.join(MODELS)}")
        if not self.length_cells > 0:
            raise ValueError(f"length_cells={self.length_cells}: must be positive")
        if not self.nu > 0:
            raise ValueError(f"nu={self.nu}: must be positive")


def _gstools_model(
    model: str, length_cells: float, nu: float, var: float = 1.0, nugget: float = 0.0
) -> gstools.CovModel:
    """The GSTools covariance model both the sampler and the fit use (one place names the mapping)."""
    import gstools as gs

    if model == "exponential":
        return gs.Exponential(dim=2, var=var, len_scale=length_cells, nugget=nugget)
    return gs.Matern(dim=2, var=var, len_scale=length_cells, nugget=nugget, nu=nu)


def correlated_field(shape: tuple[int, int], correlation: ErrorCorrelation, seed: int) -> np.ndarray:
    """A unit-variance Gaussian random field (float64, `shape` = (rows, cols)) with covariance
    `correlation`, drawn by GSTools' randomization method on the structured grid of cell centres;
    the same (shape, correlation, seed) gives the same field."""
    import gstools as gs

    srf = gs.SRF(_gstools_model(correlation.model, correlation.length_cells, correlation.nu), seed=int(seed))
    rows, cols = shape
    return np.asarray(srf.structured([np.arange(rows, dtype=float), np.arange(cols, dtype=float)]), dtype=np.float64)


def pair_correlation_sum(kept: np.ndarray, rho: Callable[[np.ndarray], np.ndarray], max_lag: int) -> float:
    """ΣᵢΣⱼ ρ(d_ij) over the kept cells i, j of a 2-D mask (d in cells, i = j included: ρ(0)).

    Without an N×N matrix: on a regular grid the sum is Σ_lag ρ(|lag|)·A(lag), A the
    autocorrelation of the mask (the number of kept pairs at that lag), computed by one FFT
    convolution and rounded to the integer counts it is. Lags beyond `max_lag` are dropped
    (the caller picks it where ρ is negligible).
    """
    from scipy.signal import fftconvolve

    mask = np.asarray(kept, dtype=np.float64)
    ny, nx = mask.shape
    pairs = np.rint(fftconvolve(mask, mask[::-1, ::-1], mode="full"))  # lag (0, 0) at (ny-1, nx-1)
    ky, kx = min(max_lag, ny - 1), min(max_lag, nx - 1)
    window = pairs[ny - 1 - ky : ny + ky, nx - 1 - kx : nx + kx]
    dy = np.arange(-ky, ky + 1)[:, None]
    dx = np.arange(-kx, kx + 1)[None, :]
    return float(np.sum(rho(np.hypot(dy, dx)) * window))


@dataclass(frozen=True)
class CorrelationFit:
    """A covariance model fitted to standardized residuals, and what it implies for the kept points.

    `length_cells` is the fitted GSTools `len_scale` (for exponential the e-folding length ℓ);
    `length` = ℓ·cell_size when a cell size was given. `sill` = partial sill + nugget. ρ between
    distinct points is (partial sill / sill)·cor(h), ρ(0) = 1. Over the N kept points:
    n_eff_scale = N²/ΣΣρ² (for noise scales) and n_eff_location = N²/ΣΣρ (for locations such as
    member contrasts), as the reference experiment found each calibrates its kind of parameter.
    """

    model: str
    length_cells: float
    length: float | None
    cell_size: float | None
    sill: float
    nugget: float
    nu: float
    n_points: int
    n_eff_scale: float
    n_eff_location: float
    #: the empirical semivariogram the model was fitted to (bin centres in cells, γ), for figures
    lags_cells: tuple[float, ...] = ()
    gamma: tuple[float, ...] = ()
    #: the fitted ℓ sits at its upper bound: the residuals stay correlated beyond the longest lag
    #: measured, so ℓ (and n_eff with it) is set by the bound, not by the data
    at_bound: bool = False

    def variogram(self, distance_cells: np.ndarray) -> np.ndarray:
        """The fitted semivariogram γ(h) = sill·(1 − ρ(h)) (0 at h = 0)."""
        return self.sill * (1.0 - self.correlation(distance_cells))

    def correlation(self, distance_cells: np.ndarray) -> np.ndarray:
        """ρ at distances in cells (1 at zero distance, the nugget's share removed elsewhere)."""
        d = np.asarray(distance_cells, dtype=np.float64)
        partial = self.sill - self.nugget
        cor = _gstools_model(self.model, self.length_cells, self.nu).cor(d / self.length_cells)
        return np.where(d == 0, 1.0, (partial / self.sill if self.sill > 0 else 0.0) * cor)


def _lag_bins(max_lag: float, bins: int) -> np.ndarray:
    """Edges at half cells, finer at short lags, where short correlation lengths show."""
    centres = np.unique(np.round(np.geomspace(1.0, max_lag, bins)))
    return np.append(centres - 0.5, centres[-1] + 0.5)


def estimate_correlation(
    residuals: np.ndarray,
    cell_size: float | None = None,
    *,
    model: CovarianceModel = "exponential",
    nu: float = 1.5,
    max_points: int = 1200,
    max_lag_cells: float | None = None,
    bins: int = 25,
    seed: int = 0,
    with_n_eff: bool = True,
) -> CorrelationFit:
    """Fit a covariance model to a 2-D field of standardized residuals (NaN where not kept).

    An empirical (Matheron) semivariogram of at most `max_points` kept cells (GSTools'
    `sampling_size`, drawn with `sampling_seed=seed`: the same field and seed give the same fit;
    the pair count grows as the square of the points), on bins up to `max_lag_cells` (default a third
    of the smaller grid side, at most 100), fitted with a nugget; then n_eff over all kept cells
    (see `CorrelationFit`; `with_n_eff=False` leaves n_eff at N and skips that sum).
    """
    import gstools as gs

    field = np.asarray(residuals, dtype=np.float64)
    if field.ndim != 2:
        raise ValueError(f"residuals must be a 2-D field, got shape {field.shape}")
    kept = np.isfinite(field)
    n = int(kept.sum())
    if n < 10:
        raise ValueError(f"only {n} kept residuals: too few for a variogram")
    rows, cols = np.nonzero(kept)
    max_lag = max_lag_cells if max_lag_cells is not None else min(100.0, min(field.shape) / 3.0)
    centres, gamma = gs.vario_estimate(
        (rows.astype(float), cols.astype(float)), field[kept], _lag_bins(max_lag, bins),
        sampling_size=max_points if n > max_points else None, sampling_seed=seed,
    )  # fmt: skip
    fitted = _gstools_model(model, 1.0, nu)
    longest = 10.0 * max_lag
    fitted.len_scale_bounds = [1e-3, longest]
    fixed = {"nu": False} if model == "matern" else {}  # ν is chosen, not fitted
    fitted.fit_variogram(centres, gamma, nugget=True, **fixed)
    sill = float(fitted.var + fitted.nugget)
    fit = CorrelationFit(
        model=model, length_cells=float(fitted.len_scale), length=None if cell_size is None else float(fitted.len_scale) * cell_size,
        cell_size=cell_size, sill=sill, nugget=float(fitted.nugget), nu=nu, n_points=n, n_eff_scale=float(n), n_eff_location=float(n),
        at_bound=bool(fitted.len_scale >= longest * (1 - 1e-6)),
    )  # fmt: skip
    if not with_n_eff:  # the caller sums ρ over its own points (fusion.inference.likelihood)
        return replace(fit, lags_cells=tuple(map(float, centres)), gamma=tuple(map(float, gamma)))
    reach = _negligible_lag(fit, max(field.shape))
    sum_rho = pair_correlation_sum(kept, fit.correlation, reach)
    sum_rho2 = pair_correlation_sum(kept, lambda d: fit.correlation(d) ** 2, reach)
    return replace(
        fit, n_eff_scale=n * n / sum_rho2, n_eff_location=n * n / sum_rho,
        lags_cells=tuple(map(float, centres)), gamma=tuple(map(float, gamma)),
    )  # fmt: skip


def _negligible_lag(fit: CorrelationFit, longest: int) -> int:
    """The first whole lag beyond which |ρ| < NEGLIGIBLE (at most the grid's longest side)."""
    d = np.arange(1, longest + 1, dtype=np.float64)
    big = np.flatnonzero(np.abs(fit.correlation(d)) >= NEGLIGIBLE)
    return int(d[big[-1]]) if big.size else 0

