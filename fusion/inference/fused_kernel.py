"""The fused log-density's Numba kernel: value and gradient in one pass, and nutpie's C callbacks.

The same log-density as `fusion.inference.pymc_model.build_model` (priors, log-transform
Jacobian and potential) with its gradient written out by hand in one pass over the groups of
`fusion.inference.noise.stream_blocks`, cached on disk by Numba: it lets nutpie sample without
compiling a PyTensor graph (seconds saved on every run) and runs several times faster per
gradient. Its inputs are packed by `fusion.inference.fused_density.FusedDensity`; tests hold
the two to `build_model` at 1e-9.

The callbacks live in this module with the kernel they inline, because Numba invalidates a
cached function only when its own source file changes (see `c_callbacks`).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from fusion.inference.parameters import PARAMS

__all__ = ["FASTMATH", "c_callbacks", "logp_grad", "unpack"]

# ---------------------------------------------------------------------------------------------
# The fused density: value and gradient of the model's log-density in one pass.
#
# For one stream with s = σ_base², β and groups k (σ_obs² + inflation² = a_k, speed v_k,
# summed squared residuals S2_k, count c_k): u_k = 1 + β·v_k, var_k = a_k + s·u_k and
#     P = scale · (−½ Σ S2_k/var_k − ½ M Σ c_k log var_k − ½ M N log 2π)
#     ∂P/∂s = scale · ½ Σ g_k u_k,   ∂P/∂β = scale · ½ s Σ g_k v_k,
#     g_k = (S2_k/var_k − M c_k)/var_k.
# Single points (c_k = 1) come first. They are summed in _LANES interleaved lanes (lane j takes
# points j, j + _LANES, ...; the lanes are added in order at the end): the inner loop is then
# elementwise over lanes, so LLVM vectorises it (vdivpd on ymm) without `reassoc`, and the order
# of every addition is fixed by the source. Their logs are taken of products of the variances
# of two lanes over _CHUNK rows (exact up to rounding; a product that would leave the normal
# float range falls back to one lane's product, then to one log per point), which removes most
# of the cost of `log`.
# ---------------------------------------------------------------------------------------------

_CHUNK = 32
#: Lanes of the single-point loop: 16 or more vectorise (8 is unrolled and left scalar); 32
#: measured fastest (benchmarks/bench_kernel.py).
_LANES = 32
#: No `reassoc`: with it LLVM regroups the sums, and Numba's freshly compiled kernel and the same
#: kernel loaded from its on-disk cache regroup them differently (measured: the same x gives
#: values a few ULP apart, so a seeded chain diverges between a cold and a warm cache).
#: `contract` (fused multiply-add) and `nsz` do not change between the two; tested in
#: tests/inference/test_determinism.py.
FASTMATH = {"contract", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _stream_terms(s, beta, a, speed, s2, count, n_single, m):  # pragma: no cover - compiled
    """Σ S2/var, Σ c·log var, Σ g·u and Σ g·v over one stream's groups (see the block comment).

    var = (a + s) + sβ·v and Σ g·u = Σ g + β Σ g·v keep the loop to one division and a few
    fused multiply-adds per group; `error_model="numpy"` (no ZeroDivisionError branch) lets
    LLVM vectorise it.
    """
    lane_q = np.zeros(_LANES)
    lane_g = np.zeros(_LANES)
    lane_v = np.zeros(_LANES)
    lane_p = np.empty(_LANES)
    logdet = 0.0
    sbeta = s * beta
    n = a.size
    n_rows = n_single - n_single % _LANES
    for start in range(0, n_rows, _LANES * _CHUNK):
        stop = min(start + _LANES * _CHUNK, n_rows)
        lane_p[:] = 1.0
        for row in range(start, stop, _LANES):
            # indexing row views by j, not a[row + j]: measured 16 µs against 24 µs per call on
            # 20,000 points (benchmarks/bench_kernel.py)
            a_r, speed_r, s2_r = a[row:row + _LANES], speed[row:row + _LANES], s2[row:row + _LANES]
            for j in range(_LANES):  # elementwise over lanes: vectorised, order unchanged
                var = (a_r[j] + s) + sbeta * speed_r[j]
                inv = 1.0 / var
                q = s2_r[j] * inv
                g = inv * (q - m)
                lane_q[j] += q
                lane_g[j] += g
                lane_v[j] += g * speed_r[j]
                lane_p[j] *= var
        for pair in range(0, _LANES, 2):
            prod = lane_p[pair] * lane_p[pair + 1]
            if prod > 1e-300 and prod < 1e300:
                logdet += math.log(prod)
                continue
            for j in range(pair, pair + 2):
                prod = lane_p[j]
                if prod > 1e-300 and prod < 1e300:
                    logdet += math.log(prod)
                else:
                    for k in range(start + j, stop, _LANES):
                        logdet += math.log((a[k] + s) + sbeta * speed[k])
    quad = 0.0
    g0 = 0.0
    g1 = 0.0
    for j in range(_LANES):
        quad += lane_q[j]
        g0 += lane_g[j]
        g1 += lane_v[j]
    for k in range(n_rows, n):
        var = (a[k] + s) + sbeta * speed[k]
        inv = 1.0 / var
        q = s2[k] * inv
        quad += q
        g = inv * (q - m * count[k])
        g0 += g
        g1 += g * speed[k]
        logdet += count[k] * math.log(var)
    return quad, logdet, g0 + beta * g1, g1


@numba.njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def logp_grad(x, data, bounds, stream_consts, prior_consts, grad):  # pragma: no cover - compiled
    """Whole log-density at unconstrained x; writes the gradient into `grad`; returns the value.

    data: (4, K) rows a, speed, s2, count; bounds: (n_streams, 4) int64 rows [stream, start,
    stop, n_single]; stream_consts: (n_streams, 3) rows [scale, N·log 2π, M];
    prior_consts: [Σ const, 1/σ_j² for each parameter].
    """
    logp = prior_consts[0]
    for j in range(4):
        theta2 = math.exp(2.0 * x[j]) * prior_consts[1 + j]
        logp += x[j] - 0.5 * theta2
        grad[j] = 1.0 - theta2
    for r in range(bounds.shape[0]):
        which, lo, hi, n_single = bounds[r, 0], bounds[r, 1], bounds[r, 2], bounds[r, 3]
        scale, const, m = stream_consts[r, 0], stream_consts[r, 1], stream_consts[r, 2]
        sb = math.exp(x[which])
        beta = math.exp(x[2 + which])
        s = sb * sb
        quad, logdet, gs, gb = _stream_terms(
            s, beta, data[0, lo:hi], data[1, lo:hi], data[2, lo:hi], data[3, lo:hi], n_single, m
        )
        logp += scale * (-0.5 * quad - 0.5 * m * (logdet + const))
        grad[which] += scale * gs * s  # ½ Σ g·u · ds/dx with ds/dx = 2s
        grad[2 + which] += scale * 0.5 * s * gb * beta
    return logp


@numba.njit(cache=True, nogil=True)
def unpack(buf):  # pragma: no cover - compiled
    """Inverse of `FusedDensity.packed`: (data, bounds, stream_consts, prior_consts)."""
    n_streams = int(buf[1])
    k = int(buf[2])
    pos = 3
    prior = buf[pos:pos + 5]
    pos += 5
    bounds = np.empty((n_streams, 4), dtype=np.int64)
    for r in range(n_streams):
        for c in range(4):
            bounds[r, c] = int(buf[pos + 4 * r + c])
    pos += 4 * n_streams
    consts = buf[pos:pos + 3 * n_streams].reshape((n_streams, 3))
    pos += 3 * n_streams
    data = buf[pos:pos + 4 * k].reshape((4, k))
    return data, bounds, consts, prior


_N_PARAMS = len(PARAMS)


@functools.cache
def c_callbacks() -> tuple[object, object]:
    """nutpie's C callbacks (logp+gradient, expand) around the fused kernel; cached on disk by Numba.

    Defined in this module, next to the kernel they inline: Numba invalidates a cached function
    only when its own source file changes, so callbacks cached from another module kept running
    an edited kernel's old code. The kernel's data arrive as one float64 buffer (`FusedDensity.packed`) whose first element
    is its length, so the callbacks hold no pointers of their own and can be cached. They read
    only module globals (no closure cells), which keeps Numba's cache key stable across runs.
    """
    import numba
    from numba import types

    dptr = types.CPointer(types.double)
    logp_sig = types.int64(types.uint64, dptr, dptr, dptr, types.voidptr)  # dim, x, grad, logp, data
    expand_sig = types.int64(types.uint64, types.uint64, dptr, dptr, types.voidptr)  # dim, n_out, x, out

    @numba.cfunc(logp_sig, cache=True, nogil=True, error_model="numpy")
    def c_logp(dim, x_, grad_, logp_, user_):  # pragma: no cover - compiled
        if dim != _N_PARAMS:
            return -1
        size = numba.carray(user_, (1,), np.float64)[0]
        data, bounds, consts, prior = unpack(numba.carray(user_, (int(size),), np.float64))
        x = numba.carray(x_, (_N_PARAMS,))
        grad = numba.carray(grad_, (_N_PARAMS,))
        value = logp_grad(x, data, bounds, consts, prior, grad)
        numba.carray(logp_, (1,))[0] = value
        for j in range(_N_PARAMS):
            if not np.isfinite(grad[j]):
                return 3
        if not np.isfinite(value):
            return 4
        return 0

    @numba.cfunc(expand_sig, cache=True, nogil=True)
    def c_expand(dim, n_expanded, x_, out_, user_):  # pragma: no cover - compiled
        if dim != _N_PARAMS or n_expanded != _N_PARAMS:
            return -1
        x = numba.carray(x_, (_N_PARAMS,))
        out = numba.carray(out_, (_N_PARAMS,))
        for j in range(_N_PARAMS):
            out[j] = np.exp(x[j])
        return 0

    return c_logp, c_expand

