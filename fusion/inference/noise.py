"""The noise model's settings and the per-stream sufficient statistics every density reads.

The joint potential Σ_m logL_scaled[m] of DESIGN.md touches the data only through, per point
i, S2_i = Σ_m (y_i − F_mi)²: expanding the Gaussian log-density,

    Σ_m logL_s[m] = −½ Σ_{i∈s} S2_i / σ²_tot,i − ½ M Σ_{i∈s} log(2π σ²_tot,i),

so one gradient costs O(N) instead of O(M·N). Points of one stream that share
(σ_obs², speed) also share σ_tot for every θ, so they are merged into one group with summed
S2 and a count: an exact rewrite that only changes the summation order.

NumPy only (no Numba, no PyMC), so that code which only needs the settings or σ_obs² (the
harness's designs, `fusion run`'s figure worker) does not load a compiler with them. The
densities built on these statistics: `fusion.inference.pymc_model` (PyMC) and
`fusion.inference.fused_density` (Numba, for nutpie).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = ["LOG_2PI", "NoiseSettings", "StreamBlock", "sigma_obs_squared", "squared_residuals", "stream_blocks"]

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class NoiseSettings:
    """The config values the likelihood depends on (stream weights α, velocity inflation) and its form.

    `tempered` (what `fusion run` samples, the prototype's form) weights each stream's
    log-likelihood by α_s / N_s. `tempered=False` is the generative form: every point's
    log-density counted once (scale 1 per stream), the form SBC and coverage are calibrated on.
    """

    alpha_thick: float = 0.5
    alpha_vel: float = 0.5
    velocity_inflation: float = 5.0
    tempered: bool = True
    #: (thick, vel) weights of each stream's log-likelihood in the sampled density; None keeps
    #: the `tempered` rule. Set by `fusion.inference.likelihood` for the forms of `likelihood.form`.
    density_scale: tuple[float, float] | None = None
    #: (thick, vel) weights of each stream in the post-hoc member log-likelihoods `logL_scaled`
    #: (hence `w`); None keeps α_s / N_s.
    member_scale: tuple[float, float] | None = None
    #: (thick, vel) temperatures λ_s on each stream's term of `logL_scaled` (w ∝ exp(Σ_s λ_s·c_s·logL_s)):
    #: the perfect-model calibration's (fusion.inference.calibration); (1, 1) leaves the form's
    #: weights as they are, bit for bit
    member_temperature: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_config(cls, cfg: Config) -> NoiseSettings:
        inf = cfg.inference
        return cls(
            alpha_thick=float(inf.stream_weights.thick),
            alpha_vel=float(inf.stream_weights.vel),
            velocity_inflation=float(inf.velocity_inflation),
        )

    def alpha(self, stream: int) -> float:
        return self.alpha_thick if stream == THICK else self.alpha_vel

    def inflation2(self, stream: int) -> float:
        """Extra variance added to σ_tot² (the prototype's 5² on velocity points only)."""
        return self.velocity_inflation**2 if stream == VEL else 0.0


@dataclass(frozen=True)
class StreamBlock:
    """Sufficient statistics of one stream: groups of points sharing (σ_obs², speed)."""

    stream: int
    sigma_obs2: np.ndarray  # float64 (K,)
    speed: np.ndarray  # float64 (K,)
    s2: np.ndarray  # float64 (K,): Σ over members and over the group's points of r²
    count: np.ndarray  # float64 (K,): points in the group
    n_points: int
    n_members: int
    alpha: float
    inflation2: float
    tempered: bool = True
    density_scale: float | None = None

    @property
    def scale(self) -> float:
        """α_s / N_s with N floored at 1 (DESIGN.md), the weight of this stream's mean log-likelihood;
        1 in the generative (untempered) form; `density_scale` when a likelihood form sets it."""
        if self.density_scale is not None:
            return self.density_scale
        return self.alpha / max(self.n_points, 1) if self.tempered else 1.0

    def with_settings(self, settings: NoiseSettings) -> StreamBlock:
        """These statistics under `settings`' weights and inflation: the statistics depend on the
        points only, so one pass over the points serves every likelihood form of them."""
        s = self.stream
        return replace(
            self, alpha=settings.alpha(s), inflation2=settings.inflation2(s), tempered=settings.tempered,
            density_scale=None if settings.density_scale is None else float(settings.density_scale[s]),
        )  # fmt: skip


def squared_residuals(prepared: Prepared) -> np.ndarray:
    """(M, N) float64 r² with r = y_obs − F, promoted exactly as NumPy promotes float32 − float64."""
    r = prepared.y_obs - prepared.F
    return np.square(r, out=r)


def sigma_obs_squared(prepared: Prepared) -> np.ndarray:
    """σ_obs² squared in the stored dtype (float32, as the prototype's graph does), then float64."""
    return np.square(prepared.sigma_obs).astype(np.float64)


def stream_blocks(
    prepared: Prepared, settings: NoiseSettings, *, merge: bool = True
) -> tuple[StreamBlock, ...]:
    """Per-stream sufficient statistics (thickness first), labels taken from `prepared.stream`."""
    s2_point = squared_residuals(prepared).sum(axis=0)
    so2 = sigma_obs_squared(prepared)
    speed = np.asarray(prepared.speed, dtype=np.float64)
    blocks = []
    for s in (THICK, VEL):
        sel = prepared.stream == s
        so2_s, speed_s, s2_s = so2[sel], speed[sel], s2_point[sel]
        count = np.ones(so2_s.shape[0])
        if merge and so2_s.size:
            keys = np.stack([so2_s, speed_s], axis=1)
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            s2_s = np.bincount(inverse, weights=s2_s, minlength=uniq.shape[0])
            count = np.bincount(inverse, minlength=uniq.shape[0]).astype(np.float64)
            so2_s, speed_s = uniq[:, 0].copy(), uniq[:, 1].copy()
        stats = StreamBlock(
            stream=s, sigma_obs2=so2_s, speed=speed_s, s2=s2_s, count=count,
            n_points=int(sel.sum()), n_members=prepared.n_members, alpha=0.0, inflation2=0.0,
        )  # fmt: skip
        blocks.append(stats.with_settings(settings))
    return tuple(blocks)
