"""The hierarchical noise model of DESIGN.md, in two PyMC forms that share one log-density.

`build_model` is the form FUSION samples. The joint potential Σ_m logL_scaled[m] touches the
data only through, per point i, S2_i = Σ_m (y_i − F_mi)²: expanding the Gaussian log-density,

    Σ_m logL_s[m] = −½ Σ_{i∈s} S2_i / σ²_tot,i − ½ M Σ_{i∈s} log(2π σ²_tot,i),

so one gradient costs O(N) instead of O(M·N). Points of one stream that share
(σ_obs², speed) also share σ_tot for every θ, so they are merged into one group with summed
S2 and a count: an exact rewrite that only changes the summation order.

`FusedDensity` is the same log-density (priors, log-transform Jacobian and potential) with its
gradient written out by hand in one Numba pass over the groups, cached on disk: it lets
nutpie sample without compiling a PyTensor graph (seconds saved on every run) and runs
several times faster per gradient. Tests hold it to `build_model` at 1e-9.

`build_loop_model` is the prototype's own construction (one log-likelihood graph per member,
deterministics `w`, `logL_*` inside the model). It is slow by design; tests prove both forms
have the same log-density and gradient, and the benchmark times one against the other.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA

if TYPE_CHECKING:
    import pymc as pm
    import pytensor.tensor as pt

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
    "FusedDensity",
]



def strict_pytensor_float() -> None:
    """Compile PyTensor graphs without `fastmath`, here and in every sampler child process.

    PyTensor's Numba backend turns on `reassoc`, `afn`, `arcp` by default. A graph compiled
    fresh and the same graph loaded from PyTensor's cache then regroup sums differently:
    measured on the SBC graph, a cold cache and a warm cache gave different draws for the same
    seed, and with the flag off they agree bit for bit. The environment variable carries the
    setting into processes PyMC and the harness spawn, and into PyTensor itself when it is
    imported later (`fusion run` with nutpie never imports it: 0.1 s saved). An explicit
    `numba__fastmath` in `PYTENSOR_FLAGS` is left alone.
    """
    import os
    import sys

    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "numba__fastmath" in flags:
        return
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "numba__fastmath=False"]))
    if "pytensor" in sys.modules:  # imported before FUSION: its config has read the flags already
        sys.modules["pytensor"].config.numba__fastmath = False


strict_pytensor_float()

_LOG_2PI = float(np.log(2.0 * np.pi))


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
        blocks.append(
            StreamBlock(
                stream=s, sigma_obs2=so2_s, speed=speed_s, s2=s2_s, count=count,
                n_points=int(sel.sum()), n_members=prepared.n_members,
                alpha=settings.alpha(s), inflation2=settings.inflation2(s), tempered=settings.tempered,
                density_scale=None if settings.density_scale is None else float(settings.density_scale[s]),
            )
        )
    return tuple(blocks)


def _priors() -> dict[str, pt.TensorVariable]:
    """HalfNormal priors with float64 scales (a bare 0.5 becomes a float32 constant in PyTensor,
    and log(0.5) in float32 shifts the log-density by 1.9e-9)."""
    import pymc as pm
    import pytensor.tensor as pt

    return {
        name: pm.HalfNormal(name, sigma=pt.constant(scale, dtype="float64"))
        for name, scale in PRIOR_SIGMA.items()
    }


def _sigma_tot2(theta: dict[str, pt.TensorVariable], stream: int, sigma_obs2, speed, inflation2: float):
    """σ_tot² = σ_obs² + σ_base²·(1 + β·speed) (+ inflation² on velocity)."""
    suffix = "thick" if stream == THICK else "vel"
    sb, beta = theta[f"sigma_base_{suffix}"], theta[f"beta_{suffix}"]
    var = sigma_obs2 + sb**2 * (1.0 + beta * speed)
    return var + inflation2 if inflation2 else var


def build_model(prepared: Prepared, settings: NoiseSettings | None = None) -> pm.Model:
    """The vectorised model: four HalfNormal priors and one O(N) `joint_loglik` potential."""
    import pymc as pm  # imported here: the nutpie route (the default) never builds a PyMC model
    import pytensor.tensor as pt

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
    import pymc as pm
    import pytensor.tensor as pt

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
            var = _sigma_tot2(
                theta, s, pt.constant(so2[sel]), pt.constant(prepared.speed[sel]), settings.inflation2(s)
            )
            normal = pm.Normal.dist(mu=0.0, sigma=pt.sqrt(var))
            per_stream[s] = [
                pm.logp(normal, pt.constant(y[sel] - prepared.F[m, sel])).sum()
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
_FASTMATH = {"contract", "nsz"}


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
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


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")
def _logp_grad(x, data, bounds, stream_consts, prior_consts, grad):  # pragma: no cover - compiled
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
        value = _logp_grad(x, data, bounds, consts, prior, grad)
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



class FusedDensity:
    """Log-density and gradient of `build_model`'s model on its unconstrained (log) scale.

    `x` holds log θ in `PARAMS` order, exactly as PyMC's value variables `<name>_log__`.
    """

    def __init__(
        self,
        prepared: Prepared,
        settings: NoiseSettings | None = None,
        *,
        prior_sigma: Mapping[str, float] | None = None,
    ) -> None:
        """`prior_sigma` (default `PRIOR_SIGMA`) are the HalfNormal scales, a model constant."""
        settings = settings or NoiseSettings()
        prior_sigma = PRIOR_SIGMA if prior_sigma is None else prior_sigma
        rows, bounds, consts = [], [], []
        start = 0
        for b in stream_blocks(prepared, settings):
            if b.n_points == 0:
                continue
            order = np.argsort(b.count != 1, kind="stable")  # single points first
            count = b.count[order]
            rows.append(np.stack([b.sigma_obs2[order] + b.inflation2, b.speed[order], b.s2[order], count]))
            stop = start + count.size
            bounds.append([0 if b.stream == THICK else 1, start, stop, int(np.count_nonzero(count == 1))])
            consts.append([b.scale, b.n_points * _LOG_2PI, float(b.n_members)])
            start = stop
        self._data = np.ascontiguousarray(np.concatenate(rows, axis=1) if rows else np.zeros((4, 0)))
        self._bounds = np.array(bounds, dtype=np.int64).reshape(-1, 4)
        self._consts = np.array(consts, dtype=np.float64).reshape(-1, 3)
        sig = np.array([prior_sigma[p] for p in PARAMS], dtype=np.float64)
        self._prior = np.concatenate([[np.sum(0.5 * np.log(2.0 / np.pi) - np.log(sig))], 1.0 / sig**2])

    def with_stream_constants(
        self, stream: int, *, scale: float | None = None, n_members: float | None = None
    ) -> FusedDensity:
        """A copy whose `stream` block has another weight (`scale`) or member count M.

        M multiplies the Gaussian normaliser −½ M (Σ c log σ² + N log 2π) in the value and its
        term in the gradient alike, so the copy is still a consistent density. This is how the
        harness plants bugs in this kernel's inputs, never in its code; a stream with no points
        has no block and is left alone.
        """
        out = copy.copy(self)
        out._consts = self._consts.copy()
        rows = self._bounds[:, 0] == (0 if stream == THICK else 1)
        if scale is not None:
            out._consts[rows, 0] = scale
        if n_members is not None:
            out._consts[rows, 2] = n_members
        return out

    def packed(self) -> np.ndarray:
        """Everything `_logp_grad` needs in one float64 buffer (read back by `unpack`), so a
        C callback can receive it as a single pointer."""
        n_streams = self._bounds.shape[0]
        parts = [
            np.array([0.0, n_streams, self._data.shape[1]]),
            self._prior,
            self._bounds.astype(np.float64).ravel(),
            self._consts.ravel(),
            self._data.ravel(),
        ]
        buf = np.concatenate(parts)
        buf[0] = buf.size
        return np.ascontiguousarray(buf)

    def logp_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """(log-density, gradient) at unconstrained `x` (length 4); the GIL is released inside."""
        grad = np.empty(4)
        x = np.asarray(x, dtype=np.float64)
        value = _logp_grad(x, self._data, self._bounds, self._consts, self._prior, grad)
        return value, grad
