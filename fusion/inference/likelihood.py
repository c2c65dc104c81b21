"""`likelihood.form`: how much evidence each stream's kept points carry when their errors correlate.

N kept pixels of one stream are not N independent observations when the errors are correlated
over many cells (DESIGN.md, "Likelihood forms and correlated errors"). Each form is a pair of
per-stream weights on the Gaussian log-likelihood of that stream, one in the sampled density
(which fixes the noise parameters σ_base, β) and one in the post-hoc member log-likelihoods
`logL_scaled` (which fix the member weights w):

    tempered     density α_s/N_s              members α_s/N_s          (the prototype's, defect 6)
    independent  density 1                    members 1                (every point counts once)
    effective    density n_eff,scale,s/N_s    members n_eff,loc,s/N_s
    blocks       density 1                    members 1                 on block means (fusion.inference.blocks)

with, over the N_s kept points of stream s and ρ the fitted correlation between two of them
(points of different (stream, interval) blocks independent),

    n_eff,scale = N² / ΣᵢΣⱼ ρᵢⱼ²   (calibrates a noise scale)
    n_eff,loc   = N² / ΣᵢΣⱼ ρᵢⱼ    (calibrates a location, such as a member contrast)

as measured in ../shared/reference/correlated-errors.md: one factor cannot serve both kinds of
quantity. `blocks` scores squares of at least one correlation length instead of points, each
block's variance from the fitted covariance (`fusion.inference.blocks`). The stream weights α
only enter `tempered`. Both `method: nuts` and `method: laplace` take the weights through
`NoiseSettings` and the points through `form_inputs`, so they sample the same density.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared

if TYPE_CHECKING:  # the model module loads Numba: `fusion run`'s worker estimates the correlation without it
    from fusion.config import Config
    from fusion.data.correlation import CorrelationFit
    from fusion.inference.noise import NoiseSettings

__all__ = [
    "FORMS", "NEEDS_CORRELATION", "StreamCorrelation", "stream_correlations", "form_settings", "form_inputs",
    "likelihood_record",
]  # fmt: skip

FORMS: tuple[str, ...] = ("tempered", "independent", "effective", "blocks")
#: forms whose sampled density needs the correlation estimate before sampling
NEEDS_CORRELATION: frozenset[str] = frozenset({"effective", "blocks"})
STREAM_NAMES: dict[int, str] = {THICK: "thick", VEL: "vel"}


@dataclass(frozen=True)
class StreamCorrelation:
    """One stream's fitted error correlation and what it implies for its kept points."""

    stream: int
    n_points: int
    length_cells: float
    length: float | None  # in the files' x/y units, when they carry x/y
    model: str
    source: str  # "estimate" (variogram of standardized residuals) or "config"
    n_eff_scale: float
    n_eff_location: float
    sill: float = 1.0
    nugget: float = 0.0
    lags_cells: tuple[float, ...] = ()  # the empirical semivariogram (estimate only)
    gamma: tuple[float, ...] = ()
    at_bound: bool = False  # the estimate's ℓ at its upper bound (`CorrelationFit.at_bound`)

    def correlation(self, distance_cells: np.ndarray) -> np.ndarray:
        """ρ at distances in cells: 1 at 0, (partial sill / sill)·exp(−h/ℓ) beyond (GSTools'
        `Exponential`, the model `stream_correlations` fits), evaluated with NumPy: `fusion run`'s
        main process, which forms the `blocks` squares, never imports GSTools."""
        if self.model != "exponential":
            raise ValueError(f"correlation model {self.model!r}: only the exponential model is evaluated here")
        d = np.asarray(distance_cells, dtype=np.float64)
        share = (self.sill - self.nugget) / self.sill if self.sill > 0 else 0.0
        return np.where(d == 0, 1.0, share * np.exp(-d / self.length_cells))

    def record(self) -> dict[str, Any]:
        return {
            "n_points": self.n_points, "correlation_length_cells": self.length_cells,
            "correlation_length": self.length, "model": self.model, "source": self.source,
            "n_eff_scale": self.n_eff_scale, "n_eff_location": self.n_eff_location,
            "sill": self.sill, "nugget": self.nugget, "length_at_bound": self.at_bound,
            "variogram": {"lag_cells": list(self.lags_cells), "gamma": list(self.gamma)},
        }  # fmt: skip

    def bound_warning(self) -> str | None:
        """What a user is told when ℓ is the fit's bound rather than an estimate (None otherwise)."""
        if not self.at_bound or self.n_eff_scale >= 0.9 * self.n_points:  # at the bound but negligible (white noise)
            return None
        longest = max(self.lags_cells, default=float("nan"))
        return (
            f"{STREAM_NAMES[self.stream]}: the residuals stay correlated beyond the variogram's longest lag "
            f"({longest:.3g} cells), so the fitted correlation length is its bound ({self.length_cells:.4g} cells) "
            f"and n_eff ({self.n_eff_scale:.4g} of {self.n_points} points) follows from that bound, not from the "
            "data; set likelihood.correlation_length to a length you trust, or check the residual maps for a trend"
        )


def _pair_windows(masks: np.ndarray, reach: int) -> np.ndarray:
    """Σ over blocks of each block mask's autocorrelation (kept pairs per lag), lags |dy|,|dx| ≤ reach.

    One FFT of all masks at once; rounded to the integer counts it is.
    """
    import scipy.fft

    rows_any, cols_any = np.flatnonzero(masks.any(axis=(0, 2))), np.flatnonzero(masks.any(axis=(0, 1)))
    masks = masks[:, rows_any[0] : rows_any[-1] + 1, cols_any[0] : cols_any[-1] + 1]  # the kept cells' box
    _, ny, nx = masks.shape
    ky, kx = min(reach, ny - 1), min(reach, nx - 1)
    # padding by the reach (not the whole side) keeps every lag ≤ reach free of wrap-around
    shape = (scipy.fft.next_fast_len(ny + ky, real=True), scipy.fft.next_fast_len(nx + kx, real=True))
    spec = scipy.fft.rfft2(masks, s=shape, axes=(1, 2), workers=1)
    power = (spec * spec.conj()).real.sum(axis=0)
    pairs = np.rint(scipy.fft.irfft2(power, s=shape, workers=1))  # lag (0, 0) at [0, 0], negative lags wrap
    rows = np.r_[np.arange(-ky, 0) % shape[0], np.arange(0, ky + 1)]
    cols = np.r_[np.arange(-kx, 0) % shape[1], np.arange(0, kx + 1)]
    return pairs[np.ix_(rows, cols)]


def _neff(fit: CorrelationFit, masks: np.ndarray) -> tuple[float, float]:
    """(n_eff_scale, n_eff_location) of the kept points of `masks` (blocks independent)."""
    from fusion.data.correlation import _negligible_lag

    n = float(masks.sum())
    reach = _negligible_lag(fit, max(masks.shape[1:]))
    window = _pair_windows(masks.astype(np.float64), reach)
    k = (window.shape[0] - 1) // 2, (window.shape[1] - 1) // 2
    dy = np.arange(-k[0], k[0] + 1)[:, None]
    dx = np.arange(-k[1], k[1] + 1)[None, :]
    rho = fit.correlation(np.hypot(dy, dx))
    return n * n / float(np.sum(rho * rho * window)), n * n / float(np.sum(rho * window))


def _block_masks(prepared: Prepared, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, rows, cols) kept-point masks of one stream, and the block ids in that order."""
    layout = prepared.layout
    sel = prepared.stream == stream
    blocks = np.unique(layout.block[sel])
    ny, nx = layout.grid_shape
    masks = np.zeros((blocks.size, ny * nx), dtype=bool)
    where = np.searchsorted(blocks, layout.block[sel])
    masks[where, layout.pixel[sel]] = True
    return masks.reshape(blocks.size, ny, nx), blocks


def _residual_field(prepared: Prepared, stream: int, block: int) -> np.ndarray:
    """Standardized residuals (y − nearest member)/σ_obs of one block on the grid, NaN elsewhere.

    The nearest member (least Σ r²/σ_obs² over the block) stands for the observation error: about
    the ensemble mean, the members' own spread, smooth over the whole field, dominates the residuals
    and the fitted ℓ measures the ensemble, not the error (on two cases differing only in the
    noise's ℓ, 2 against 8 cells, the thickness ℓ read 3.0 and 3.3 about the mean)."""
    layout = prepared.layout
    sel = np.flatnonzero((prepared.stream == stream) & (layout.block == block))
    sigma = np.maximum(prepared.sigma_obs[sel].astype(np.float64), 1e-12)
    resid = prepared.y_obs[sel].astype(np.float64) - prepared.F[:, sel]
    nearest = int(np.argmin(np.sum((resid / sigma) ** 2, axis=1)))
    z = resid[nearest] / sigma
    field = np.full(layout.grid_shape[0] * layout.grid_shape[1], np.nan)
    field[layout.pixel[sel]] = (z - z.mean()) / max(float(z.std()), 1e-12)
    return field.reshape(layout.grid_shape)


def stream_correlations(
    prepared: Prepared, correlation_length: str | float = "estimate", *, seed: int = 0
) -> dict[int, StreamCorrelation]:
    """Per stream with points: the fitted (or configured) correlation and n_eff of its kept points.

    "estimate" fits an exponential covariance (GSTools) to the standardized residuals of the
    stream's largest block; a number fixes ℓ in cells. Raises ValueError without a point layout.
    """
    from fusion.data.correlation import CorrelationFit, estimate_correlation

    if prepared.layout is None:
        raise ValueError("the prepared points carry no grid layout: prepare them from files to estimate correlation")
    cell = prepared.layout.cell_size
    out = {}
    for s in (THICK, VEL):
        n = int(np.count_nonzero(prepared.stream == s))
        if n == 0:
            continue
        masks, blocks = _block_masks(prepared, s)
        if correlation_length == "estimate":
            biggest = int(blocks[int(np.argmax(masks.sum(axis=(1, 2))))])
            fit = estimate_correlation(_residual_field(prepared, s, biggest), cell, seed=seed, with_n_eff=False)
            source = "estimate"
        else:
            length = float(correlation_length)
            fit = CorrelationFit(
                model="exponential", length_cells=length, length=None if cell is None else length * cell,
                cell_size=cell, sill=1.0, nugget=0.0, nu=1.5, n_points=n, n_eff_scale=n, n_eff_location=n,
            )  # fmt: skip
            source = "config"
        n_scale, n_loc = _neff(fit, masks)
        out[s] = StreamCorrelation(
            stream=s, n_points=n, length_cells=fit.length_cells,
            length=None if cell is None else fit.length_cells * cell, model=fit.model, source=source,
            n_eff_scale=n_scale, n_eff_location=n_loc, sill=fit.sill, nugget=fit.nugget,
            lags_cells=fit.lags_cells, gamma=fit.gamma, at_bound=fit.at_bound,
        )  # fmt: skip
    return out


def form_settings(
    base: NoiseSettings, form: str, n_points: dict[int, int], correlations: dict[int, StreamCorrelation] | None
) -> NoiseSettings:
    """`base` (α, inflation) with the per-stream weights of `form` (see the module docstring)."""
    if form == "tempered":
        return base
    if form in ("independent", "blocks"):  # blocks: every block counts once (on `form_inputs`' points)
        return replace(base, tempered=False, density_scale=(1.0, 1.0), member_scale=(1.0, 1.0))
    if form == "effective":
        if correlations is None:
            raise ValueError("likelihood.form effective needs the streams' correlation (n_eff)")

        def ratio(s: int, attr: str) -> float:
            c = correlations.get(s)
            n = max(n_points.get(s, 0), 1)
            return 1.0 if c is None else min(1.0, getattr(c, attr) / n)

        return replace(
            base, tempered=False,
            density_scale=(ratio(THICK, "n_eff_scale"), ratio(VEL, "n_eff_scale")),
            member_scale=(ratio(THICK, "n_eff_location"), ratio(VEL, "n_eff_location")),
        )  # fmt: skip
    raise ValueError(f"likelihood.form {form!r}: choose one of {', '.join(FORMS)}")


def form_inputs(
    base: NoiseSettings,
    form: str,
    prepared: Prepared,
    correlations: dict[int, StreamCorrelation] | None,
    min_valid: float = 0.75,
    *,
    naive_block_sigma: bool = False,
    formed: Prepared | None = None,
) -> tuple[NoiseSettings, Prepared, dict[int, Any] | None]:
    """(settings, the points to sample and weigh members on, block summaries or None) of `form`.

    Every form but `blocks` samples the prepared points themselves; `blocks` their square means
    (`fusion.inference.blocks.block_prepared`; `naive_block_sigma` is its planted defect σ/√n),
    or `formed`, those means formed already from the same `base` and `min_valid` (returned as
    they are, without summaries).
    """
    n_points = {s: int(np.count_nonzero(prepared.stream == s)) for s in (THICK, VEL)}
    settings = form_settings(base, form, n_points, correlations)
    if form != "blocks":
        return settings, prepared, None
    from fusion.inference.blocks import block_prepared

    if correlations is None:
        raise ValueError("likelihood.form blocks needs the streams' correlation (block side, covariance)")
    if formed is not None:
        return settings, formed, None
    blocks, summaries = block_prepared(
        prepared, correlations, min_valid, inflation2=(base.inflation2(THICK), base.inflation2(VEL)),
        naive_sigma=naive_block_sigma,
    )  # fmt: skip
    return settings, blocks, summaries


def effective_form(cfg: Config) -> str:
    """The form a run samples: `compat: prototype` always samples `tempered`."""
    return "tempered" if cfg.compat == "prototype" else cfg.likelihood.form


def likelihood_record(
    form: str,
    settings: NoiseSettings,
    prepared: Prepared,
    correlations: dict[int, StreamCorrelation] | None,
    blocks: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """summary.json's `likelihood`: the form, its weights, and per stream ℓ, N and n_eff
    (and, under `blocks`, the squares' side and counts)."""
    streams: dict[str, Any] = {}
    for s in (THICK, VEL):
        n = int(np.count_nonzero(prepared.stream == s))
        entry: dict[str, Any] = {"n_points": n}
        if correlations is not None and s in correlations:
            entry.update(correlations[s].record())
        if blocks is not None and s in blocks:
            entry.update(blocks[s].record())
        streams[STREAM_NAMES[s]] = entry
    return {
        "form": form,
        "density_scale": None if settings.density_scale is None else dict(zip(STREAM_NAMES.values(), settings.density_scale)),
        "member_scale": None if settings.member_scale is None else dict(zip(STREAM_NAMES.values(), settings.member_scale)),
        "streams": streams,
    }


def sensitivity(
    prepared: Prepared,
    base: NoiseSettings,
    correlations: dict[int, StreamCorrelation] | None,
    sle: np.ndarray,
    quantiles: tuple[float, float, float],
    *,
    min_valid: float = 0.75,
    draws: int = 200,
    seed: int = 0,
    formed: Mapping[str, Prepared] | None = None,
    calibrated: tuple[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """summary.json's `sensitivity`: E_post[w] and the weighted SLE quantiles under every form,
    and, with `calibrated` (a form, its member temperatures {stream: λ}), that form's weights at
    them as `calibrated` (the run's default weighting; fusion.inference.calibration).

    Each form is fitted by Laplace (a four-parameter mode: milliseconds), whatever the run's
    own method, so the table costs little beside the run; a form that cannot be fitted (no
    correlation for `effective`/`blocks`, no Gaussian at the mode) says why instead. The
    optimiser runs with BLAS on one thread: its operations are on 4-vectors, and OpenBLAS's idle
    threads spin-wait beside it, which on a machine busy with the run's other process cost up
    to 70 ms of CPU per fit (1–2 ms on one thread, the same bits); the member log-likelihoods
    run on one thread anyway (`member_logliks`).

    What the forms share is computed once: `tempered`, `independent` and `effective` weigh the
    same prepared points, so their per-stream statistics (`noise.stream_blocks`) are taken once
    and given each form's weights. `formed` holds points a form's run has formed already (the
    run's own `blocks` means, from `form_inputs` with the same `base` and `min_valid`), used
    instead of forming them again. The numbers are those of fitting each form on its own.
    """
    from threadpoolctl import threadpool_limits

    from fusion.inference import noise
    from fusion.inference.laplace import LaplaceError, _CallbackDensity, draw_gaussian, fit_laplace
    from fusion.inference.fused_density import FusedDensity
    from fusion.inference.parameters import PARAMS
    from fusion.inference.posterior import member_logliks
    from fusion.projection import weighted_quantile

    out: dict[str, Any] = {"method": "laplace", "draws": draws, "forms": {}}
    formed = formed or {}
    statistics = None  # of the prepared points, for every form that weighs them
    with threadpool_limits(limits=1, user_api="blas"):
        for form in FORMS:
            try:
                settings, points, _ = form_inputs(
                    base, form, prepared, correlations, min_valid, formed=formed.get(form)
                )
                if points is prepared:
                    if statistics is None:
                        statistics = noise.stream_blocks(prepared, base)
                    fused = FusedDensity.from_stream_blocks([b.with_settings(settings) for b in statistics])
                else:
                    fused = FusedDensity(points, settings)
                fit = fit_laplace(_CallbackDensity(fused))
            except (ValueError, LaplaceError) as exc:
                out["forms"][form] = {"error": str(exc).splitlines()[0]}
                continue
            x, _ = draw_gaussian(fit, 1, draws, seed)
            theta = {p: np.exp(x[0, :, j]) for j, p in enumerate(PARAMS)}
            rows = [(form, settings)]
            if calibrated is not None and calibrated[0] == form:
                pair = (float(calibrated[1]["thick"]), float(calibrated[1]["vel"]))
                rows.append(("calibrated", replace(settings, member_temperature=pair)))
            for name, members in rows:
                w = member_logliks(points, theta, members)["w"].mean(axis=0)
                lo, mid, hi = (float(v) for v in weighted_quantile(sle, w, list(quantiles)))
                out["forms"][name] = {
                    "weights": dict(zip(prepared.member_ids, map(float, w), strict=True)),
                    "lower": lo, "median": mid, "upper": hi,
                    "max_weight": float(w.max()), "min_weight": float(w.min()),
                    **({"form": form, "temperature": dict(calibrated[1])} if name == "calibrated" else {}),
                }  # fmt: skip
    return out
