"""The hierarchical noise model of DESIGN.md, in two PyMC forms that share one log-density.

`build_model` is the form FUSION samples. The joint potential Σ_m logL_scaled[m] touches the
data only through, per point i, S2_i = Σ_m (y_i − F_mi)²: expanding the Gaussian log-density,

    Σ_m logL_s[m] = −½ Σ_{i∈s} S2_i / σ²_tot,i − ½ M Σ_{i∈s} log(2π σ²_tot,i),

so one gradient costs O(N) instead of O(M·N). Points of one stream that share
(σ_obs², speed) also share σ_tot for every θ, so they are merged into one group with summed
S2 and a count: an exact rewrite that only changes the summation order.

`build_loop_model` is the prototype's own construction (one log-likelihood graph per member,
deterministics `w`, `logL_*` inside the model). It is slow by design; tests prove both forms
have the same log-density and gradient, and the benchmark times one against the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from fusion.data.prepared import THICK, VEL, Prepared

if TYPE_CHECKING:
    from fusion.config import Config

__all__ = [
    "PARAMS",
    "PRIOR_SIGMA",
    "NoiseSettings",
    "StreamBlock",
    "squared_residuals",
    "sigma_obs_squared",
    "stream_blocks",
    "build_model",
    "build_loop_model",
]

#: The four free parameters, in the order every table lists them.
PARAMS: tuple[str, ...] = ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")
#: HalfNormal prior scales (DESIGN.md).
PRIOR_SIGMA: dict[str, float] = {
    "sigma_base_thick": 0.5,
    "sigma_base_vel": 0.6,
    "beta_thick": 0.1,
    "beta_vel": 0.1,
}
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class NoiseSettings:
    """The config values the likelihood depends on (stream weights α and velocity inflation)."""

    alpha_thick: float = 0.5
    alpha_vel: float = 0.5
    velocity_inflation: float = 5.0

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

    @property
    def scale(self) -> float:
        """α_s / N_s with N floored at 1 (DESIGN.md), the weight of this stream's mean log-likelihood."""
        return self.alpha / max(self.n_points, 1)


def squared_residuals(prepared: Prepared) -> np.ndarray:
    """(M, N) float64 r² with r = y_obs − F, promoted exactly as NumPy promotes float32 − float64."""
    r = prepared.y_obs - prepared.F
    return np.square(r, out=r)


def sigma_obs_squared(prepared: Prepared) -> np.ndarray:
    """σ_obs² squared in the stored dtype (float32, as the prototype's graph does), then float64."""
    return np.square(prepared.sigma_obs).astype(np.float64)


def stream_blocks(prepared: Prepared, settings: NoiseSettings, *, merge: bool = True) -> tuple[StreamBlock, ...]:
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
        blocks.append(
            StreamBlock(
                stream=s, sigma_obs2=so2_s, speed=speed_s, s2=s2_s, count=count,
                n_points=int(sel.sum()), n_members=prepared.n_members,
                alpha=settings.alpha(s), inflation2=settings.inflation2(s),
            )
        )
    return tuple(blocks)


def _priors() -> dict[str, pt.TensorVariable]:
    return {name: pm.HalfNormal(name, sigma=scale) for name, scale in PRIOR_SIGMA.items()}


def _sigma_tot2(theta: dict[str, pt.TensorVariable], stream: int, sigma_obs2, speed, inflation2: float):
    """σ_tot² = σ_obs² + σ_base²·(1 + β·speed) (+ inflation² on velocity)."""
    suffix = "thick" if stream == THICK else "vel"
    sb, beta = theta[f"sigma_base_{suffix}"], theta[f"beta_{suffix}"]
    var = sigma_obs2 + sb**2 * (1.0 + beta * speed)
    return var + inflation2 if inflation2 else var


def build_model(prepared: Prepared, settings: NoiseSettings | None = None) -> pm.Model:
    """The vectorised model: four HalfNormal priors and one O(N) `joint_loglik` potential."""
    settings = settings or NoiseSettings()
    blocks = stream_blocks(prepared, settings)
    with pm.Model() as model:
        theta = _priors()
        total = pt.constant(0.0, dtype="float64")
        for b in blocks:
            if b.n_points == 0:
                continue
            var = _sigma_tot2(theta, b.stream, pt.constant(b.sigma_obs2), pt.constant(b.speed), b.inflation2)
            quad = pt.sum(pt.constant(b.s2) / var)
            logdet = pt.sum(pt.constant(b.count) * pt.log(var)) + b.n_points * _LOG_2PI
            total = total + b.scale * (-0.5 * quad - 0.5 * b.n_members * logdet)
        pm.Potential("joint_loglik", total)
    return model


def build_loop_model(prepared: Prepared, settings: NoiseSettings | None = None) -> pm.Model:
    """The prototype's form: per member, a Normal log-likelihood graph per stream; O(M·N) per gradient."""
    settings = settings or NoiseSettings()
    so2 = sigma_obs_squared(prepared)
    y = prepared.y_obs.astype(np.float64)
    coords = {"member": list(prepared.member_ids)}
    with pm.Model(coords=coords) as model:
        theta = _priors()
        per_stream: dict[int, list[pt.TensorVariable]] = {}
        for s in (THICK, VEL):
            sel = prepared.stream == s
            n_s = int(sel.sum())
            if n_s == 0:
                per_stream[s] = [pt.constant(0.0, dtype="float64")] * prepared.n_members
                continue
            sigma_tot = pt.sqrt(
                _sigma_tot2(theta, s, pt.constant(so2[sel]), pt.constant(prepared.speed[sel]), settings.inflation2(s))
            )
            per_stream[s] = [
                pm.logp(pm.Normal.dist(mu=0.0, sigma=sigma_tot), pt.constant(y[sel] - prepared.F[m, sel])).sum()
                for m in range(prepared.n_members)
            ]
        n_t = max(int(prepared.is_thick.sum()), 1)
        n_v = max(int((~prepared.is_thick).sum()), 1)
        logl_thick = pm.Deterministic("logL_thick", pt.stack(per_stream[THICK]), dims="member")
        logl_vel = pm.Deterministic("logL_vel", pt.stack(per_stream[VEL]), dims="member")
        logl_scaled = pm.Deterministic(
            "logL_scaled",
            settings.alpha_thick * logl_thick / n_t + settings.alpha_vel * logl_vel / n_v,
            dims="member",
        )
        pm.Deterministic("w", pt.special.softmax(logl_scaled), dims="member")
        pm.Potential("joint_loglik", pt.sum(logl_scaled))
    return model
