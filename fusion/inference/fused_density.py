"""`FusedDensity`: the noise model's log-density and gradient for nutpie and the Laplace fit.

It packs the per-stream sufficient statistics of `fusion.inference.noise` into the arrays of
the Numba kernel (`fusion.inference.fused_kernel`), single points first, and evaluates the
kernel in this process or hands nutpie one buffer for its C callbacks (`packed`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from fusion.data.prepared import THICK, Prepared
from fusion.inference import fused_kernel, noise
from fusion.inference.noise import LOG_2PI, NoiseSettings
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA

__all__ = ["FusedDensity"]


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
        # `noise.stream_blocks`, looked up when called: a fault planted in the noise module reaches it
        self._pack(noise.stream_blocks(prepared, settings or NoiseSettings()), prior_sigma)

    @classmethod
    def from_stream_blocks(
        cls, blocks: Sequence[noise.StreamBlock], *, prior_sigma: Mapping[str, float] | None = None
    ) -> FusedDensity:
        """The density of `noise.stream_blocks`' statistics, already computed (e.g. once for the
        points of several likelihood forms, `StreamBlock.with_settings` giving each its weights)."""
        out = cls.__new__(cls)
        out._pack(blocks, prior_sigma)
        return out

    def _pack(self, blocks: Sequence[noise.StreamBlock], prior_sigma: Mapping[str, float] | None) -> None:
        prior_sigma = PRIOR_SIGMA if prior_sigma is None else prior_sigma
        rows, bounds, consts = [], [], []
        start = 0
        for b in blocks:
            if b.n_points == 0:
                continue
            order = np.argsort(b.count != 1, kind="stable")  # single points first
            count = b.count[order]
            rows.append(np.stack([b.sigma_obs2[order] + b.inflation2, b.speed[order], b.s2[order], count]))
            stop = start + count.size
            bounds.append([0 if b.stream == THICK else 1, start, stop, int(np.count_nonzero(count == 1))])
            consts.append([b.scale, b.n_points * LOG_2PI, float(b.n_members)])
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
        """Everything `fused_kernel.logp_grad` needs in one float64 buffer (read back by
        `fused_kernel.unpack`), so a C callback can receive it as a single pointer."""
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
        value = fused_kernel.logp_grad(x, self._data, self._bounds, self._consts, self._prior, grad)
        return value, grad
