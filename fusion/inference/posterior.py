"""Member weights and log-likelihoods from posterior draws, after sampling, in one matrix product.

The sampler only needs the O(N) potential; the per-member quantities the prototype tracked as
deterministics on every draw are recovered here from the stored draws. With P[d, i] =
1/σ²_tot,i(θ_d) and the squared residuals split by stream into a (2M, N) matrix R,
P @ Rᵀ gives every draw's quadratic term for every member and stream at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.model import PARAMS, NoiseSettings, sigma_obs_squared, squared_residuals

__all__ = ["member_logliks", "softmax_weights", "add_member_deterministics", "MEMBER_VARS"]

MEMBER_VARS: tuple[str, ...] = ("w", "logL_thick", "logL_vel", "logL_scaled")
_LOG_2PI = float(np.log(2.0 * np.pi))
_CHUNK_ELEMENTS = 1 << 23  # draws × points held at once (64 MiB of float64)


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
    m = prepared.n_members
    stream = prepared.stream
    is_t = stream == THICK
    is_v = stream == VEL
    r2 = squared_residuals(prepared)
    r2_split = np.concatenate([r2 * is_t, r2 * is_v], axis=0).T  # (N, 2M)
    so2 = sigma_obs_squared(prepared)
    speed = np.asarray(prepared.speed, dtype=np.float64)
    infl2 = np.where(is_v, settings.inflation2(VEL), settings.inflation2(THICK))
    n_t, n_v = int(is_t.sum()), int(is_v.sum())

    logl_t = np.empty((n_draws, m))
    logl_v = np.empty((n_draws, m))
    step = max(1, _CHUNK_ELEMENTS // max(prepared.n_points, 1))
    for start in range(0, n_draws, step):
        sl = slice(start, min(start + step, n_draws))
        sb = np.where(is_t, draws["sigma_base_thick"][sl, None], draws["sigma_base_vel"][sl, None])
        beta = np.where(is_t, draws["beta_thick"][sl, None], draws["beta_vel"][sl, None])
        var = so2 + sb**2 * (1.0 + beta * speed) + infl2  # (d, N)
        quad = (1.0 / var) @ r2_split  # (d, 2M): the one matrix product
        logvar = np.log(var)
        logdet_t = (logvar * is_t).sum(axis=1) + n_t * _LOG_2PI
        logdet_v = (logvar * is_v).sum(axis=1) + n_v * _LOG_2PI
        logl_t[sl] = -0.5 * quad[:, :m] - 0.5 * logdet_t[:, None]
        logl_v[sl] = -0.5 * quad[:, m:] - 0.5 * logdet_v[:, None]
    scaled = settings.alpha_thick * logl_t / max(n_t, 1) + settings.alpha_vel * logl_v / max(n_v, 1)
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
