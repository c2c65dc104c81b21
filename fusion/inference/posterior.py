"""Member weights and log-likelihoods from posterior draws, after sampling, in one product per stream.

The sampler only needs the O(N) potential; the per-member quantities the prototype tracked as
deterministics on every draw are recovered here from the stored draws. With P[d, i] =
1/σ²_tot,i(θ_d) and R_s the (N_s, M) squared residuals of stream s's points, P[:, s] @ R_s gives
every draw's quadratic term for every member of that stream at once: two products over the two
streams' column blocks of P (thickness points first), where one product with a block-diagonal
(N, 2M) matrix would spend half its work on zeros.

The products run on one BLAS thread. Their bits then depend on nothing but the inputs (with two
OpenBLAS threads the per-stream products round differently from one thread, measured on this
machine's OpenBLAS), and one thread is also the cheaper in CPU: 2,000 draws × 20,000 points × 27
members take 0.11 s of CPU on one thread against 0.25 s for the single product on two threads,
whose second thread mostly spin-waits when the machine's other core is busy (fusion run's worker).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numba
import numpy as np
import xarray as xr

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.blas_threads import one_blas_thread
from fusion.inference.fused_kernel import FASTMATH
from fusion.inference.noise import LOG_2PI, NoiseSettings, sigma_obs_squared, squared_residuals
from fusion.inference.parameters import PARAMS

__all__ = ["member_logliks", "softmax_weights", "add_member_deterministics", "warm_member_logliks", "MEMBER_VARS"]

MEMBER_VARS: tuple[str, ...] = ("w", "logL_thick", "logL_vel", "logL_scaled")
#: draws × points of 1/σ² held at once (16 MiB of float64): small enough to stay in cache between
#: the loop that writes them and the products that read them (4× this was 20 % slower)
_CHUNK_ELEMENTS = 1 << 21
#: at most this many draws per product, however few the points
_MAX_CHUNK_ROWS = 256


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _inverse_variances(params, a, speed, n_thick, inv, logdet):  # pragma: no cover - compiled
    """Per draw: 1/σ²_tot of every point into `inv`, Σ log σ²_tot per stream into `logdet`.

    `a` is σ_obs² + inflation² with thickness points first. Logs are taken of products of 32
    variances (falling back to one log each if a product leaves the normal float range).
    """
    n = a.size
    for d in range(params.shape[0]):
        for w in range(2):
            lo = 0 if w == 0 else n_thick
            hi = n_thick if w == 0 else n
            s = params[d, w] * params[d, w]
            sbeta = s * params[d, 2 + w]
            total = 0.0
            k = lo
            while k < hi:
                stop = min(k + 32, hi)
                prod = 1.0
                for j in range(k, stop):
                    var = (a[j] + s) + sbeta * speed[j]
                    inv[d, j] = 1.0 / var
                    prod *= var
                if prod > 1e-300 and prod < 1e300:
                    total += math.log(prod)
                else:
                    for j in range(k, stop):
                        total += math.log((a[j] + s) + sbeta * speed[j])
                k = stop
            logdet[d, w] = total


def warm_member_logliks() -> None:
    """Load `_inverse_variances` from Numba's cache (0.1–0.2 s) before the draws exist: one call
    on one point with the argument types `member_logliks` passes, so the same compiled entry."""
    one = np.ones(1)
    _inverse_variances(np.ones((1, len(PARAMS))), one, one, 1, np.empty((1, 1)), np.empty((1, 2)))


def softmax_weights(logl_scaled: np.ndarray) -> np.ndarray:
    """exp(l − max) normalised over the last axis (members)."""
    z = np.exp(logl_scaled - logl_scaled.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def member_logliks(
    prepared: Prepared,
    theta: Mapping[str, np.ndarray],
    settings: NoiseSettings | None = None,
) -> dict[str, np.ndarray]:
    """`w`, `logL_thick`, `logL_vel`, `logL_scaled`, each (D, M), for D flat draws of the four scalars."""
    settings = settings or NoiseSettings()
    draws = {k: np.asarray(theta[k], dtype=np.float64).ravel() for k in PARAMS}
    n_draws = draws[PARAMS[0]].size
    # points reordered thickness first, so each stream is one contiguous column block of 1/σ²
    idx = {s: np.flatnonzero(prepared.stream == s) for s in (THICK, VEL)}
    n_t, n_v = idx[THICK].size, idx[VEL].size
    order = np.concatenate([idx[THICK], idx[VEL]])
    r2 = squared_residuals(prepared)
    r2_t, r2_v = (np.ascontiguousarray(r2[:, idx[s]].T) for s in (THICK, VEL))  # (N_s, M)
    a = sigma_obs_squared(prepared)[order]
    a[:n_t] += settings.inflation2(THICK)
    a[n_t:] += settings.inflation2(VEL)
    speed = np.asarray(prepared.speed, dtype=np.float64)[order]

    # Every product has `step` rows, the last one padded with zero rows, `step` set by the points
    # alone: OpenBLAS picks its kernels by shape and rounds a row differently in a product of
    # another number of rows (20 draws of 500 points × 27 members against the same draws among
    # 104), so a draw's values depend on that draw alone, not on how many others share the call
    # (the thinned draws `fusion run` weighs early are the trace's rows, bit for bit).
    step = max(1, min(_MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // max(order.size, 1)))
    n_chunks = -(-n_draws // step)
    quad_t = np.empty((n_chunks * step, r2_t.shape[1]))
    quad_v = np.empty((n_chunks * step, r2_v.shape[1]))
    logdet = np.empty((n_draws, 2))
    inv = np.zeros((step, order.size))  # reused across chunks: fresh pages cost more than the maths
    params = np.stack([draws[p] for p in PARAMS], axis=1)  # (D, 4) in PARAMS order
    with one_blas_thread():
        for start in range(0, n_draws, step):
            sl = slice(start, min(start + step, n_draws))
            rows = sl.stop - sl.start
            if rows < step:
                inv[rows:] = 0.0
            _inverse_variances(params[sl], a, speed, n_t, inv[:rows], logdet[sl])
            np.matmul(inv[:, :n_t], r2_t, out=quad_t[start : start + step])
            np.matmul(inv[:, n_t:], r2_v, out=quad_v[start : start + step])
    quad_t, quad_v = quad_t[:n_draws], quad_v[:n_draws]
    logl_t = -0.5 * quad_t - 0.5 * (logdet[:, 0:1] + n_t * LOG_2PI)
    logl_v = -0.5 * quad_v - 0.5 * (logdet[:, 1:2] + n_v * LOG_2PI)
    # the stream temperatures λ (fusion.inference.calibration) multiply each stream's weight; at
    # their default (1, 1) the products are exact, so the form's weights keep their bits
    lam_t, lam_v = settings.member_temperature
    if settings.member_scale is None:
        scaled = (lam_t * settings.alpha_thick * logl_t / max(n_t, 1)
                  + lam_v * settings.alpha_vel * logl_v / max(n_v, 1))
    else:  # a likelihood form's own weights (fusion.inference.likelihood)
        scaled = lam_t * settings.member_scale[THICK] * logl_t + lam_v * settings.member_scale[VEL] * logl_v
    return {"w": softmax_weights(scaled), "logL_thick": logl_t, "logL_vel": logl_v, "logL_scaled": scaled}


def add_member_deterministics(
    trace: xr.DataTree, prepared: Prepared, settings: NoiseSettings | None = None
) -> xr.DataTree:
    """A copy of `trace` whose posterior also holds `w` and `logL_*` on (chain, draw, member)."""
    post = trace["posterior"].to_dataset()
    shape = (post.sizes["chain"], post.sizes["draw"])
    values = member_logliks(prepared, {k: post[k].values for k in PARAMS}, settings)
    members = list(prepared.member_ids)
    new = {
        name: xr.DataArray(
            values[name].reshape(*shape, len(members)),
            dims=("chain", "draw", "member"),
            coords={"chain": post["chain"], "draw": post["draw"], "member": members},
        )
        for name in MEMBER_VARS
    }
    out = trace.copy()
    out["posterior"] = xr.DataTree(post.drop_vars(MEMBER_VARS, errors="ignore").assign(new))
    return out
