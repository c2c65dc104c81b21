"""The noise model of DESIGN.md as PyMC models, in two forms with the same log-density.

`build_model` is the form FUSION samples with `sampler: pymc`: four HalfNormal priors and one
O(N) `joint_loglik` potential over the per-stream sufficient statistics of
`fusion.inference.noise`. `build_loop_model` is the prototype's own construction (one
log-likelihood graph per member, deterministics `w`, `logL_*` inside the model). It is slow by
design; tests prove both forms have the same log-density and gradient, and the benchmark times
one against the other. PyMC and PyTensor are imported only when a model is built: the nutpie
route (the default) never builds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared
from fusion.inference.noise import LOG_2PI, NoiseSettings, sigma_obs_squared, stream_blocks
from fusion.inference.parameters import PRIOR_SIGMA
from fusion.inference.pytensor_flags import strict_pytensor_float

if TYPE_CHECKING:
    import pymc as pm
    import pytensor.tensor as pt

__all__ = ["build_loop_model", "build_model"]


def _priors() -> dict[str, pt.TensorVariable]:
    """HalfNormal priors with float64 scales (a bare 0.5 becomes a float32 constant in PyTensor,
    and log(0.5) in float32 shifts the log-density by 1.9e-9). Every model starts here, so PyTensor's
    strict float is set before any of FUSION's graphs is compiled (`strict_pytensor_float`)."""
    import pymc as pm
    import pytensor.tensor as pt

    strict_pytensor_float()

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
            logdet = pt.sum(pt.constant(b.count) * pt.log(var)) + b.n_points * LOG_2PI
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
