"""`inference.method: laplace`: a Gaussian at the posterior mode, on the unconstrained scale.

The mode (MAP of log θ, the space PyMC and nutpie sample in) is found by L-BFGS-B on the
model's own fused log-density and analytic gradient (`FusedDensity`). The covariance is the
inverse of the negative Hessian there, the Hessian taken by central differences of the analytic
gradient (four parameters: eight gradient calls). Draws of that Gaussian are mapped back to θ
and give `w` and the projection exactly as NUTS draws do, so every output of `fusion run`
exists for both methods. A Hessian that is not negative definite means no Gaussian exists at
that point: it is an error that says so, never a silent fallback to another method.

Each draw also carries, in `sample_stats`, the model's log-density `lp` and the Gaussian's
`lp_gaussian`; their difference is the log importance ratio from which the harness computes
ArviZ's PSIS k̂ (how far the Gaussian may be trusted).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.optimize
import xarray as xr

from fusion.errors import InputError
from fusion.inference.fused_density import FusedDensity
from fusion.inference.fused_kernel import c_callbacks
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS, PRIOR_SIGMA
from fusion.inference.posterior import add_member_deterministics

if TYPE_CHECKING:
    from fusion.config import Config
    from fusion.data.prepared import Prepared

__all__ = [
    "LaplaceError",
    "LaplaceFit",
    "fit_laplace",
    "gradient_hessian",
    "draw_gaussian",
    "laplace_trace",
    "sample_laplace",
    "laplace_diagnostics",
    "OPTIMIZER",
]

OPTIMIZER = "L-BFGS-B"
#: ‖∇ log p‖∞ at the returned mode above this is "the optimiser did not converge".
GRAD_TOL = 1e-5
#: a mode whose gradient exceeds GRAD_TOL is still accepted within this many posterior sd of
#: where a Newton step puts it (the log density's own scale decides, not |gradient| alone)
DECREMENT_TOL = 1e-3
_LOG_2PI = float(np.log(2.0 * np.pi))


class LogDensity(Protocol):
    def logp_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...


class LaplaceError(InputError):
    """The Gaussian approximation does not exist (optimiser failed, Hessian not negative definite)."""


@dataclass(frozen=True)
class LaplaceFit:
    """The Gaussian: mode and covariance of log θ (PARAMS order), and how the optimiser got there."""

    mode: np.ndarray
    cov: np.ndarray
    hessian: np.ndarray  # of log p at the mode
    logp_mode: float
    n_iter: int
    n_eval: int
    grad_norm: float
    message: str

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def gradient_hessian(density: LogDensity, x: np.ndarray, rel_step: float = 1e-5) -> np.ndarray:
    """Hessian of log p at `x` by central differences of the analytic gradient, symmetrised."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    hess = np.empty((n, n))
    for j in range(n):
        h = rel_step * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        hess[:, j] = (density.logp_grad(up)[1] - density.logp_grad(down)[1]) / (2.0 * h)
    return 0.5 * (hess + hess.T)


def _newton_decrement(grad: np.ndarray, eigval: np.ndarray, eigvec: np.ndarray) -> float:
    """√(gᵀ P⁻¹ g) for the precision P = −H: how far the Newton step would move, in posterior sd
    (inf where P is not positive definite). Scale-free, unlike |gradient|, which at tens of
    thousands of points stays near 1e-3 at the mode to the last bit L-BFGS-B can resolve."""
    if not np.all(np.isfinite(eigval)) or eigval.min() <= 0:
        return math.inf
    z = eigvec.T @ np.asarray(grad, dtype=np.float64)
    return float(np.sqrt(np.sum(z * z / eigval)))


def fit_laplace(
    density: LogDensity, x0: np.ndarray | None = None, *, where: object = None, names: tuple[str, ...] = PARAMS
) -> LaplaceFit:
    """MAP by L-BFGS-B with the analytic gradient, then the covariance −H⁻¹; raises `LaplaceError`.

    `where` (a config file) is named in the error, so the CLI's one line says which run failed.
    """
    start = np.log([PRIOR_SIGMA[p] for p in PARAMS]) if x0 is None else np.asarray(x0, dtype=np.float64)

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = density.logp_grad(x)
        return -float(value), -np.asarray(grad, dtype=np.float64)

    res = scipy.optimize.minimize(
        negative, start, jac=True, method=OPTIMIZER,
        options={"maxiter": 2000, "gtol": 1e-10, "ftol": 1e-15, "maxcor": 20},
    )
    value, grad = density.logp_grad(res.x)
    grad_norm = float(np.max(np.abs(grad))) if np.size(grad) else 0.0
    if not np.isfinite(value) or not np.isfinite(grad_norm):
        raise LaplaceError(where, f"inference.method laplace: {OPTIMIZER} found no mode (log p {value:.3g}, "
                                  f"max |gradient| {grad_norm:.3g} after {res.nit} iterations: {res.message})")  # fmt: skip
    hess = gradient_hessian(density, res.x)
    precision = -hess
    eigval, eigvec = np.linalg.eigh(precision)
    decrement = _newton_decrement(grad, eigval, eigvec)
    if grad_norm > GRAD_TOL and not decrement <= DECREMENT_TOL:
        raise LaplaceError(
            where,
            f"inference.method laplace: {OPTIMIZER} found no mode (max |gradient| {grad_norm:.3g} "
            f"> {GRAD_TOL:g}, {decrement:.3g} posterior sd from the Newton step's mode, after {res.nit} "
            f"iterations: {res.message})",
        )
    if not np.all(np.isfinite(eigval)) or eigval.min() <= 1e-10 * max(1.0, float(np.abs(eigval).max())):
        k = int(np.argmin(eigval))
        lead = names[int(np.argmax(np.abs(eigvec[:, k])))]
        raise LaplaceError(
            where,
            f"inference.method laplace: the Hessian at the mode is not negative definite "
            f"(eigenvalue {-eigval[k]:.3g} of the log-density's Hessian, mostly along {lead}); "
            "no Gaussian approximation exists there, use method nuts",
        )
    cov = eigvec @ np.diag(1.0 / eigval) @ eigvec.T
    return LaplaceFit(
        mode=res.x.copy(), cov=0.5 * (cov + cov.T), hessian=hess, logp_mode=float(value),
        n_iter=int(res.nit), n_eval=int(res.nfev), grad_norm=grad_norm, message=str(res.message),
    )


def draw_gaussian(fit: LaplaceFit, chains: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(chains, draws, 4) draws of log θ from the fit, and the Gaussian's log-density of each."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(fit.cov)
    z = rng.standard_normal((chains, draws, fit.mode.size))
    x = fit.mode + z @ chol.T
    logdet = 2.0 * float(np.sum(np.log(np.diag(chol))))
    lp_gauss = -0.5 * (np.sum(z * z, axis=-1) + logdet + fit.mode.size * _LOG_2PI)
    return x, lp_gauss


def laplace_trace(density: LogDensity, fit: LaplaceFit, chains: int, draws: int, seed: int) -> xr.DataTree:
    """`posterior` (θ on chain × draw) and `sample_stats` (`lp`, `lp_gaussian`) from the fit."""
    x, lp_gauss = draw_gaussian(fit, chains, draws, seed)
    lp = np.array([density.logp_grad(row)[0] for row in x.reshape(-1, x.shape[-1])]).reshape(chains, draws)
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    post = xr.Dataset(
        {name: (("chain", "draw"), np.exp(x[..., j])) for j, name in enumerate(PARAMS)}, coords=coords
    )
    stats = xr.Dataset(
        {"lp": (("chain", "draw"), lp), "lp_gaussian": (("chain", "draw"), lp_gauss)}, coords=coords
    )
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


class _CallbackDensity:
    """`FusedDensity` through nutpie's cached C callback of the same kernel: loading it costs a
    quarter of a second, against about 0.7 s for the Numba dispatcher's first call."""

    def __init__(self, density: FusedDensity) -> None:
        import ctypes

        self._fn = c_callbacks()[0].ctypes
        self._buf = density.packed()
        self._ptr = ctypes.POINTER(ctypes.c_double)
        self._user = ctypes.c_void_p(self._buf.ctypes.data)

    def logp_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        grad, value = np.empty(len(PARAMS)), np.empty(1)
        self._fn(len(PARAMS), x.ctypes.data_as(self._ptr), grad.ctypes.data_as(self._ptr),
                 value.ctypes.data_as(self._ptr), self._user)  # a non-finite result shows in the values
        return float(value[0]), grad


def sample_laplace(
    cfg: Config, prepared: Prepared, *, fit: LaplaceFit | None = None, settings: NoiseSettings | None = None
) -> xr.DataTree:
    """The Laplace counterpart of `sample`: same groups, `w`/`logL_*` per member, attrs say how.

    `fit` skips the optimiser (the harness plants a shifted mode this way); `settings` (a
    likelihood form's weights, `fusion.inference.likelihood`) default to the config's."""
    settings = settings or NoiseSettings.from_config(cfg)
    inf = cfg.inference
    start = time.perf_counter()
    density = _CallbackDensity(FusedDensity(prepared, settings))
    fit = fit if fit is not None else fit_laplace(density, where=cfg.source)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    trace = laplace_trace(density, fit, inf.chains, inf.draws, inf.seed)
    trace = add_member_deterministics(trace, prepared, settings)
    trace["posterior"].attrs.update(
        fusion_method="laplace",
        fusion_sampler=OPTIMIZER,
        fusion_density="fused",
        fusion_seed=inf.seed,
        fusion_compile_s=fit_s,
        fusion_sampling_wall_s=time.perf_counter() - start,
        fusion_compat=prepared.compat,
        fusion_member_ids=",".join(prepared.member_ids),
        fusion_laplace_mode=[float(v) for v in fit.mode],
        fusion_laplace_cov=[float(v) for v in fit.cov.ravel()],
        fusion_laplace_n_iter=fit.n_iter,
        fusion_laplace_grad_norm=fit.grad_norm,
    )
    return trace


def laplace_diagnostics(trace: xr.DataTree) -> dict[str, object]:
    """What stands in for the sampler's figures: optimiser figures and ArviZ's PSIS k̂ of p/q."""
    from arviz_stats.base import array_stats

    attrs = trace["posterior"].attrs
    stats = trace["sample_stats"]
    log_ratio = np.asarray(stats["lp"].values - stats["lp_gaussian"].values, dtype=np.float64).ravel()
    _, khat = array_stats.psislw(log_ratio)
    cov = np.asarray(attrs["fusion_laplace_cov"], dtype=np.float64).reshape(len(PARAMS), len(PARAMS))
    return {
        "method": "laplace",
        "optimizer": OPTIMIZER,
        "n_iter": int(attrs["fusion_laplace_n_iter"]),
        "grad_norm": float(attrs["fusion_laplace_grad_norm"]),
        "mode_log": dict(zip(PARAMS, map(float, attrs["fusion_laplace_mode"]), strict=True)),
        "sd_log": dict(zip(PARAMS, map(float, np.sqrt(np.diag(cov))), strict=True)),
        "pareto_k": float(np.asarray(khat)),
        "chains": int(trace["posterior"].sizes["chain"]),
        "draws": int(trace["posterior"].sizes["draw"]),
        "divergences": 0,
    }
