"""The member weights' sharpness, calibrated out of sample: the perfect-model test on the run's own ensemble.

The likelihood forms are calibrated when one member *is* the truth (README, "Evidence"). A real
ensemble has no such member: every run misses reality by its own structural error, and a
posterior that is calibrated in-sample collapses onto the nearest member (a 2100 range of zero
width). The climate-ensemble weighting literature decides the sharpness out of sample (ClimWIP:
Knutti et al. 2017, GRL; Brunner et al. 2020, ESD; ESMValTool's `calibrate_sigmas`): each member
in turn plays the truth, the weighting runs on the others, and the shape parameter is the
sharpest whose weighted range still holds the held-out member as often as the unweighted
ensemble does.

Here the shape parameter is a member temperature λ ∈ (0, 1] on the form's member
log-likelihoods: w ∝ exp(λ · logL_scaled). For member k as the truth, the pseudo-observations
are its modelled rates plus noise at the stated σ_obs, and member j's contrast at a fixed θ (the
run's posterior mean) is the form's

    L[k, j] = −½ Σ_s c_s Σ_{i∈s} (y⁽ᵏ⁾_i − F_ji)² / σ²_tot,i(θ),

c_s the form's member weight of stream s (n_eff,loc/N under `effective`); the log-determinant
is the same for every member and cancels in the weights. That is O(M² N), no sampler per
member. For each λ on a log grid (from 1 down to all but equal weights: `temperatures`), the held-out member's SLE is scored against the weighted
5–95 % range of the other members (`leave_out`; the in-sample version, the member among its own
candidates, is the planted defect of the harness check `perfect_model`). A λ is *confident*
when it and every softer λ on the grid reach the unweighted ensemble's own coverage (with few
members an ensemble cannot cover its own extremes, so nominal coverage is not the bar); the
sharpest confident λ is chosen. With none, the run falls back to equal weights and says so.

The noise of the pseudo-observations is independent between points here (one draw per member,
seeded): correlated fields of the run's size cost seconds per member (GSTools), and the
members' structural differences, not the noise, set the contrasts. The harness check
`perfect_model` draws correlated noise as the run estimates it, and so tests this choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.noise import NoiseSettings, sigma_obs_squared
from fusion.inference.parameters import PARAMS

__all__ = [
    "temperatures", "temperature_grid", "Calibration", "member_contrasts", "held_out_weights", "calibrate", "crps", "scores",
]  # fmt: skip

#: the temperature grid's steps per decade (coverage changes with log λ)
STEPS_PER_DECADE = 4
#: the softest λ tried: where λ times the median spread of a held-out row's contrasts is this
#: (the weights are then all but equal; contrasts of thousands of nats need λ ≪ 0.001 for that)
FLAT_SPREAD = 0.05


def temperatures(contrasts: np.ndarray) -> tuple[float, ...]:
    """The λ grid for `contrasts`, sharpest first: 1, then 4 steps per decade down to the λ at
    which every held-out row's weights are all but equal (`FLAT_SPREAD`). A fixed grid cannot
    serve every run: the contrasts' scale follows the form, n_eff and the members' spread."""
    c = np.asarray(contrasts, dtype=np.float64)
    c = c[0] if c.ndim == 3 else c
    m = c.shape[0]
    off = c[~np.eye(m, dtype=bool)].reshape(m, m - 1) if m > 1 else c
    return temperature_grid(off)


def temperature_grid(rows: np.ndarray) -> tuple[float, ...]:
    """`temperatures` of held-out rows of contrasts (each row over the members weighed, the truth left out)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    spread = float(np.median(rows.max(axis=1) - rows.min(axis=1))) if rows.size else 0.0
    softest = min(1.0, FLAT_SPREAD / spread) if spread > 0 else 1.0
    steps = int(np.ceil(-np.log10(softest) * STEPS_PER_DECADE))
    return tuple(float(10.0 ** (-i / STEPS_PER_DECADE)) for i in range(steps + 1))


@dataclass(frozen=True)
class Calibration:
    """The chosen temperature and the inner perfect-model test behind it (summary.json `calibration`)."""

    method: str  # "perfect_model", "fixed" or "off"
    temperature: float  # λ applied to logL_scaled (0: equal weights)
    confident: bool
    n_members: int
    lower_q: float = 0.05
    upper_q: float = 0.95
    coverage: float | None = None  # inner leave-one-member-out coverage at the chosen λ
    coverage_unweighted: float | None = None
    relative_width: float | None = None  # mean weighted width / mean unweighted width
    members_in_play: float | None = None  # mean over held-out members of 1/Σw²
    #: per grid λ: coverage, relative width, members in play (the figure's right panel)
    grid: tuple[dict[str, float], ...] = ()
    #: per held-out member: its SLE and the weighted / unweighted range (the figure's left panel)
    held_out: tuple[dict[str, Any], ...] = ()
    crps_skill: float | None = None  # 1 − CRPS(weighted) / CRPS(unweighted), set by `scores`
    crps_weighted: float | None = None
    crps_unweighted: float | None = None
    message: str | None = None  # the one line a run without a confident λ prints
    weights: np.ndarray | None = field(default=None, compare=False, repr=False)  # (M, M) held-out rows

    def record(self) -> dict[str, Any]:
        """summary.json's `calibration` (the held-out weight rows stay out: M² numbers)."""
        return {
            "method": self.method, "temperature": self.temperature, "confident": self.confident,
            "n_members": self.n_members, "lower_q": self.lower_q, "upper_q": self.upper_q,
            "coverage": self.coverage, "coverage_unweighted": self.coverage_unweighted,
            "relative_width": self.relative_width, "members_in_play": self.members_in_play,
            "crps_skill": self.crps_skill, "crps_weighted": self.crps_weighted,
            "crps_unweighted": self.crps_unweighted, "message": self.message,
            "grid": list(self.grid), "held_out": list(self.held_out),
        }  # fmt: skip


def _point_weights(prepared: Prepared, settings: NoiseSettings) -> np.ndarray:
    """c_s per point: the form's member weight of the point's stream (α_s/N_s when tempered)."""
    out = np.empty(prepared.n_points)
    for s in (THICK, VEL):
        sel = prepared.stream == s
        if settings.member_scale is not None:
            out[sel] = settings.member_scale[s]
        else:
            out[sel] = settings.alpha(s) / max(int(sel.sum()), 1)
    return out


#: noise draws per held-out member in the inner test: the coverage of R·M pseudo-truths steps by
#: 1/(R·M), so a one-member dip of one noise draw no longer stops the search at a soft λ
NOISE_DRAWS = 4


def member_contrasts(
    prepared: Prepared,
    theta: np.ndarray,
    settings: NoiseSettings,
    seed: int,
    noise: np.ndarray | None = None,
    draws: int = 1,
) -> np.ndarray:
    """L (M, M), or (R, M, M) for R > 1 noise draws: member j's form log-likelihood (up to a
    constant per row) when member k is the truth.

    `theta` is one θ in PARAMS order; `noise` (M, N) or (R, M, N) the pseudo-observations' errors,
    default `draws` independent draws at σ_obs per member from `seed`.
    """
    theta = np.asarray(theta, dtype=np.float64).reshape(len(PARAMS))
    vel = prepared.stream == VEL
    sb = np.where(vel, theta[1], theta[0])
    beta = np.where(vel, theta[3], theta[2])
    extra = np.where(vel, settings.inflation2(VEL), settings.inflation2(THICK))
    var = sigma_obs_squared(prepared) + extra + sb**2 * (1.0 + beta * np.asarray(prepared.speed, dtype=np.float64))
    u = _point_weights(prepared, settings) / var
    F = np.asarray(prepared.F, dtype=np.float64)
    if noise is None:
        sigma = np.asarray(prepared.sigma_obs, dtype=np.float64)
        rng = np.random.default_rng([seed, 0x9E37])
        noise = np.stack([rng.standard_normal(F.shape) * sigma for _ in range(draws)])
        noise = noise[0] if draws == 1 else noise
    # −½ Σ u (y_k − F_j)² less its row constant −½ Σ u y_k²: one product of M × N by N × M per draw
    return ((F + noise) * u) @ F.T - 0.5 * ((F * F) @ u)


def held_out_weights(contrasts: np.ndarray, temperature: float, *, leave_out: bool = True) -> np.ndarray:
    """(M, M): row k the weights over the members when k is the truth (0 on k itself when `leave_out`)."""
    z = temperature * np.asarray(contrasts, dtype=np.float64)
    if leave_out:
        np.fill_diagonal(z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def _ranges(sle: np.ndarray, weights: np.ndarray, lower_q: float, upper_q: float) -> np.ndarray:
    """(M, 2): each row's weighted [lower_q, upper_q] range of the members' SLE."""
    from fusion.projection import weighted_quantile

    return np.array([weighted_quantile(sle, row, [lower_q, upper_q]) for row in weights])


def _assess(
    sle: np.ndarray, weights: np.ndarray, lower_q: float, upper_q: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside (M,) bool, width (M,), members in play (M,)) of the held-out rows `weights`."""
    ranges = _ranges(sle, weights, lower_q, upper_q)
    inside = (sle >= ranges[:, 0]) & (sle <= ranges[:, 1])
    return inside, ranges[:, 1] - ranges[:, 0], 1.0 / np.sum(weights * weights, axis=1)


def calibrate(
    contrasts: np.ndarray,
    sle: np.ndarray,
    member_ids: tuple[str, ...] | list[str],
    lower_q: float = 0.05,
    upper_q: float = 0.95,
    *,
    leave_out: bool = True,
    grid: tuple[float, ...] | None = None,
    fixed: float | None = None,
) -> Calibration:
    """The sharpest confident temperature of the inner perfect-model test (module docstring).

    `fixed` (`likelihood.calibration: <number>`) takes that temperature and reports the test at
    it. `leave_out=False` scores each member among its own candidates: the planted defect (it
    chooses the sharpest λ whatever the ensemble, since the truth is always a candidate).
    """
    sle = np.asarray(sle, dtype=np.float64)
    m = sle.size
    method = "perfect_model" if fixed is None else "fixed"
    grid = temperatures(contrasts) if grid is None else grid
    if m < 3:
        return Calibration(
            method=method, temperature=0.0 if fixed is None else fixed, confident=False, n_members=m,
            lower_q=lower_q, upper_q=upper_q,
            message=None if fixed is not None else f"{m} members: too few to hold one out and weigh the rest; equal weights used",
        )  # fmt: skip
    if fixed is not None:
        grid = tuple(sorted(set(grid) | {fixed}, reverse=True))
    flat = held_out_weights(np.zeros((m, m)), 1.0, leave_out=True)
    inside0, width0, play0 = _assess(sle, flat, lower_q, upper_q)
    target = float(inside0.mean())
    draws = np.asarray(contrasts, dtype=np.float64)
    draws = draws[None] if draws.ndim == 2 else draws  # (R, M, M): every noise draw a set of pseudo-truths
    rows: list[dict[str, float]] = []
    assessed: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for lam in grid:
        ws = [held_out_weights(c, lam, leave_out=leave_out) for c in draws]
        found = [_assess(sle, w, lower_q, upper_q) for w in ws]
        inside, width, play = (np.concatenate([f[i] for f in found]) for i in range(3))
        assessed[lam] = (ws[0], inside, width, play)
        rows.append({
            "temperature": lam, "coverage": float(inside.mean()),
            "relative_width": float(width.mean() / width0.mean()) if width0.mean() > 0 else math.nan,
            "members_in_play": float(play.mean()),
        })  # fmt: skip
    # confident: this λ and every softer one on the grid reach the unweighted coverage
    chosen = None
    for lam in sorted(grid):
        if assessed[lam][1].mean() + 1e-12 < target:
            break
        chosen = lam
    confident = chosen is not None
    if fixed is not None:  # the configured λ, confident or not; the test says how it fares
        lam = fixed
        w, inside, width, play = assessed[lam]
        confident = chosen is not None and fixed <= chosen
        message = None
    elif chosen is None:
        w, inside, width, play = flat, inside0, width0, play0
        lam = 0.0
        message = (
            f"no member temperature down to {min(grid):g} keeps the held-out members inside the "
            f"{lower_q:.0%}–{upper_q:.0%} range as often as the unweighted ensemble "
            f"({int(inside0.sum())}/{m}); equal weights used"
        )
    else:
        lam = chosen
        w, inside, width, play = assessed[lam]
        message = None
    ranges, ranges0 = _ranges(sle, w, lower_q, upper_q), _ranges(sle, flat, lower_q, upper_q)
    first = (ranges[:, 0] <= sle) & (sle <= ranges[:, 1])  # the held-out rows drawn: the first noise draw's
    held = tuple(
        {
            "member": str(member_ids[k]), "sle_mm": float(sle[k]), "inside": bool(first[k]),
            "lower": float(ranges[k, 0]), "upper": float(ranges[k, 1]),
            "lower_unweighted": float(ranges0[k, 0]), "upper_unweighted": float(ranges0[k, 1]),
            "members_in_play": float(1.0 / np.sum(w[k] * w[k])),
        }  # fmt: skip
        for k in range(m)
    )
    return Calibration(
        method=method, temperature=float(lam), confident=confident, n_members=m,
        lower_q=lower_q, upper_q=upper_q, coverage=float(inside.mean()), coverage_unweighted=target,
        relative_width=float(width.mean() / width0.mean()) if width0.mean() > 0 else None,
        members_in_play=float(play.mean()), grid=tuple(rows), held_out=held, message=message, weights=w,
    )  # fmt: skip


def crps(sle: np.ndarray, weights: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS of each row's weighted mixture of the members' SLE against `truth` (ArviZ's weighted
    estimator, `loo_score`; exact for a discrete mixture). `weights` (K, M), `truth` (K,)."""
    from arviz_stats.base import array_stats

    sle = np.asarray(sle, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    samples = np.broadcast_to(sle, weights.shape)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    score = array_stats.loo_score(
        np.ascontiguousarray(samples), np.asarray(truth, dtype=np.float64), log_w, kind="crps",
        chain_axis=None, draw_axis=-1,
    )  # fmt: skip
    return -np.asarray(score, dtype=np.float64)


def scores(calibration: Calibration, sle: np.ndarray) -> dict[str, float | None]:
    """The CRPS figures of the inner test: `crps_weighted`, `crps_unweighted`, `crps_skill`."""
    sle = np.asarray(sle, dtype=np.float64)
    if calibration.weights is None:
        return {"crps_weighted": None, "crps_unweighted": None, "crps_skill": None}
    m = sle.size
    flat = held_out_weights(np.zeros((m, m)), 1.0, leave_out=True)
    weighted = float(crps(sle, calibration.weights, sle).mean())
    unweighted = float(crps(sle, flat, sle).mean())
    skill = 1.0 - weighted / unweighted if unweighted > 0 else None
    return {"crps_weighted": weighted, "crps_unweighted": unweighted, "crps_skill": skill}
