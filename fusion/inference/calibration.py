"""The member weights' sharpness, calibrated out of sample: the perfect-model test on the run's own ensemble.

The likelihood forms are calibrated when one member *is* the truth (docs, "Likelihood forms").
A real ensemble has no such member: every run misses reality by its own structural error, and a
posterior that is calibrated in-sample collapses onto the nearest member (a 2100 range of zero
width). The climate-ensemble weighting literature decides the sharpness out of sample (ClimWIP:
Knutti et al. 2017, GRL; Brunner et al. 2020, ESD; ESMValTool's `calibrate_sigmas`): each member
in turn plays the truth, the weighting runs on the others, and the shape parameter is the
sharpest whose weighted range still holds the held-out member as often as the unweighted
ensemble does.

Here the shape parameters are member temperatures λ_s ∈ [0, 1], one per stream, on the form's
member log-likelihoods: w ∝ exp(Σ_s λ_s · c_s · logL_s). One temperature per stream, because
the streams do not inform the projection alike: on the structural ensembles of the evidence
(harness.sim.ensembles) thickness change carries the SLE signal while velocity change mostly
carries the members' structural errors, and one common λ must then flatten both (a mean CRPS
0.82 of the unweighted ensemble's) where λ_thick = 1, λ_vel ≈ 10⁻⁴ keeps the unweighted
ensemble's coverage at 0.48 of its CRPS.
For member k as the truth, the pseudo-observations are its modelled rates plus noise at the
stated σ_obs, and member j's contrast of stream s at a fixed θ (the run's posterior mean) is

    L_s[k, j] = −½ c_s Σ_{i∈s} (y⁽ᵏ⁾_i − F_ji)² / σ²_tot,i(θ),

c_s the form's member weight of stream s (n_eff,loc/N under `effective`); the log-determinant
is the same for every member and cancels in the weights. That is O(M² N), no sampler per
member. On a log grid per stream (from 1 down to all but equal weights: `temperature_grid`), the
held-out member's SLE is scored against the weighted 5–95 % range of the other members
(`leave_out`; the in-sample version, the member among its own candidates, is the planted defect
of the harness check `perfect_model`). A pair (λ_thick, λ_vel) is *confident* when it and every
softer pair (each temperature no larger) reach the unweighted ensemble's own coverage (with few
members an ensemble cannot cover its own extremes, so nominal coverage is not the bar); of the
confident pairs the one with the narrowest mean range is chosen. With none, the run falls back
to equal weights and says so.

The noise of the pseudo-observations is independent between points here (`NOISE_DRAWS` draws
per member, seeded): correlated fields of the run's size cost seconds per member (GSTools), and
the members' structural differences, not the noise, set the contrasts. The harness check
`perfect_model` draws correlated noise as the run estimates it, and so tests this choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.blas_threads import one_blas_thread
from fusion.inference.noise import NoiseSettings, sigma_obs_squared
from fusion.inference.parameters import PARAMS

__all__ = [
    "NOISE_DRAWS", "STREAMS", "noise_draws", "temperature_grid", "Calibration", "member_contrasts", "held_out_weights",
    "calibrate", "crps", "scores", "calibration_record",
]  # fmt: skip

STREAMS: tuple[int, ...] = (THICK, VEL)
_NAMES: dict[int, str] = {THICK: "thick", VEL: "vel"}
#: the temperature grid's steps per decade (coverage changes with log λ)
STEPS_PER_DECADE = 4
#: the softest λ tried: where λ times the median spread of a held-out row's contrasts is this
#: (the weights are then all but equal; contrasts of thousands of nats need λ ≪ 0.001 for that)
FLAT_SPREAD = 0.05
#: noise draws per held-out member in the inner test, at least: the coverage of R·M pseudo-truths
#: steps by 1/(R·M), so a one-member dip of one noise draw no longer stops the search at a soft λ
NOISE_DRAWS = 4
#: pseudo-truths the inner test scores at least (R = max(NOISE_DRAWS, ⌈PSEUDO_TRUTHS / M⌉)): a small
#: ensemble's coverage otherwise steps by a fifth, and the choice jumps with the subsample
PSEUDO_TRUTHS = 100


def noise_draws(n_members: int) -> int:
    """R for an ensemble of `n_members` (`PSEUDO_TRUTHS`): the cost R·M²·N grows with M, not faster."""
    return max(NOISE_DRAWS, -(-PSEUDO_TRUTHS // max(n_members, 1)))
#: the sharpness factors of the figure's path: the chosen pair times κ (κ = 1 the choice)
PATH = tuple(10.0 ** (i / STEPS_PER_DECADE) for i in range(-12, 9))


def temperature_grid(rows: np.ndarray) -> tuple[float, ...]:
    """λ from 1 down, `STEPS_PER_DECADE` a decade, to the λ at which held-out `rows` of contrasts
    (each over the members weighed, the truth left out) give all but equal weights (`FLAT_SPREAD`).
    A fixed grid cannot serve every run: the contrasts' scale follows the form, n_eff and the
    members' spread."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    spread = float(np.median(rows.max(axis=1) - rows.min(axis=1))) if rows.size else 0.0
    softest = min(1.0, FLAT_SPREAD / spread) if spread > 0 else 1.0
    steps = int(np.ceil(-np.log10(softest) * STEPS_PER_DECADE))
    return tuple(float(10.0 ** (-i / STEPS_PER_DECADE)) for i in range(steps + 1))


def _off_diagonal(c: np.ndarray) -> np.ndarray:
    m = c.shape[-1]
    return c[~np.eye(m, dtype=bool)].reshape(m, m - 1) if m > 1 else c.reshape(m, 0)


@dataclass(frozen=True)
class Calibration:
    """The chosen temperatures and the inner perfect-model test behind them (summary.json `calibration`)."""

    method: str  # "perfect_model", "fixed" or "off"
    temperature: tuple[float, float]  # (λ_thick, λ_vel) on the streams' logL (0: no weight)
    confident: bool
    n_members: int
    lower_q: float = 0.05
    upper_q: float = 0.95
    coverage: float | None = None  # inner leave-one-member-out coverage at the chosen pair
    coverage_unweighted: float | None = None
    relative_width: float | None = None  # mean weighted width / mean unweighted width
    members_in_play: float | None = None  # mean over held-out members of 1/Σw²
    #: the chosen pair times each factor κ of `PATH`: coverage, relative width, members in play
    #: (the figure's right panel: sharper to the right, softer to the left)
    grid: tuple[dict[str, float], ...] = ()
    #: per held-out member: its SLE and the weighted / unweighted range (the figure's left panel)
    held_out: tuple[dict[str, Any], ...] = ()
    crps_skill: float | None = None  # 1 − CRPS(weighted) / CRPS(unweighted), set by `scores`
    crps_weighted: float | None = None
    crps_unweighted: float | None = None
    message: str | None = None  # the one line a run without a confident pair prints
    weights: np.ndarray | None = field(default=None, compare=False, repr=False)  # (M, M) held-out rows

    def record(self) -> dict[str, Any]:
        """summary.json's `calibration` (the held-out weight rows stay out: M² numbers)."""
        return {
            "method": self.method, "temperature": dict(zip(_NAMES.values(), self.temperature, strict=True)),
            "confident": self.confident, "n_members": self.n_members, "lower_q": self.lower_q,
            "upper_q": self.upper_q, "coverage": self.coverage, "coverage_unweighted": self.coverage_unweighted,
            "relative_width": self.relative_width, "members_in_play": self.members_in_play,
            "crps_skill": self.crps_skill, "crps_weighted": self.crps_weighted,
            "crps_unweighted": self.crps_unweighted, "message": self.message,
            "grid": list(self.grid), "held_out": list(self.held_out),
        }  # fmt: skip


def _point_weights(prepared: Prepared, settings: NoiseSettings) -> np.ndarray:
    """c_s per point: the form's member weight of the point's stream (α_s/N_s when tempered)."""
    out = np.empty(prepared.n_points)
    for s in STREAMS:
        sel = prepared.stream == s
        if settings.member_scale is not None:
            out[sel] = settings.member_scale[s]
        else:
            out[sel] = settings.alpha(s) / max(int(sel.sum()), 1)
    return out


def member_contrasts(
    prepared: Prepared,
    theta: np.ndarray,
    settings: NoiseSettings,
    seed: int,
    noise: np.ndarray | None = None,
    draws: int = 1,
) -> np.ndarray:
    """L (2, R, M, M): per stream (thickness, velocity) and noise draw, member j's form
    log-likelihood of that stream (up to a constant per row) when member k is the truth.

    `theta` is one θ in PARAMS order; `noise` (R, M, N) the pseudo-observations' errors, default
    `draws` independent draws at σ_obs per member from `seed`.
    """
    theta = np.asarray(theta, dtype=np.float64).reshape(len(PARAMS))
    vel = prepared.stream == VEL
    sb = np.where(vel, theta[1], theta[0])
    beta = np.where(vel, theta[3], theta[2])
    extra = np.where(vel, settings.inflation2(VEL), settings.inflation2(THICK))
    var = sigma_obs_squared(prepared) + extra + sb**2 * (1.0 + beta * np.asarray(prepared.speed, dtype=np.float64))
    u = _point_weights(prepared, settings) / var
    F = np.asarray(prepared.F, dtype=np.float64)
    if noise is None:  # `draws` standard normal fields of F's shape, one after another, at σ_obs
        noise = np.random.default_rng([seed, 0x9E37]).standard_normal((draws, *F.shape))
        noise *= np.asarray(prepared.sigma_obs, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64).reshape(-1, *F.shape)
    out = np.zeros((len(STREAMS), noise.shape[0], F.shape[0], F.shape[0]))
    with one_blas_thread():  # small products: a second BLAS thread only spins beside `fusion run`'s worker
        for s in STREAMS:
            sel = prepared.stream == s
            Fs, us = F[:, sel], u[sel]
            y = noise[:, :, sel]  # a copy: the pseudo-observations y_k = F_k + noise, weighted in place
            y += Fs
            y *= us
            # −½ Σ u (y_k − F_j)² less its row constant −½ Σ u y_k²: one product M × N_s by N_s × M a draw
            out[s] = y @ Fs.T - 0.5 * ((Fs * Fs) @ us)
    return out


def held_out_weights(contrasts: np.ndarray, temperature: float, *, leave_out: bool = True) -> np.ndarray:
    """(M, M): row k the weights over the members when k is the truth (0 on k itself when `leave_out`)."""
    z = temperature * np.asarray(contrasts, dtype=np.float64)
    if leave_out:
        np.fill_diagonal(z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def _assess(
    sle: np.ndarray, weights: np.ndarray, lower_q: float, upper_q: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inside (K,) bool, width (K,), members in play (K,), ranges (K, 2)) of held-out rows
    `weights` (K, M), row k's truth member k mod M."""
    from fusion.projection import weighted_quantile_rows

    truth = np.resize(sle, weights.shape[0])
    ranges = weighted_quantile_rows(sle, weights, [lower_q, upper_q])
    inside = (truth >= ranges[:, 0]) & (truth <= ranges[:, 1])
    return inside, ranges[:, 1] - ranges[:, 0], 1.0 / np.sum(weights * weights, axis=1), ranges


def _weights(contrasts: np.ndarray, pair: tuple[float, ...], leave_out: bool) -> np.ndarray:
    """(R·M, M): every noise draw's held-out rows at the stream temperatures `pair`."""
    combined = np.tensordot(np.asarray(pair, dtype=np.float64), contrasts, axes=1)  # (R, M, M)
    return np.concatenate([held_out_weights(c, 1.0, leave_out=leave_out) for c in combined])


def calibrate(
    contrasts: np.ndarray,
    sle: np.ndarray,
    member_ids: tuple[str, ...] | list[str],
    lower_q: float = 0.05,
    upper_q: float = 0.95,
    *,
    leave_out: bool = True,
    fixed: float | tuple[float, float] | None = None,
) -> Calibration:
    """The confident stream temperatures of the inner perfect-model test with the narrowest range
    (module docstring); `contrasts` as `member_contrasts` gives them (S, R, M, M).

    `fixed` (`likelihood.calibration: <number>`: the same λ on every stream) takes those
    temperatures and reports the test at them. `leave_out=False` scores each member among its own
    candidates: the planted defect (it always finds the sharpest pair confident, since the truth is
    always a candidate).
    """
    sle = np.asarray(sle, dtype=np.float64)
    contrasts = np.asarray(contrasts, dtype=np.float64)
    n_streams, m = contrasts.shape[0], sle.size
    method = "perfect_model" if fixed is None else "fixed"
    fixed_pair = None if fixed is None else (tuple(fixed) if isinstance(fixed, tuple) else (float(fixed),) * n_streams)
    if m < 3:
        return Calibration(
            method=method, temperature=fixed_pair or (0.0,) * n_streams, confident=False, n_members=m,
            lower_q=lower_q, upper_q=upper_q,
            message=None if fixed is not None else f"{m} members: too few to hold one out and weigh the rest; equal weights used",
        )  # fmt: skip
    flat = held_out_weights(np.zeros((m, m)), 1.0, leave_out=True)
    inside0, width0, _, ranges0 = _assess(sle, flat, lower_q, upper_q)
    target, w0 = float(inside0.mean()), float(width0.mean())
    grids = [sorted(temperature_grid(_off_diagonal(contrasts[s, 0]))) for s in range(n_streams)]  # ascending
    shape = tuple(len(g) for g in grids)
    coverage, width = np.zeros(shape), np.zeros(shape)
    for index in np.ndindex(shape):
        pair = tuple(grids[s][i] for s, i in enumerate(index))
        inside, wide, _, _ = _assess(sle, _weights(contrasts, pair, leave_out), lower_q, upper_q)
        coverage[index], width[index] = inside.mean(), wide.mean()
    # confident: the pair and every softer pair (each λ no larger) reach the unweighted coverage
    confident = coverage + 1e-12 >= target
    for axis in range(n_streams):
        confident = np.minimum.accumulate(confident, axis=axis)
    message = None
    if fixed_pair is not None:
        pair = fixed_pair
        at = tuple(int(np.searchsorted(g, v, side="right")) - 1 for g, v in zip(grids, pair, strict=True))
        ok = all(i >= 0 for i in at) and bool(confident[tuple(max(i, 0) for i in at)])
    elif confident.any():
        found = np.argwhere(confident)
        best = min(found, key=lambda i: (width[tuple(i)], -sum(math.log(grids[s][k]) for s, k in enumerate(i))))
        pair, ok = tuple(grids[s][k] for s, k in enumerate(best)), True
    else:
        pair, ok = (0.0,) * n_streams, False
        message = (
            f"no member temperatures keep the held-out members inside the {lower_q:.0%}–{upper_q:.0%} range "
            f"as often as the unweighted ensemble ({int(inside0.sum())}/{m}); equal weights used"
        )
    rows = _weights(contrasts, pair, leave_out)
    inside, wide, play, every_range = _assess(sle, rows, lower_q, upper_q)
    first, ranges = rows[:m], every_range[:m]  # the held-out rows drawn: the first noise draw's
    path = []
    for kappa in PATH:
        scaled = tuple(min(1.0, kappa * v) for v in pair)
        c, wd, pl, _ = _assess(sle, _weights(contrasts, scaled, leave_out), lower_q, upper_q)
        path.append({"factor": kappa, "coverage": float(c.mean()), "relative_width": float(wd.mean() / w0) if w0 > 0 else math.nan,
                     "members_in_play": float(pl.mean())})  # fmt: skip
    held = tuple(
        {
            "member": str(member_ids[k]), "sle_mm": float(sle[k]),
            "inside": bool(ranges[k, 0] <= sle[k] <= ranges[k, 1]),
            "lower": float(ranges[k, 0]), "upper": float(ranges[k, 1]),
            "lower_unweighted": float(ranges0[k, 0]), "upper_unweighted": float(ranges0[k, 1]),
            "members_in_play": float(1.0 / np.sum(first[k] * first[k])),
        }  # fmt: skip
        for k in range(m)
    )
    return Calibration(
        method=method, temperature=tuple(float(v) for v in pair), confident=ok, n_members=m,
        lower_q=lower_q, upper_q=upper_q, coverage=float(inside.mean()), coverage_unweighted=target,
        relative_width=float(wide.mean() / w0) if w0 > 0 else None, members_in_play=float(play.mean()),
        grid=tuple(path), held_out=held, message=message, weights=first,
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


def calibration_record(calibration: Calibration, sle: np.ndarray) -> dict[str, Any]:
    """summary.json's `calibration`: the chosen temperatures, the inner test, and its CRPS (`scores`)."""
    return {**calibration.record(), **scores(calibration, sle)}
