"""Designs (where the points are, what is known there) and the generative form of the noise model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.model import PARAMS
from harness.sim.variants import _LOG_2PI, CORRECT

VELOCITY_INFLATION = 5.0


@dataclass(frozen=True)
class Design:
    """Per-point inputs that do not depend on θ: σ_obs², speed, stream label; and M members."""

    sigma_obs2: np.ndarray  # float64 (N,)
    speed: np.ndarray  # float64 (N,)
    stream: np.ndarray  # int8 (N,)
    n_members: int
    inflation: float = VELOCITY_INFLATION
    group: np.ndarray | None = None  # int (N,): points sharing (stream, σ_obs², speed), or None

    @property
    def n_points(self) -> int:
        return int(self.stream.shape[0])

    @property
    def is_vel(self) -> np.ndarray:
        return (self.stream == VEL).astype(np.float64)

    @property
    def extra_var(self) -> np.ndarray:
        return self.is_vel * self.inflation**2


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
    products with quantised uncertainties do; the fit then sums each group's squared residuals
    first (an exact rewrite, the production model's merging), halving the gradient's cost.
    """
    rng = np.random.default_rng(seed)
    g_t, g_v = (np.arange(n) % k for n, k in ((n_thick, levels[0]), (n_vel, levels[1])))
    so_t = rng.uniform(0.2, 2.0, levels[0])[g_t]
    so_v = rng.uniform(1.0, 5.0, levels[1])[g_v]
    speed_v = np.exp(rng.uniform(0.0, np.log(3000.0), levels[1]))[g_v]
    stream = np.r_[np.full(n_thick, THICK), np.full(n_vel, VEL)].astype(np.int8)
    return Design(
        sigma_obs2=np.r_[so_t, so_v] ** 2,
        speed=np.r_[np.zeros(n_thick), speed_v],
        stream=stream,
        n_members=n_members,
        group=np.r_[g_t, levels[0] + g_v],
    )


def design_from_prepared(prepared: Prepared, inflation: float = VELOCITY_INFLATION) -> Design:
    """The design of a prepared dataset (σ_obs² squared in float32, as the production model)."""
    return Design(  # no grouping: measured uncertainties are continuous
        sigma_obs2=np.square(prepared.sigma_obs).astype(np.float64),
        speed=np.asarray(prepared.speed, dtype=np.float64),
        stream=np.asarray(prepared.stream, dtype=np.int8),
        n_members=prepared.n_members,
        inflation=inflation,
    )


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


def tempered_coef(design: Design, n_obs: np.ndarray, alpha: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """c_i = α_s / N_s over the points that enter the fit (n_i > 0), N floored at 1 (DESIGN.md)."""
    used = n_obs > 0
    coef = np.zeros(design.n_points)
    for s, a in zip((THICK, VEL), alpha):
        sel = (design.stream == s) & used
        coef[design.stream == s] = a / max(int(sel.sum()), 1)
    return coef


def fit_inputs(
    design: Design, s2: np.ndarray, n_obs: np.ndarray, coef: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The arrays swapped into the compiled graph for one dataset; `coef=None` is the generative form.

    With `design.group`, points are summed per group first: S2 and n add up, and σ_tot,
    stream and (per stream) c are shared within a group, so the log-density is unchanged.
    """
    inputs = {
        "s2": np.asarray(s2, dtype=np.float64),
        "n_obs": np.asarray(n_obs, dtype=np.float64),
        "coef": np.ones(design.n_points) if coef is None else np.asarray(coef, dtype=np.float64),
        "sigma_obs2": design.sigma_obs2,
        "speed": design.speed,
        "is_vel": design.is_vel,
        "extra_var": design.extra_var,
    }
    if design.group is None:
        return inputs
    _, first, inverse = np.unique(design.group, return_index=True, return_inverse=True)
    out = {k: v[first] for k, v in inputs.items()}
    for k in ("s2", "n_obs"):
        out[k] = np.bincount(inverse.ravel(), weights=inputs[k], minlength=first.size)
    return out
def replicate_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """Replicate `index`'s own generator: the same data whichever worker runs it, and on resume."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))
