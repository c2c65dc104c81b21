"""Designs (where the points are, what is known there), the generative form of the noise model,
and a replicate's data as the `Prepared` FUSION's density is built from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA
from harness.sim.variants import CORRECT

VELOCITY_INFLATION = NoiseSettings().velocity_inflation
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Design:
    """Per-point inputs that do not depend on θ: σ_obs (float32, as prepared data store it),
    speed, stream label; and M members."""

    sigma_obs: np.ndarray  # float32 (N,)
    speed: np.ndarray  # float64 (N,)
    stream: np.ndarray  # int8 (N,)
    n_members: int
    inflation: float = VELOCITY_INFLATION

    @property
    def n_points(self) -> int:
        return int(self.stream.shape[0])

    @property
    def sigma_obs2(self) -> np.ndarray:
        """σ_obs² squared in float32 then float64, as the production density squares it."""
        return np.square(self.sigma_obs).astype(np.float64)

    @property
    def is_vel(self) -> np.ndarray:
        return (self.stream == VEL).astype(np.float64)

    @property
    def extra_var(self) -> np.ndarray:
        return self.is_vel * self.inflation**2

    def prepared(self, resid: np.ndarray, points: np.ndarray | None = None) -> Prepared:
        """The dataset FUSION would prepare with residuals `resid` (M, N), at `points` only (default
        all; held-out points are simply left out): y_obs = 0 and F = −r, so y_obs − F is r exactly."""
        idx = np.arange(self.n_points) if points is None else np.asarray(points)
        stream = self.stream[idx]
        members = tuple(f"m{i + 1}" for i in range(self.n_members))
        return Prepared(
            y_obs=np.zeros(idx.size, dtype=np.float32),
            sigma_obs=self.sigma_obs[idx],
            F=-np.asarray(resid, dtype=np.float64)[:, idx],
            speed=self.speed[idx],
            n_dhdt=int((stream == THICK).sum()),
            n_vel=int((stream == VEL).sum()),
            member_ids=members,
            stream=stream,
        )


@lru_cache(maxsize=16)
def sbc_design(
    n_thick: int = 100,
    n_vel: int = 100,
    n_members: int = 5,
    seed: int = 20260430,
    levels: tuple[int, int] = (10, 20),
) -> Design:
    """A fixed, seeded design with the magnitudes of real data (thickness σ_obs 0.2–2 m/yr,
    velocity σ_obs 1–5 m/yr, speeds log-uniform 1–3000 m/yr), small enough to fit in milliseconds.

    Points come in `levels` = (thickness, velocity) groups sharing (σ_obs, speed), as gridded
    products with quantised uncertainties do; the production density's `stream_blocks` then
    merges each group (an exact rewrite), which makes the gradient several times cheaper.
    """
    rng = np.random.default_rng(seed)
    g_t, g_v = (np.arange(n) % k for n, k in ((n_thick, levels[0]), (n_vel, levels[1])))
    so_t = rng.uniform(0.2, 2.0, levels[0])[g_t]
    so_v = rng.uniform(1.0, 5.0, levels[1])[g_v]
    speed_v = np.exp(rng.uniform(0.0, np.log(3000.0), levels[1]))[g_v]
    stream = np.r_[np.full(n_thick, THICK), np.full(n_vel, VEL)].astype(np.int8)
    return Design(
        sigma_obs=np.r_[so_t, so_v].astype(np.float32),
        speed=np.r_[np.zeros(n_thick), speed_v],
        stream=stream,
        n_members=n_members,
    )


def design_from_prepared(prepared: Prepared, inflation: float = VELOCITY_INFLATION) -> Design:
    """The design of a prepared dataset."""
    return Design(
        sigma_obs=np.asarray(prepared.sigma_obs, dtype=np.float32),
        speed=np.asarray(prepared.speed, dtype=np.float64),
        stream=np.asarray(prepared.stream, dtype=np.int8),
        n_members=prepared.n_members,
        inflation=inflation,
    )


def prior_variance(param: str) -> float:
    """Variance of the noise parameter's HalfNormal(σ) prior, σ²(1 − 2/π): posterior contraction is measured against it."""
    return PRIOR_SIGMA[param] ** 2 * (1 - 2 / math.pi)


def prior_sd(param: str) -> float:
    """Sd of that prior, σ·√(1 − 2/π): recovery errors are stated in its units."""
    return PRIOR_SIGMA[param] * math.sqrt(1 - 2 / math.pi)


def draw_prior(rng: np.random.Generator, prior_sigma: Sequence[float] = CORRECT.prior_sigma) -> np.ndarray:
    """θ = (σ_base_thick, σ_base_vel, β_thick, β_vel) from the HalfNormal priors."""
    return np.abs(rng.standard_normal(len(PARAMS))) * np.asarray(prior_sigma, dtype=np.float64)


def sigma_tot2(theta: np.ndarray, design: Design) -> np.ndarray:
    """σ²_tot for draws `theta` (..., 4) at every point: (..., N)."""
    theta = np.asarray(theta, dtype=np.float64)
    vel = design.stream == VEL
    sb = np.where(vel, theta[..., 1, None], theta[..., 0, None])
    beta = np.where(vel, theta[..., 3, None], theta[..., 2, None])
    return design.sigma_obs2 + sb**2 * (1.0 + beta * design.speed) + design.extra_var


def simulate_residuals(theta: np.ndarray, design: Design, rng: np.random.Generator) -> np.ndarray:
    """The generative form: r_mi ~ N(0, σ_tot,i(θ)) independently per member and point, (M, N)."""
    sd = np.sqrt(sigma_tot2(theta, design))
    return rng.standard_normal((design.n_members, design.n_points)) * sd


def loglik_draws(theta: np.ndarray, design: Design, s2: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    """Untempered log-likelihood Σ_i −½[S2_i/σ² + n_i log(2πσ²)] per draw (D,), or for one θ ()."""
    var = sigma_tot2(theta, design)
    return -0.5 * (s2 / var + n_obs * (np.log(var) + _LOG_2PI)).sum(axis=-1)


def replicate_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Replicate `index`'s own generator: the same data whichever worker runs it, and on resume."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))
