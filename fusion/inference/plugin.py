"""Plug-in weights at the posterior means: the prototype's `compute_model_weights`, bit for bit.

Kept apart from the sampled weights `w` because it is a different estimator (no velocity
inflation, no stream weights, 1/N over all points; DESIGN.md defect 6) that users still
compare against. The per-member 1-D sums are deliberate: one 2-D `sum(axis=1)` over
members × points reorders the reduction and moves the result by tens of ULP.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fusion.data.prepared import THICK, Prepared
from fusion.errors import InputError
from fusion.inference.parameters import PARAMS

__all__ = ["posterior_means", "plug_in_weights", "load_posterior", "softmax_weights"]


def load_posterior(path: str | Path) -> xr.Dataset:
    """The `posterior` group of a saved trace, with a one-line error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "trace file not found")
    try:
        with xr.open_dataset(path, group="posterior") as ds:
            post = ds.load()
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"no readable 'posterior' group ({reason})") from None
    missing = [k for k in PARAMS if k not in post]
    if missing:
        raise InputError(path, f"posterior lacks {', '.join(missing)}")
    return post


def posterior_means(posterior: Any) -> dict[str, float]:
    """Mean over every draw of each noise parameter, in float64 (NumPy's pairwise sum, as the prototype)."""
    if hasattr(posterior, "children") and "posterior" in getattr(posterior, "children", {}):
        posterior = posterior["posterior"]
    if hasattr(posterior, "to_dataset"):
        posterior = posterior.to_dataset()
    out = {}
    for name in PARAMS:
        value = posterior[name]
        arr = np.asarray(value.values if hasattr(value, "values") else value, dtype=np.float64)
        out[name] = float(arr.mean())
    return out


def plug_in_weights(prepared: Prepared, posterior: Any | Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """`(weights, loglik)` per member, in `prepared.member_ids` order.

    The prototype's `compute_model_weights`, bit for bit: Gaussian log-likelihood of every member at
    the posterior means of the four noise parameters, divided by the number of points, then
    normalised (no velocity inflation, no stream weights).

    Parameters
    ----------
    prepared : Prepared
        The prepared arrays.
    posterior : DataTree, Dataset or mapping
        A posterior with the four noise parameters (their means are taken), or the means.

    Returns
    -------
    weights : numpy.ndarray
        Per member, summing to 1.
    loglik : numpy.ndarray
        Per member, the mean log-likelihood per point.
    """
    means = posterior_means(posterior)
    thick = prepared.stream == THICK
    speed = prepared.speed
    sigma_model = np.where(
        thick,
        means["sigma_base_thick"] * np.sqrt(1 + means["beta_thick"] * speed),
        means["sigma_base_vel"] * np.sqrt(1 + means["beta_vel"] * speed),
    )
    # sigma_obs**2 stays float32 before the float64 sum, as in the prototype
    sigma_tot = np.sqrt(prepared.sigma_obs**2 + sigma_model**2)
    var_tot = sigma_tot**2
    log_norm = np.log(2 * np.pi * var_tot)
    loglik = np.array(
        [-0.5 * np.sum((prepared.y_obs - prepared.F[m]) ** 2 / var_tot + log_norm) for m in range(prepared.n_members)]
    )
    loglik = loglik / prepared.n_points
    return softmax_weights(loglik), loglik


def softmax_weights(loglik: np.ndarray) -> np.ndarray:
    """exp(loglik − max), normalised: shift-invariant and safe for very negative log-likelihoods."""
    weights = np.exp(loglik - loglik.max())
    return weights / weights.sum()
