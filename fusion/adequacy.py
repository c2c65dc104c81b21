"""Does the noise model fit the data? Posterior predictive checks of one fit (issue 20).

A converged, reproducible posterior can rest on a noise model the data contradict: a trend
every member misses, or uncertainties off by a factor of two in one region. This module asks,
per stream, from the posterior draws alone (Gelman et al. 2020, Gabry et al. 2019):

- **standardized residuals**: (y − F_top)/σ̄_tot for the top-weighted member (σ̄_tot² the
  posterior mean of σ_tot²), and Φ⁻¹(PIT) for the weighted mixture (the quantile residual:
  N(0, 1) exactly when the predictive is right);
- **the PIT** of each kept point under the posterior predictive, the mixture over thinned draws
  θ_d and members m with weights w_dm of N(F_mi, σ_tot,i(θ_d)); analytic for Gaussian errors,
  so no predictive draws are stored;
- **block-level uniformity**: real residuals are correlated over tens of km, so 20,000 PIT
  values carry far fewer than 20,000 pieces of evidence and a pointwise test turns every real
  field red. Points are grouped into square tiles at least `block_lengths` correlation lengths
  wide within each (stream, interval) block (the length where the correlation of the quantile
  residuals, fitted as issue 19 fits it, falls to e⁻¹); a tile's score is its mean quantile
  residual over that mean's sd under the correlation, s_t = z̄_t / √(n_t⁻² Σᵢⱼ ρᵢⱼ), and its
  block PIT u_t = Φ(s_t) is uniform under the model. Their ECDF is tested against ArviZ's
  simultaneous band (Säilynoja et al. 2022), gated on the side of PITs in the tails or shifted;
- **regions and uncertainty bins**: the grid cut into `region_boxes` × `region_boxes` boxes,
  and the stated σ_obs into `uncertainty_bins` quantile bins; in each, the mean quantile
  residual (a trend the members lack) and the mean square (uncertainties too small) against
  their exact variances under the correlation, Bonferroni over groups, streams and both tests;
  the worst boxes name where the model fails. An under-dispersed group (a predictive wider than
  the data) is reported, not failed.

Two sets of member weights, when the run calibrates its member temperature (issue 34): the
regions and uncertainty bins ask whether the *noise model* states its errors right, so they are
judged with the noise model's own weights (λ = 1: the member the data favour); the block-level
uniformity and the coverage ask whether the *predictive users get* is calibrated, so they are
judged with the calibrated weights (`w_predictive`). On an ensemble without a true member the
nearest member's smooth structural error shifts whole tiles, which the noise model alone calls
a misfit (the block PITs in the tails) and the calibrated mixture accounts for.

Array-level functions only (NumPy; SciPy's special functions and ArviZ's ECDF band imported
late): `fusion run` computes them in its worker process (`fusion.worker`), the harness check
`adequacy` (`harness.checks.adequacy`) on a case; the figure is `fusion.figures.adequacy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.blas_threads import one_blas_thread
from fusion.inference.noise import NoiseSettings, sigma_obs_squared
from fusion.inference.parameters import PARAMS

if TYPE_CHECKING:
    from collections.abc import Callable

    import xarray as xr

    from fusion.data.correlation import CorrelationFit

__all__ = [
    "FIT_FILES",
    "NOMINAL_1",
    "NOMINAL_2",
    "STREAM_NAMES",
    "AdequacySettings",
    "Assessment",
    "ExtraVariance",
    "assess",
    "coverage",
    "mixture_pit",
    "predictive_pits",
    "subset",
    "tile_keys",
    "thin_draws",
]

FIT_FILES: tuple[str, ...] = ("fit.json", "residuals.png")
NOMINAL_1, NOMINAL_2 = 0.6827, 0.9545  # 2Φ(1) − 1, 2Φ(2) − 1
STREAM_NAMES: dict[int, str] = {THICK: "thick", VEL: "vel"}
_EPS = 1e-12


@dataclass(frozen=True)
class AdequacySettings:
    """How the check is made (defaults: `harness.gates.AdequacyGate`'s)."""

    alpha: float = 0.01  # family-wise level of the uniformity and regional tests, per stream
    block_lengths: float = 2.0  # tile width in correlation lengths (at least 1 cell)
    region_boxes: int = 4  # the grid is cut into boxes × boxes regions
    uncertainty_bins: int = 10  # quantile bins of the stated σ_obs
    pit_draws: int = 20  # thinned posterior draws in the predictive mixture
    n_simulations: int = 200  # ArviZ's simultaneous-band simulations (the harness check: 1000)
    worst: int = 5  # regions listed per stream


@dataclass(frozen=True)
class ExtraVariance:
    """The variance the noise model adds to σ_obs² per stream (`NoiseSettings.inflation2`): all the
    check reads of the noise settings, as a plain record, so `fusion run`'s worker computes the
    check without loading the model module and its Numba kernels (0.2 s of CPU)."""

    thick: float
    vel: float

    @classmethod
    def of(cls, settings: NoiseSettings) -> ExtraVariance:
        return cls(thick=settings.inflation2(THICK), vel=settings.inflation2(VEL))

    def inflation2(self, stream: int) -> float:
        return self.vel if stream == VEL else self.thick


def thin_draws(
    posterior: xr.Dataset,
    n: int,
    member_ids: tuple[str, ...],
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(θ (D, 4) in PARAMS order, w (D, M) in `member_ids` order): D ≤ n draws evenly spaced over
    the flattened chains, enough for an analytic mixture predictive without storing predictive draws.

    `weights` gives w of the picked θ rows, for draws whose `w` is not computed yet (`fusion run`
    starts the check before the member quantities of every draw: the same values row for row)."""
    theta = np.stack([np.asarray(posterior[p].values, dtype=np.float64).reshape(-1) for p in PARAMS], axis=1)
    pick = np.unique(np.round(np.linspace(0, theta.shape[0] - 1, min(n, theta.shape[0]))).astype(int))
    if weights is not None:
        return theta[pick], weights(theta[pick])
    w = np.asarray(posterior["w"].sel(member=list(member_ids)).values, dtype=np.float64).reshape(-1, len(member_ids))
    return theta[pick], w[pick]


def sigma_tot2(prepared: Prepared, theta: np.ndarray, settings: NoiseSettings | ExtraVariance) -> np.ndarray:
    """σ²_tot (D, N) at every point for draws θ (D, 4): σ_obs² + σ_base²(1 + β·speed) (+ inflation²)."""
    vel = prepared.stream == VEL
    theta = np.atleast_2d(theta)
    sb = np.where(vel, theta[:, 1, None], theta[:, 0, None])
    beta = np.where(vel, theta[:, 3, None], theta[:, 2, None])
    extra = np.where(vel, settings.inflation2(VEL), settings.inflation2(THICK))
    speed = np.asarray(prepared.speed, dtype=np.float64)
    return sigma_obs_squared(prepared) + extra + sb**2 * (1.0 + beta * speed)


def mixture_pit(
    prepared: Prepared,
    theta: np.ndarray,
    w: np.ndarray,
    settings: NoiseSettings | ExtraVariance,
    var: np.ndarray | None = None,
) -> np.ndarray:
    """PIT_i = (1/D) Σ_d Σ_m w_dm Φ((y_i − F_mi)/σ_tot,i(θ_d)), one draw at a time (memory M·N),
    members with negligible weight in a draw skipped. `var`: `sigma_tot2(prepared, theta,
    settings)` when the caller has it already."""
    from scipy.special import ndtr

    y = np.asarray(prepared.y_obs, dtype=np.float64)
    sd = np.sqrt(sigma_tot2(prepared, theta, settings) if var is None else var)
    pit = np.zeros(prepared.n_points)
    with one_blas_thread():  # small products: a second BLAS thread only spins beside `fusion run`'s worker
        for d in range(theta.shape[0]):
            keep = np.flatnonzero(w[d] > 1e-9 * w[d].max())
            pit += w[d, keep] @ ndtr((y - prepared.F[keep]) / sd[d]) / w[d, keep].sum()
    return pit / theta.shape[0]


def predictive_pits(
    prepared: Prepared,
    theta: np.ndarray,
    w: np.ndarray,
    settings: NoiseSettings | ExtraVariance,
    w_predictive: np.ndarray | None = None,
    var: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(PIT under `w_predictive`, or under `w` without it; PIT under `w` when `w_predictive` is
    given, else None): the check's costly part (draws × members × points normal CDFs), a step of
    its own so that `fusion run` computes it in the process that holds the draws while its figure
    worker draws (`assess`'s `pits`). `var`: `sigma_tot2(prepared, theta, settings)` if known."""
    var = sigma_tot2(prepared, theta, settings) if var is None else var
    pit = mixture_pit(prepared, theta, w if w_predictive is None else w_predictive, settings, var)
    return pit, None if w_predictive is None else mixture_pit(prepared, theta, w, settings, var)


def quantile_residual(pit: np.ndarray) -> np.ndarray:
    """Φ⁻¹(PIT), clipped away from ±∞: N(0, 1) when the predictive is right."""
    from scipy.special import ndtri

    return ndtri(np.clip(pit, _EPS, 1.0 - _EPS))


def coverage(pit: np.ndarray) -> dict[str, float]:
    """Share of points inside the central 1σ and 2σ predictive intervals (nominal 0.6827, 0.9545)."""
    dist = np.abs(2.0 * np.asarray(pit) - 1.0)
    n = max(dist.size, 1)
    return {"1sigma": float(np.sum(dist <= NOMINAL_1) / n), "2sigma": float(np.sum(dist <= NOMINAL_2) / n)}


def residual_correlation(
    z: np.ndarray, prepared: Prepared, stream: int, seed: int = 0, max_points: int = 600
) -> CorrelationFit | None:
    """The correlation of the quantile residuals of `stream`, fitted as issue 19 fits it
    (`fusion.data.correlation.estimate_correlation`, GSTools) on the stream's largest
    (stream, interval) block; None when there are too few points.

    Fitted on Φ⁻¹(PIT), not on (y − mean member)/σ_obs: the latter also carries the spatial
    pattern of σ_obs and of the members' shared misfit, which lengthens ℓ (to the fit's bound on
    data drawn from the model itself) and would leave a handful of tiles with no power.
    """
    from fusion.data.correlation import estimate_correlation

    layout = prepared.layout
    sel = prepared.stream == stream
    if layout is None or not np.any(sel):
        return None
    blocks, counts = np.unique(layout.block[sel], return_counts=True)
    pick = np.flatnonzero(sel & (layout.block == blocks[int(np.argmax(counts))]))
    field = np.full(layout.grid_shape[0] * layout.grid_shape[1], np.nan)
    field[layout.pixel[pick]] = z[pick]
    try:
        return estimate_correlation(
            field.reshape(layout.grid_shape), layout.cell_size, max_points=max_points, seed=seed, with_n_eff=False
        )
    except ValueError:  # too few points for a variogram
        return None


def effective_length(fit: CorrelationFit, longest: int) -> float:
    """The lag (cells) where the fitted ρ(h), nugget included, first falls to e⁻¹: ℓ itself for an
    exponential without nugget, shorter with one, and 1 cell when the residuals are all nugget
    (independent), however long the fitted `len_scale` of a vanishing partial sill."""
    h = np.linspace(0.0, float(longest), 20 * longest + 1)[1:]
    below = np.flatnonzero(fit.correlation(h) <= math.exp(-1.0))
    return max(1.0, float(h[below[0]]) if below.size else float(longest))


@dataclass(frozen=True)
class ShortRange:
    """ρ(h) = exp(−h/ℓ): the correlation the tests count, at the effective length. A fitted long
    tail of small amplitude is left out on purpose: it is what a regional misfit looks like, and
    counting it as error correlation would let every trend pass. Below 1e-6 beyond `reach`."""

    length: float

    @property
    def reach(self) -> float:
        return self.length * math.log(1e6)

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return np.exp(-np.asarray(d, dtype=float) / self.length)


# --- tiles and their scores ---------------------------------------------------------------------


@dataclass
class Tiles:
    """One stream's tiles: score s_t, block PIT u_t = Φ(s_t), size, centre (row, col), (stream, interval) block."""

    score: np.ndarray
    pit: np.ndarray
    size: np.ndarray
    row: np.ndarray
    col: np.ndarray
    block: np.ndarray
    width: int


def _pair_sum(rows: np.ndarray, cols: np.ndarray, rho: Any) -> float:
    """Σᵢⱼ ρ(d_ij) over the points of one tile (i = j included), in row chunks (memory n·chunk)."""
    return _pair_sums(rows, cols, rho)[0]


def _pair_sums(rows: np.ndarray, cols: np.ndarray, rho: Any) -> tuple[float, float]:
    """(Σᵢⱼ ρ(d_ij), Σᵢⱼ ρ(d_ij)²) over a set of points (i = j included). With a `reach` on ρ (the
    lag beyond which it is negligible) only the pairs within it are visited (a k-d tree), else
    all, in row chunks (memory n·chunk)."""
    reach = getattr(rho, "reach", None)
    if reach is not None:
        from scipy.spatial import cKDTree

        i, j = cKDTree(np.column_stack([rows, cols])).query_pairs(r=reach, output_type="ndarray").T
        r = rho(np.hypot(rows[i] - rows[j], cols[i] - cols[j]))
        return rows.size + 2.0 * float(np.sum(r)), rows.size + 2.0 * float(np.sum(r * r))
    total = total2 = 0.0
    for start in range(0, rows.size, 512):
        r = rho(np.hypot(rows[start : start + 512, None] - rows[None, :], cols[start : start + 512, None] - cols[None, :]))
        total += float(np.sum(r))
        total2 += float(np.sum(r * r))
    return total, total2


def tile_keys(pixel: np.ndarray, block: np.ndarray, grid_shape: tuple[int, int], width: int) -> np.ndarray:
    """The tile of each point: width × width cells of the grid within each (stream, interval) block."""
    ncols = grid_shape[1]
    row, col = pixel // ncols, pixel % ncols
    return (block * (-(-grid_shape[0] // width)) + row // width) * (-(-ncols // width)) + col // width


def subset(prepared: Prepared, points: np.ndarray) -> Prepared:
    """The prepared arrays (and point layout) at `points` only, e.g. the training points of a held-out split."""
    from dataclasses import replace

    idx = np.asarray(points)
    stream = prepared.stream[idx]
    layout = prepared.layout
    if layout is not None:
        layout = replace(layout, pixel=layout.pixel[idx], block=layout.block[idx])
    return replace(
        prepared, y_obs=prepared.y_obs[idx], sigma_obs=prepared.sigma_obs[idx], F=prepared.F[:, idx],
        speed=prepared.speed[idx], stream=stream, n_dhdt=int(np.count_nonzero(stream == THICK)),
        n_vel=int(np.count_nonzero(stream == VEL)), layout=layout, availability=None,
    )  # fmt: skip


def tile_scores(
    z: np.ndarray, pixel: np.ndarray, block: np.ndarray, grid_shape: tuple[int, int], width: int, rho: Any
) -> Tiles:
    """Scores of the tiles (width × width cells within each layout block) of one stream's points."""
    from scipy.special import ndtr

    ncols = grid_shape[1]
    row, col = pixel // ncols, pixel % ncols
    key = tile_keys(pixel, block, grid_shape, width)
    order = np.argsort(key, kind="stable")
    ks, rs, cs = key[order], row[order].astype(float), col[order].astype(float)
    keys, starts, sizes = np.unique(ks, return_index=True, return_counts=True)
    tile = np.repeat(np.arange(keys.size), sizes)
    pairs = sizes.astype(float)  # ρ(0) = 1 on the diagonal
    if sizes.max() <= 256:  # small tiles: pairs (i, i + k) of the sorted points, one pass per offset
        for k in range(1, int(sizes.max())):
            same = np.flatnonzero(ks[k:] == ks[:-k])
            d = np.hypot(rs[same + k] - rs[same], cs[same + k] - cs[same])
            np.add.at(pairs, tile[same], 2.0 * rho(d))
    else:
        pairs = np.array([_pair_sum(rs[a : a + n], cs[a : a + n], rho) for a, n in zip(starts, sizes, strict=True)])
    score = np.add.reduceat(z[order], starts) / sizes / np.sqrt(np.maximum(pairs / sizes**2, _EPS))
    first = order[starts]
    return Tiles(
        score=score, pit=ndtr(score), size=sizes, row=(row[first] // width) * width + (width - 1) / 2,
        col=(col[first] // width) * width + (width - 1) / 2, block=block[first], width=width,
    )  # fmt: skip


def uniformity(u: np.ndarray, alpha: float, n_simulations: int, points: int = 100) -> dict[str, Any]:
    """The block PITs' ECDF against ArviZ's simultaneous 1 − α band for n uniform values, at
    `points` evenly spaced evaluation points (ArviZ's band machinery; its cost grows with the
    points, not with n, so 20,000 blocks cost what 200 do)."""
    from arviz_stats.ecdf_utils import compute_ecdf, get_pointwise_confidence_band, simulate_confidence_bands

    n = int(u.size)
    if n < 2:
        return {"n_blocks": n, "tested": False, "why": f"only {n} block(s)"}
    x = np.linspace(0.0, 1.0, points + 1)[1:-1]
    rng = np.random.default_rng(214)
    prob = simulate_confidence_bands(n, 1, x, 1.0 - alpha, n_simulations, rng)
    lower, upper = get_pointwise_confidence_band(prob, n, x)
    ecdf = compute_ecdf(np.asarray(u, dtype=float), x)
    below, above = lower - ecdf, ecdf - upper  # > 0: outside the band
    left, right = x <= 0.5, x >= 0.5
    # too many low PITs (ECDF above the band on the left) or too few high ones (below it on the
    # right): PITs in the tails or shifted, the predictive too narrow or biased
    wide = float(max(np.max(above[left], initial=0.0), np.max(below[right], initial=0.0)))
    # the other side alone: PITs crowd the middle, the predictive is wider than the data
    narrow = float(max(np.max(below[left], initial=0.0), np.max(above[right], initial=0.0)))
    excursion = max(wide, narrow, 0.0)
    return {
        "n_blocks": n, "tested": True, "inside_band": excursion <= 1e-12, "max_excursion": excursion,
        "tails_excursion": max(wide, 0.0), "centre_excursion": max(narrow, 0.0),
        "max_abs_diff": float(np.max(np.abs(ecdf - x))), "mean_pit": float(np.mean(u)),
        "ecdf": {"x": x.tolist(), "ecdf": ecdf.tolist(), "lower": lower.tolist(), "upper": upper.tolist()},
    }  # fmt: skip


def group_tests(z: np.ndarray, rows: np.ndarray, cols: np.ndarray, block: np.ndarray, rho: Any) -> dict[str, float]:
    """A group's trend score Σz/√(ΣΣρ) ~ N(0, 1) and dispersion score (Σz² − n)/√(2ΣΣρ²) ≈ N(0, 1)
    under the model with correlation ρ between points of one (stream, interval) block (points of
    different blocks independent, as the likelihood forms assume); p of the trend two-sided, of
    the dispersion one-sided for over-dispersion."""
    from scipy.special import ndtr

    n = z.size
    sum_rho = sum_rho2 = 0.0
    for b in np.unique(block):
        pick = block == b
        one, two = _pair_sums(rows[pick], cols[pick], rho)
        sum_rho, sum_rho2 = sum_rho + one, sum_rho2 + two
    trend = float(z.sum() / math.sqrt(max(sum_rho, _EPS)))
    disp = float((np.sum(z * z) - n) / math.sqrt(max(2.0 * sum_rho2, _EPS)))
    return {
        "n_points": int(n), "mean": float(z.mean()), "mean_square": float(np.mean(z * z)),
        "trend_z": trend, "p_trend": float(2.0 * ndtr(-abs(trend))),
        "dispersion_z": disp, "p_over": float(ndtr(-disp)), "p_under": float(ndtr(disp)),
    }  # fmt: skip


def _grouped(
    z: np.ndarray, rows: np.ndarray, cols: np.ndarray, block: np.ndarray, labels: np.ndarray, rho: Any
) -> dict[int, dict[str, float]]:
    out = {}
    for g in np.unique(labels):
        pick = labels == g
        out[int(g)] = group_tests(z[pick], rows[pick], cols[pick], block[pick], rho)
    return out


def regions(
    z: np.ndarray, rows: np.ndarray, cols: np.ndarray, block: np.ndarray, grid_shape: tuple[int, int], boxes: int, rho: Any
) -> list[dict[str, Any]]:
    """`group_tests` per grid box holding points (`boxes` × `boxes` over the grid); rows and
    columns are the box's grid cells."""
    ny, nx = grid_shape
    by = np.minimum(rows.astype(int) * boxes // ny, boxes - 1)
    bx = np.minimum(cols.astype(int) * boxes // nx, boxes - 1)
    out = []
    for g, test in _grouped(z, rows, cols, block, by * boxes + bx, rho).items():
        i, j = divmod(g, boxes)
        out.append({"box": [i, j], "rows": [i * ny // boxes, (i + 1) * ny // boxes - 1],
                    "cols": [j * nx // boxes, (j + 1) * nx // boxes - 1], **test})  # fmt: skip
    return out


def uncertainty_bins(
    z: np.ndarray, rows: np.ndarray, cols: np.ndarray, block: np.ndarray, sigma_obs: np.ndarray, bins: int, rho: Any
) -> list[dict[str, Any]]:
    """`group_tests` per quantile bin of the stated σ_obs: spread that grows faster than the stated
    uncertainty (errors a multiple of the reported ones, absorbed on average by σ_model) shows in the top bins."""
    edges = np.unique(np.quantile(sigma_obs, np.linspace(0.0, 1.0, bins + 1)))
    labels = np.clip(np.searchsorted(edges, sigma_obs, side="right") - 1, 0, max(edges.size - 2, 0))
    return [{"bin": g, "sigma_obs": [float(edges[g]), float(edges[min(g + 1, edges.size - 1)])], **test}
            for g, test in _grouped(z, rows, cols, block, labels, rho).items()]  # fmt: skip


def _verdicts(groups: list[dict[str, Any]], n_tests: int, alpha: float) -> None:
    """Adjusted p (Bonferroni over `n_tests`) and the kind of misfit of each group, in place."""
    for g in groups:
        g["p_trend_adjusted"] = min(1.0, g["p_trend"] * n_tests)
        g["p_over_adjusted"] = min(1.0, g["p_over"] * n_tests)
        g["p_under_adjusted"] = min(1.0, g["p_under"] * n_tests)
        g["p"] = min(g["p_trend_adjusted"], g["p_over_adjusted"])
        kinds = []
        if g["p_trend_adjusted"] < alpha:
            kinds.append(f"trend (mean residual {g['mean']:+.2f} σ)")
        if g["p_over_adjusted"] < alpha:
            kinds.append(f"over-dispersed (mean square {g['mean_square']:.2f})")
        g["failed"] = bool(kinds)
        g["kind"] = ", ".join(kinds) or ("under-dispersed (reported, not gated)" if g["p_under_adjusted"] < alpha else "fits")


# --- one fit, every stream ----------------------------------------------------------------------


@dataclass
class Assessment:
    """What `assess` found: `record` is fit.json; the arrays draw residuals.png."""

    record: dict[str, Any]
    pit: np.ndarray
    z_top: np.ndarray
    z_mixture: np.ndarray
    tiles: dict[int, Tiles] = field(default_factory=dict)


def _moments(z: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(z)), "sd": float(np.std(z)), "beyond_2": float(np.mean(np.abs(z) > 2)),
        "beyond_3": float(np.mean(np.abs(z) > 3)),
    }  # fmt: skip


def _box_text(region: dict[str, Any]) -> str:
    r, c = region["rows"], region["cols"]
    return f"box {tuple(region['box'])} (rows {r[0]}–{r[1]}, cols {c[0]}–{c[1]})"


def _grid_tests(
    z_mix: np.ndarray, prepared: Prepared, s: int, cfg: AdequacySettings, n_streams: int, seed: int,
    z_noise: np.ndarray | None = None,
) -> tuple[dict[str, Any], Tiles]:
    """Stream `s`'s tests on the grid (module docstring): tiles as wide as the correlation of its
    quantile residuals says, their block-level uniformity (of the predictive's `z_mix`), the
    regions and the uncertainty bins (of the noise model's `z_noise`, default `z_mix`),
    Bonferroni over groups, streams and both tests. Its record's entries, and its tiles."""
    z_noise = z_mix if z_noise is None else z_noise
    layout = prepared.layout
    name = STREAM_NAMES[s]
    sel = np.flatnonzero(prepared.stream == s)
    fit = residual_correlation(z_mix, prepared, s, seed)
    length = effective_length(fit, max(layout.grid_shape)) if fit is not None else 1.0
    width = max(1, math.ceil(cfg.block_lengths * length))
    rho = ShortRange(length)
    t = tile_scores(z_mix[sel], layout.pixel[sel], layout.block[sel], layout.grid_shape, width, rho)
    test = uniformity(t.pit, cfg.alpha / n_streams, cfg.n_simulations)
    rows = (layout.pixel[sel] // layout.grid_shape[1]).astype(float)
    cols = (layout.pixel[sel] % layout.grid_shape[1]).astype(float)
    blocks = layout.block[sel]
    found = regions(z_noise[sel], rows, cols, blocks, layout.grid_shape, cfg.region_boxes, rho)
    stated = np.asarray(prepared.sigma_obs[sel], dtype=float)
    by_sigma = uncertainty_bins(z_noise[sel], rows, cols, blocks, stated, cfg.uncertainty_bins, rho)
    n_tests = max(2 * (len(found) + len(by_sigma)) * n_streams, 1)
    _verdicts(found, n_tests, cfg.alpha)
    _verdicts(by_sigma, n_tests, cfg.alpha)
    for r in found:
        r["where"] = f"{name}, {_box_text(r)}"
    for b in by_sigma:
        b["where"] = f"{name}, σ_obs {b['sigma_obs'][0]:.3g}–{b['sigma_obs'][1]:.3g}"
    failing = [g for g in (*found, *by_sigma) if g["failed"]]
    found.sort(key=lambda r: r["p"])
    grid = {
        "blocks": {
            "correlation_length_cells": length,
            "correlation_source": "quantile residuals" if fit is not None else "none (too few points)",
            "fitted_len_scale_cells": fit.length_cells if fit is not None else None,
            "nugget_share": fit.nugget / fit.sill if fit is not None and fit.sill > 0 else None,
            "width_cells": width,
            **test,
            "n_group_tests": n_tests,
        },
        "regions": found[: cfg.worst],
        "uncertainty_bins": by_sigma,
        "failures": [f"{g['where']}: {g['kind']}" for g in sorted(failing, key=lambda g: g["p"])],
        "passed": test.get("tails_excursion", 0.0) <= 1e-12 and not failing,
    }
    return grid, t


def assess(
    prepared: Prepared,
    theta: np.ndarray,
    w: np.ndarray,
    settings: NoiseSettings | ExtraVariance,
    config: AdequacySettings | None = None,
    seed: int = 0,
    w_predictive: np.ndarray | None = None,
    pits: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Assessment:
    """Residuals, PIT and the block-level and regional tests of one fit (thinned draws θ, w).

    Tiles follow the correlation of the quantile residuals (`residual_correlation`).
    `w_predictive` (the calibrated member weights of the same draws) judges the predictive's
    PIT, coverage and block-level uniformity; `w` the regions and uncertainty bins (module docstring).
    `pits`: `predictive_pits` of the same arguments, when the caller has computed them.
    """
    cfg = config or AdequacySettings()
    y = np.asarray(prepared.y_obs, dtype=np.float64)
    var = sigma_tot2(prepared, theta, settings)
    if pits is None:
        pits = predictive_pits(prepared, theta, w, settings, w_predictive, var)
    pit, pit_noise = pits
    z_mix = quantile_residual(pit)
    z_noise = z_mix if pit_noise is None else quantile_residual(pit_noise)
    top = int(np.argmax(w.mean(axis=0)))
    z_top = (y - prepared.F[top]) / np.sqrt(var.mean(axis=0))
    layout = prepared.layout
    streams: dict[str, Any] = {}
    tiles: dict[int, Tiles] = {}
    n_streams = sum(1 for s in STREAM_NAMES if np.any(prepared.stream == s))
    for s, name in STREAM_NAMES.items():
        sel = np.flatnonzero(prepared.stream == s)
        if sel.size == 0:
            continue
        entry: dict[str, Any] = {
            "n_points": int(sel.size),
            "residuals": {"top_member": _moments(z_top[sel]), "mixture": _moments(z_mix[sel])},
            "coverage": coverage(pit[sel]),
        }
        if layout is None:
            entry["blocks"] = {"tested": False, "why": "the prepared points carry no grid layout"}
            streams[name] = entry
            continue
        grid, tiles[s] = _grid_tests(z_mix, prepared, s, cfg, n_streams, seed, z_noise)
        entry.update(grid)
        streams[name] = entry
    record = {
        "top_member": prepared.member_ids[top],
        "pit_draws": int(theta.shape[0]),
        "settings": {k: getattr(cfg, k) for k in ("alpha", "block_lengths", "region_boxes", "pit_draws")},
        "nominal_coverage": {"1sigma": NOMINAL_1, "2sigma": NOMINAL_2},
        "streams": streams,
        "passed": all(e.get("passed", True) for e in streams.values()),
    }
    return Assessment(record=record, pit=pit, z_top=z_top, z_mixture=z_mix, tiles=tiles)
